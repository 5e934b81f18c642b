"""``dbmigrate plan --output markdown`` against a real PostgreSQL, as a CI bot runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from tests.db.engine_support import EXAMPLE, query
from tests.db.test_engine_cli import run

UNSAFE_006 = (
    "CREATE INDEX IF NOT EXISTS idx_page_views_referrer ON page_views (referrer);\n"
    "-- dbmigrate:ignore DM203 reason: retention_policies holds a handful of rows\n"
    "ALTER TABLE retention_policies ALTER COLUMN updated_at SET NOT NULL;\n"
)


def rows_of(markdown: str, title: str) -> list[list[str]]:
    """The data rows of the first table under a ``### title`` heading."""
    lines = markdown.splitlines()
    start = lines.index(f"### {title}")
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("### "):
            break
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip().strip("|").split(" | ")])
        elif table:
            break
    return table[2:]


def test_markdown_plan_of_a_fresh_database_with_preflight(database_url: str) -> None:
    planned = run(["plan", "--migrations", str(EXAMPLE), "--output", "json"], database_url)
    assert planned.returncode == 0, planned.stderr
    plan_hash = json.loads(planned.stdout)["planHash"]

    out = run(
        ["plan", "--migrations", str(EXAMPLE), "--output", "markdown", "--preflight"],
        database_url,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("<!-- dbmigrate:plan -->\n")
    assert [r[0] for r in rows_of(text, "Pending versions")] == ["1", "2", "3", "4", "5"]
    assert "lint (strict): 0 error(s), 0 warning(s), 0 waived, passed" in text
    assert "preflight: passed" in text
    indexes = {r[0] for r in rows_of(text, "Preflight estimates")}
    assert "idx\\_page\\_views\\_timestamp\\_desc\\_path" in indexes
    assert f"`{plan_hash}`" in text
    password = urlsplit(database_url).password
    assert not password or password not in text + out.stderr
    assert query(database_url, "SELECT to_regclass('public.users')") == [(None,)], "plan ran SQL"


def test_markdown_plan_shows_pending_findings_and_blocking_statements(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(EXAMPLE, folder)
    applied = run(["apply", "--migrations", str(folder), "--target", "3"], database_url)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    (folder / "006_referrer_index.sql").write_text(UNSAFE_006)

    out = run(["plan", "--migrations", str(folder), "--output", "markdown"], database_url)
    assert out.returncode == 1, "a lint error under the strict policy refuses the plan"
    text = out.stdout
    assert [r[0] for r in rows_of(text, "Pending versions")] == ["4", "5", "6"]
    assert "lint (strict): 1 error(s), 0 warning(s), 1 waived, **refused**" in text
    blocking = rows_of(text, "Blocking statements")
    assert [(r[0], r[1], r[3]) for r in blocking] == [
        ("`006_referrer_index.sql:1:1`", "DM201", "no"),
        ("`006_referrer_index.sql:3:1`", "DM203", "retention\\_policies holds a handful of rows"),
    ]
    assert "Not run (add `--preflight`" in text

    planned = json.loads(
        run(["plan", "--migrations", str(folder), "--output", "json"], database_url).stdout
    )
    assert f"`{planned['planHash']}`" in text

    rewritten = run(
        ["plan", "--migrations", str(folder), "--output", "markdown", "--auto-concurrently"],
        database_url,
    )
    assert rewritten.returncode == 0, "the rewrite settles DM201; DM203 is waived"
    assert [r[1] for r in rows_of(rewritten.stdout, "Blocking statements")] == ["DM203"]

    warned = run(
        ["plan", "--migrations", str(folder), "--output", "markdown", "--lint-policy", "warn"],
        database_url,
    )
    assert warned.returncode == 0
    assert "lint (warn): 1 error(s)" in warned.stdout
