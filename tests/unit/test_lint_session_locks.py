"""Lint findings for what a file does to its own session: LOCK TABLE and disabled timeouts."""

from __future__ import annotations

import pytest

from dbmigrate.api.lint import LintFinding
from dbmigrate.engine.lint import lint_sql

PG_DUMP_HEADER = "SET statement_timeout = 0;\nSET lock_timeout = 0;\n"


def _findings(sql: str, rule: str) -> list[LintFinding]:
    return [f for f in lint_sql(sql, "001_x.sql") if f.rule == rule]


def test_an_access_exclusive_lock_names_its_mode_and_the_rest_of_the_transaction() -> None:
    sql = (
        "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE;\n"
        "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS note text;\n"
        "UPDATE accounts SET note = '' WHERE note IS NULL;\n"
    )
    [finding] = _findings(sql, "DM214")
    assert finding.line == 1
    assert "ACCESS EXCLUSIVE MODE" in finding.message
    assert "every read and write" in finding.message
    assert "2 statement(s) later" in finding.message


def test_a_weaker_lock_says_what_it_blocks() -> None:
    [finding] = _findings("LOCK TABLE accounts IN SHARE MODE;", "DM214")
    assert "SHARE MODE blocks every write" in finding.message


def test_the_pg_dump_header_is_an_error_for_both_timeouts() -> None:
    findings = _findings(PG_DUMP_HEADER + "ALTER TABLE a ADD COLUMN b int;", "DM215")
    assert [(f.line, f.severity) for f in findings] == [(1, "error"), (2, "error")]


@pytest.mark.parametrize(
    "statement",
    [
        "SET lock_timeout = '0'",
        "SET LOCAL lock_timeout = '0s'",
        "SET statement_timeout TO DEFAULT",
        "RESET lock_timeout",
        "RESET ALL",
    ],
)
def test_every_way_of_turning_a_timeout_off_is_reported(statement: str) -> None:
    assert len(_findings(statement + ";", "DM215")) == 1


def test_lowering_a_timeout_is_allowed() -> None:
    assert _findings("SET lock_timeout = '500ms'; SET statement_timeout = 30000;", "DM215") == []
