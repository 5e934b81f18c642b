"""The plan as a pull-request comment: sections, tables, and text from files kept literal."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dbmigrate.api.evidence import Check, IndexEstimate, PreflightResult, TableEstimate
from dbmigrate.api.plan import DriftError, PlannedVersion, PlanResult
from dbmigrate.engine.lint import build_report, lint_sql
from dbmigrate.runner.markdown import MARKER, escape, plan_markdown

HASH = "ab" * 32
SQL = (
    "CREATE INDEX IF NOT EXISTS idx_pv_path ON page_views (path);\n"
    "-- dbmigrate:ignore DM203 reason: users has 12 rows\n"
    "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
    "CREATE TABLE t (a int);\n"
)


def a_plan(**changes: object) -> PlanResult:
    values: dict[str, object] = {
        "database": "db.example:5432/analytics",
        "target": 7,
        "pending": [
            PlannedVersion(version=6, name="add_path_index", checksum="c" * 64),
            PlannedVersion(version=7, name="not_null", checksum="d" * 64, resume_from=2),
        ],
        "plan_hash": HASH,
        "computed_at": datetime(2025, 1, 1, tzinfo=UTC),
    }
    values.update(changes)
    return PlanResult.model_validate(values)


def a_preflight() -> PreflightResult:
    return PreflightResult(
        passed=True,
        role="migrator",
        server_version="15.8",
        database_size_bytes=3 * 1024**3,
        large_table_rows=1_000_000,
        tables=[
            TableEstimate(
                schema_name="public",
                name="page_views",
                exists=True,
                size_bytes=512 * 1024**2,
                estimated_rows=4_200_000,
                large=True,
            )
        ],
        new_indexes=[
            IndexEstimate(
                name="idx_pv_path",
                schema_name="public",
                table="page_views",
                method="btree",
                estimated_rows=4_200_000,
                estimated_size_bytes=90 * 1024**2,
                estimated_build_seconds=95.0,
            )
        ],
        estimated_disk_bytes=90 * 1024**2,
        estimated_build_seconds=95.0,
        checks=[Check(name="privileges", status="ok", message="the role may do all of it")],
    )


def cells(row: str) -> list[str]:
    """The cells of a GFM table row: split on pipes that are not backslash-escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def section(markdown: str, title: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(f"### {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("### ")), len(lines))
    return [line for line in lines[start:end] if line]


def test_every_part_of_the_plan_is_there() -> None:
    report = build_report(lint_sql(SQL, "migrations/006_add_path_index.sql"), "strict", 1)
    text = plan_markdown(a_plan(), report, a_preflight())
    assert text.splitlines()[0] == MARKER
    assert text.splitlines()[1] == "## dbmigrate plan: `db.example:5432/analytics` to version 7"
    summary = text.splitlines()[3]
    assert summary.startswith("**2 pending**")
    assert "lint (strict): 1 error(s), 1 warning(s), 1 waived, **refused**" in summary
    assert "preflight: passed" in summary

    pending = section(text, "Pending versions")
    assert cells(pending[2]) == ["6", "add\\_path\\_index", f"`{'c' * 12}`", ""]
    assert cells(pending[3]) == ["7", "not\\_null", f"`{'d' * 12}`", "resumes after statement 2"]

    blocking = [cells(r) for r in section(text, "Blocking statements")[3:]]
    assert [(r[0], r[1], r[3]) for r in blocking] == [
        ("`migrations/006_add_path_index.sql:1:1`", "DM201", "no"),
        ("`migrations/006_add_path_index.sql:3:1`", "DM203", "users has 12 rows"),
    ]

    lint_rows = [cells(r) for r in section(text, "Lint")[2:]]
    assert [r[2].split()[0] for r in lint_rows] == ["DM201", "DM203", "DM301"]
    assert lint_rows[0][0] == "❌ error" and lint_rows[1][0] == "~~error~~ waived"
    assert lint_rows[2][0] == "⚠️ warning"
    assert all(len(r) == 5 for r in lint_rows)

    estimates = section(text, "Preflight estimates")
    assert estimates[0] == (
        "Role `migrator`, PostgreSQL 15.8, database 3.0 GiB; new indexes ~90.0 MiB on disk, "
        "~1.6 min to build."
    )
    assert cells(estimates[3]) == [
        "idx\\_pv\\_path",
        "public.page\\_views",
        "4,200,000",
        "90.0 MiB",
        "1.6 min",
        "no",
    ]
    assert cells(estimates[6]) == ["public.page\\_views", "4,200,000", "512.0 MiB", "yes"]
    assert cells(estimates[9]) == ["✅ privileges", "the role may do all of it"]

    assert section(text, "Plan hash")[0] == f"`{HASH}`"
    assert f"dbmigrate.io/approve={HASH}" in text


def test_without_lint_and_preflight_their_sections_say_so() -> None:
    text = plan_markdown(a_plan(pending=[]))
    assert section(text, "Pending versions") == [
        "Nothing pending: the database has every version of the migration set."
    ]
    assert "### Lint" not in text and "### Blocking statements" not in text
    assert section(text, "Preflight estimates")[0].startswith("Not run")
    assert text.splitlines()[3] == "**0 pending**"


def test_clean_lint_and_policy_off() -> None:
    clean = build_report(lint_sql("CREATE TABLE t (a int);\n", "001.sql"), "warn", 1)
    clean = build_report([f for f in clean.findings if f.rule != "DM301"], "warn", 1)
    text = plan_markdown(a_plan(), clean)
    assert section(text, "Blocking statements") == ["None found by the linter."]
    assert section(text, "Lint") == ["No findings in 1 file(s)."]
    off = plan_markdown(a_plan(), build_report([], "off", 1))
    assert section(off, "Lint") == ["Not run (policy off)."]
    assert "lint (" not in off.splitlines()[3]


def test_drift_is_listed_and_flagged() -> None:
    drift = DriftError(version=3, message="003_x.sql changed after it was applied")
    text = plan_markdown(a_plan(drift_errors=[drift]))
    assert "❌ drift (1)" in text.splitlines()[3]
    assert section(text, "❌ Drift") == ["- 003\\_x.sql changed after it was applied"]


def test_text_from_files_cannot_break_the_table_or_inject_html() -> None:
    hostile = 'x | y <img src="z"> **bold** `tick`\n# heading'
    assert escape(hostile) == (
        'x \\| y &lt;img src="z"&gt; \\*\\*bold\\*\\* \\`tick\\` \\# heading'
    )
    report = build_report(lint_sql("DELETE FROM t;", "we|ird`name.sql"), "strict", 1)
    finding = report.findings[0].model_copy(update={"message": hostile})
    report = report.model_copy(update={"findings": [finding]})
    text = plan_markdown(a_plan(), report)
    (row,) = section(text, "Lint")[2:]
    assert len(cells(row)) == 5
    assert cells(row)[1] == "`we\\|ird'name.sql:1:1`"
    assert "<img" not in text and "\n# heading" not in text
