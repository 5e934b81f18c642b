"""Parity with squawk: every squawk finding in our categories is also one of ours.

squawk (the ``squawk-cli`` wheel, a dev dependency) lints the corpus in ``lint_corpus/``; each of
its findings is placed in a statement and must be matched by one of our findings, of a mapped
rule, in the same statement. squawk rules that dbmigrate's runner makes moot, and rules outside
the linter's categories (schema style), are listed with the reason. The one deliberate difference:
squawk reports statements on a table created earlier in the same file, which is empty then.
"""

from __future__ import annotations

import bisect
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from pglast import ast

from dbmigrate.engine.lint import RULES, lint_sql
from dbmigrate.engine.lint.source import ParsedFile, parse_file

CORPUS = Path(__file__).parent / "lint_corpus"

# squawk rule -> our rules that cover it
COVERED: dict[str, set[str]] = {
    "adding-field-with-default": {"DM205"},
    "adding-foreign-key-constraint": {"DM202", "DM210"},
    "adding-not-nullable-field": {"DM203"},
    "adding-required-field": {"DM211"},
    "adding-serial-primary-key-field": {"DM209"},
    "ban-concurrent-index-creation-in-transaction": {"DM401"},
    "ban-drop-column": {"DM102"},
    "ban-drop-database": {"DM107"},
    "ban-drop-schema": {"DM103"},
    "ban-drop-table": {"DM101"},
    "ban-drop-sequence": {"DM109"},
    "ban-drop-view": {"DM109"},
    "ban-truncate-cascade": {"DM104"},
    "ban-uncommitted-transaction": {"DM403"},
    "changing-column-type": {"DM204"},
    "constraint-missing-not-valid": {"DM202", "DM209"},
    "disallowed-unique-constraint": {"DM209"},
    "prefer-robust-stmts": {"DM301", "DM302"},
    "renaming-column": {"DM108"},
    "renaming-table": {"DM108"},
    "require-concurrent-index-creation": {"DM201"},
    "require-concurrent-index-deletion": {"DM212"},
    "require-concurrent-partition-detach": {"DM213"},
    "require-concurrent-reindex": {"DM208"},
    "syntax-error": {"DM001"},
    "transaction-nesting": {"DM402", "DM403"},
}

# squawk rules that dbmigrate's runner makes moot
MOOT: dict[str, str] = {
    "require-timeout-settings": "the runner sets lock_timeout and statement_timeout itself",
    "require-lock-timeout": "the runner sets lock_timeout before every statement",
    "require-statement-timeout": "the runner sets statement_timeout before every statement",
}
# prefer-robust-stmts "Missing transaction": the runner wraps each file in a transaction.
MISSING_TRANSACTION = "Missing transaction"

# squawk rules outside the linter's categories (schema style, client compatibility)
OUT_OF_SCOPE: dict[str, str] = {
    "prefer-bigint-over-int": "column type style, not a migration-safety risk",
    "prefer-bigint-over-smallint": "column type style",
    "prefer-identity": "column type style",
    "prefer-text-field": "column type style",
    "prefer-timestamptz": "column type style",
    "ban-char-field": "column type style",
    "ban-drop-not-null": "relaxes a constraint; no lock or data risk",
    "require-enum-value-ordering": "enum value order is a design choice",
    "require-table-schema": "opt-in naming style",
    "identifier-too-long": "naming style",
}


@dataclass(frozen=True)
class Placed:
    """A finding placed in a statement of a corpus file."""

    file: str
    statement: int
    rule: str
    line: int
    message: str


def _squawk_findings() -> list[dict[str, object]]:
    binary = shutil.which("squawk")
    if binary is None:
        pytest.fail(
            "squawk is not installed; it is a dev dependency: pip install -e '.[dev]' "
            "(or pip install squawk-cli)"
        )
    files = sorted(p.name for p in CORPUS.glob("*.sql"))
    result = subprocess.run(
        [binary, "--reporter", "json", "--pg-version", "15", *files],
        cwd=CORPUS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), f"squawk failed: {result.stderr}"
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


def _statement_at(parsed: ParsedFile, index: int) -> int:
    starts = [s.start for s in parsed.statements]
    return max(0, bisect.bisect_right(starts, index) - 1)


