"""Lints one SQL file: parse, run every rule on every statement, apply suppressions.

Nothing escapes ``lint_sql``: a file PostgreSQL's parser refuses becomes a DM001 finding at the
position the parser reports, and a failure of the linter itself becomes a DM009 error (so a
strict run stops instead of letting an unchecked file through).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pglast import ast

from dbmigrate.api.lint import LintFinding
from dbmigrate.engine.lint import (
    altertable,
    blocking,
    destructive,
    doblocks,
    idempotency,
    indexes,
    sessionlocks,
    suppression,
    transactions,
)
from dbmigrate.engine.lint.context import FileState, RawFinding, StatementContext
from dbmigrate.engine.lint.rules import RULES
from dbmigrate.engine.lint.source import ParsedFile, SourceMap, SqlSyntaxError, parse_file

log = logging.getLogger(__name__)

Check = Callable[[Any, StatementContext], None]


def _dispatch_table() -> dict[type, list[Check]]:
    table: dict[type, list[Check]] = {}
    for module in (
        transactions,
        destructive,
        blocking,
        altertable,
        idempotency,
        indexes,
        sessionlocks,
    ):
        for node_type, checks in module.CHECKS.items():
            table.setdefault(node_type, []).extend(checks)
    return table


DISPATCH = _dispatch_table()


def _finding(
    raw: RawFinding, filename: str, source: SourceMap, waived: suppression.Suppression | None
) -> LintFinding:
    rule = RULES[raw.rule]
    line, column = source.position(raw.location)
    return LintFinding(
        rule=rule.id,
        name=rule.name,
        severity=rule.severity,
        file=filename,
        line=line,
        column=column,
        message=raw.message,
        hint=raw.hint or rule.hint,
        suppressed=waived is not None,
        suppression_reason=waived.reason if waived is not None else None,
        check_query=raw.check_query,
    )


def _track(node: ast.Node, state: FileState) -> None:
    """Remember the tables this statement creates (they are empty for later statements)."""
    if isinstance(node, ast.CreateStmt):
        state.note_created(node.relation)
    elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
        state.note_created(node.into.rel)


def _run_rules(parsed: ParsedFile, state: FileState) -> list[RawFinding]:
    findings: list[RawFinding] = []
    for statement in parsed.statements:
        context = StatementContext(state, statement, findings)
        for check in DISPATCH.get(type(statement.node), ()):
            check(statement.node, context)
        if isinstance(statement.node, ast.DoStmt):
            doblocks.check_do(statement.node, context, DISPATCH, _track)
        _track(statement.node, state)
    return findings


def _lint(
    sql: str, filename: str, existing_tables: set[str] | None, tree: Sequence[ast.RawStmt] | None
) -> list[LintFinding]:
    try:
        parsed = parse_file(sql, tree)
    except SqlSyntaxError as exc:
        raw = RawFinding(
            "DM001", exc.index, -1, f"PostgreSQL's parser refuses the file: {exc.message}."
        )
        return [_finding(raw, filename, SourceMap(sql), None)]
    state = FileState(filename, existing_tables, parsed.statements, parsed.source_map)
    raw_findings = _run_rules(parsed, state)
    waivers = suppression.collect(parsed.comments, parsed.statements)
    findings = [
        _finding(raw, filename, parsed.source_map, suppression.match(raw, waivers))
        for raw in raw_findings
    ]
    extra = suppression.comment_findings(waivers) + suppression.unused_findings(waivers)
    findings += [_finding(raw, filename, parsed.source_map, None) for raw in extra]
    return sorted(findings, key=lambda f: (f.line, f.column, f.rule))


def lint_sql(
    sql: str,
    filename: str,
    existing_tables: set[str] | None = None,
    tree: Sequence[ast.RawStmt] | None = None,
) -> list[LintFinding]:
    """Every finding in one SQL file, suppressed ones included, in order of position.

    ``existing_tables`` (names or schema.names) are the tables known to exist in the database;
    when None, every table the file does not create itself is presumed to exist and hold rows.
    ``tree`` is the file's pglast parse tree when the caller parsed it already (read, not
    changed).
    """
    try:
        return _lint(sql, filename, existing_tables, tree)
    except Exception as exc:  # fail closed: an analysis bug must not let the file through
        log.exception("linter failure on %s", filename)
        rule = RULES["DM009"]
        return [
            LintFinding(
                rule=rule.id,
                name=rule.name,
                severity=rule.severity,
                file=filename,
                line=1,
                column=1,
                message=f"The linter failed on this file ({type(exc).__name__}: {exc}).",
                hint=rule.hint,
            )
        ]
