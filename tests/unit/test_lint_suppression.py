"""Suppression comments: a reason is required, they waive one statement, and misuse is reported."""

from __future__ import annotations

from dbmigrate.api.lint import LintFinding
from dbmigrate.engine.lint import lint_migrations, lint_sql


def by_rule(sql: str) -> dict[str, list[LintFinding]]:
    grouped: dict[str, list[LintFinding]] = {}
    for finding in lint_sql(sql, "s.sql"):
        grouped.setdefault(finding.rule, []).append(finding)
    return grouped


def test_suppression_with_reason_waives_the_next_statement() -> None:
    sql = (
        "-- dbmigrate:ignore DM201 reason: table is empty at this point\n"
        "CREATE INDEX IF NOT EXISTS i ON exports (created_at);\n"
        "CREATE INDEX IF NOT EXISTS j ON exports (id);\n"
    )
    found = by_rule(sql)
    first, second = found["DM201"]
    assert first.suppressed and first.suppression_reason == "table is empty at this point"
    assert not second.suppressed
    assert "DM002" not in found and "DM004" not in found


def test_rule_names_and_several_rules_are_accepted() -> None:
    sql = (
        "/* dbmigrate:ignore truncate, DM302 reason: staging data, rebuilt nightly */\n"
        "TRUNCATE staging;\n"
    )
    (finding,) = by_rule(sql)["DM104"]
    assert finding.suppressed
    assert finding.suppression_reason == "staging data, rebuilt nightly"


def test_suppression_inside_a_multi_line_statement_applies_to_it() -> None:
    sql = (
        "ALTER TABLE page_views\n"
        "    -- dbmigrate:ignore DM202 reason: page_views is empty before the launch\n"
        "    ADD CONSTRAINT f FOREIGN KEY (user_id) REFERENCES users (id);\n"
    )
    (finding,) = by_rule(sql)["DM202"]
    assert finding.suppressed


def test_suppression_without_reason_is_an_error_and_waives_nothing() -> None:
    sql = "-- dbmigrate:ignore DM104\nTRUNCATE staging;\n"
    found = by_rule(sql)
    assert not found["DM104"][0].suppressed
    (missing,) = found["DM002"]
    assert (missing.severity, missing.line, missing.column) == ("error", 1, 1)


def test_empty_reason_counts_as_no_reason() -> None:
    found = by_rule("-- dbmigrate:ignore DM104 reason:   \nTRUNCATE staging;\n")
    assert "DM002" in found and not found["DM104"][0].suppressed


def test_unknown_rule_and_unused_suppression_are_reported() -> None:
    sql = (
        "-- dbmigrate:ignore DM999 reason: typo\n"
        "SELECT 1;\n"
        "-- dbmigrate:ignore DM101 reason: wrong line\n"
        "TRUNCATE staging;\n"
    )
    found = by_rule(sql)
    assert found["DM003"][0].line == 1
    assert found["DM004"][0].line == 3 and found["DM004"][0].severity == "info"
    assert not found["DM104"][0].suppressed


def test_parse_errors_and_suppression_errors_cannot_be_suppressed() -> None:
    sql = "-- dbmigrate:ignore DM001 reason: no\nSELECT FROM WHERE;"
    (finding,) = lint_sql(sql, "s.sql")
    assert finding.rule == "DM001" and not finding.suppressed


def test_suppressed_errors_do_not_fail_a_strict_run() -> None:
    class File:
        filename = "001_x.sql"
        sql = "-- dbmigrate:ignore DM104 reason: staging is rebuilt by this release\nTRUNCATE s;\n"

    report = lint_migrations([File()], "strict")
    assert report.passed and report.error_count == 0 and report.suppressed_count == 1