def _index(text: str, line: int, column: int, column_in_bytes: bool) -> int:
    """Character index of a 0-based (line, column); squawk counts columns in UTF-8 bytes."""
    lines = text.split("\n")
    offset = sum(len(part) + 1 for part in lines[:line])
    if column_in_bytes:
        column = len(lines[line].encode("utf-8")[:column].decode("utf-8", errors="ignore"))
    return offset + column


def _parsed() -> dict[str, tuple[str, ParsedFile]]:
    texts = {p.name: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.sql")}
    return {name: (text, parse_file(text)) for name, text in texts.items()}


def _target(node: ast.Node) -> str | None:
    relation = getattr(node, "relation", None)
    return relation.relname if isinstance(relation, ast.RangeVar) else None


def _created_before(parsed: ParsedFile, statement: int) -> set[str]:
    return {
        str(s.node.relation.relname)
        for s in parsed.statements[:statement]
        if isinstance(s.node, ast.CreateStmt) and s.node.relation is not None
    }


def _ours(files: dict[str, tuple[str, ParsedFile]]) -> set[tuple[str, int, str]]:
    placed = set()
    for name, (text, parsed) in files.items():
        for finding in lint_sql(text, name):
            index = _index(text, finding.line - 1, finding.column - 1, column_in_bytes=False)
            placed.add((name, _statement_at(parsed, index), finding.rule))
    return placed


def _classify() -> dict[str, list[Placed]]:
    files = _parsed()
    ours = _ours(files)
    groups: dict[str, list[Placed]] = {
        k: [] for k in ("matched", "moot", "out_of_scope", "new_table", "missing", "unmapped")
    }
    for item in _squawk_findings():
        name, rule, message = str(item["file"]), str(item["rule_name"]), str(item["message"])
        text, parsed = files[name]
        index = _index(text, int(str(item["line"])), int(str(item["column"])), True)
        statement = _statement_at(parsed, index)
        placed = Placed(name, statement, rule, int(str(item["line"])) + 1, message)
        if rule in MOOT or (
            rule == "prefer-robust-stmts" and message.startswith(MISSING_TRANSACTION)
        ):
            groups["moot"].append(placed)
        elif rule in OUT_OF_SCOPE:
            groups["out_of_scope"].append(placed)
        elif rule not in COVERED:
            groups["unmapped"].append(placed)
        elif any((name, statement, ours_rule) in ours for ours_rule in COVERED[rule]):
            groups["matched"].append(placed)
        elif _target(parsed.statements[statement].node) in _created_before(parsed, statement):
            groups["new_table"].append(placed)
        else:
            groups["missing"].append(placed)
    return groups


def test_corpus_has_at_least_40_statements() -> None:
    count = sum(len(parsed.statements) for _, parsed in _parsed().values())
    assert count >= 40


def test_every_squawk_finding_in_our_categories_is_ours(capsys: pytest.CaptureFixture[str]) -> None:
    groups = _classify()
    assert not groups["unmapped"], "squawk rules missing from the mapping: " + ", ".join(
        sorted({p.rule for p in groups["unmapped"]})
    )
    missing = [f"{p.file}:{p.line} {p.rule}: {p.message}" for p in groups["missing"]]
    assert not missing, "squawk findings we do not report:\n" + "\n".join(missing)
    assert len(groups["matched"]) >= 40, "the corpus no longer exercises the rules"
    for reason in groups["new_table"]:
        assert reason.rule in (
            "require-concurrent-index-creation",
            "constraint-missing-not-valid",
            "disallowed-unique-constraint",
        )
    with capsys.disabled():
        total = sum(len(v) for v in groups.values())
        in_scope = len(groups["matched"]) + len(groups["new_table"])
        print(
            f"\nsquawk parity: {total} squawk findings; in our categories {in_scope}, matched "
            f"{len(groups['matched'])}, on tables new in the file {len(groups['new_table'])}; "
            f"moot {len(groups['moot'])}; out of scope {len(groups['out_of_scope'])}"
        )


def test_readme_documents_every_rule_and_every_squawk_rule() -> None:
    readme = (
        Path(__file__).resolve().parents[2] / "operator/dbmigrate/engine/lint/README.md"
    ).read_text(encoding="utf-8")
    for rule in RULES.values():
        assert f"| {rule.id} | `{rule.name}` | {rule.severity} |" in readme, rule.id
    for squawk_rule in [*COVERED, *MOOT, *OUT_OF_SCOPE]:
        assert squawk_rule in readme, squawk_rule
