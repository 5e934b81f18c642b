"""The apply parses each file once: the linter reads the tree the engine parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbmigrate.engine.apply import lint_gate
from dbmigrate.engine.lint import lint_sql
from dbmigrate.engine.lint import source as lint_source
from dbmigrate.engine.settings import ApplySettings
from dbmigrate.engine.sources import load_directory, load_mapping
from dbmigrate.engine.statements import parse_tree

EXAMPLE = Path(__file__).resolve().parents[2] / "database" / "migrations"
UNSAFE = "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT random()::int;\nDROP TABLE gone;\n"


def _no_second_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str) -> tuple[object, ...]:
        raise AssertionError("the linter parsed a file it was given the tree of")

    monkeypatch.setattr(lint_source, "_parse", refuse)


def test_lint_with_a_given_tree_finds_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [*load_directory(EXAMPLE), *load_mapping({"006_unsafe.sql": UNSAFE})]
    expected = [lint_sql(m.sql, m.filename) for m in files]
    assert any(expected[-1])  # the unsafe file has findings to compare
    trees = [parse_tree(m.sql, m.filename) for m in files]
    _no_second_parse(monkeypatch)
    assert [lint_sql(m.sql, m.filename, tree=t) for m, t in zip(files, trees, strict=True)] == (
        expected
    )


def test_lint_gate_uses_the_trees_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    files = list(load_directory(EXAMPLE))
    trees = {m.filename: parse_tree(m.sql, m.filename) for m in files}
    _no_second_parse(monkeypatch)
    findings = lint_gate(files, ApplySettings(lint_policy="warn"), trees)
    assert "DM009" not in {f.rule for f in findings}
    # without the trees it parses, which the patch turns into the linter's failure finding
    unparsed = lint_gate(files, ApplySettings(lint_policy="warn"))
    assert {f.rule for f in unparsed} == {"DM009"}
