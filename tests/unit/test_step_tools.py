"""Client-program versions, their command lines (no password), and rollback's pure choices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine.history import HistoryRow
from dbmigrate.engine.undo import pgtools, restore, rollback


def test_parse_tool_version() -> None:
    assert pgtools.parse_tool_version("pg_dump (PostgreSQL) 15.8 (Debian 15.8-1)") == (15, 8)
    assert pgtools.parse_tool_version("pg_restore (PostgreSQL) 17devel") == (17, 0)
    assert pgtools.parse_tool_version("pg_dump (PostgreSQL) 9.6.24") == (9, 6)
    with pytest.raises(pgtools.ToolVersionError):
        pgtools.parse_tool_version("something else 1.0")


def test_server_major_and_choice() -> None:
    assert pgtools.server_major(150008) == 15 and pgtools.server_major(90624) == 9
    tools = [pgtools.Tool(f"/b{m}/pg_dump", m, 0, "") for m in (14, 16, 15)]
    assert pgtools.choose_tool(tools, 15).major == 15  # type: ignore[union-attr]
    assert pgtools.choose_tool(tools, 13).major == 16  # type: ignore[union-attr]
    assert pgtools.choose_tool([], 15) is None


def test_older_tool_is_refused_with_advice() -> None:
    old = pgtools.Tool("/usr/bin/pg_dump", 14, 9, "")
    with pytest.raises(pgtools.ToolVersionError, match=r"older than the server .*--pg-bin"):
        pgtools.require_not_older(old, "pg_dump", 15)
    pgtools.require_not_older(pgtools.Tool("/x", 16, 0, ""), "pg_dump", 15)


def test_missing_tool_folder(tmp_path: Path) -> None:
    with pytest.raises(pgtools.ToolNotFound, match="pg_dump not found"):
        pgtools.find_tool("pg_dump", 15, str(tmp_path))


def test_password_travels_in_the_environment_only() -> None:
    url = "postgresql://app:s3cr%40t@db.example:6432/analytics?sslmode=require"
    conninfo, env = pgtools.libpq_args(url, dbname="other db")
    assert "s3cr" not in conninfo and env["PGPASSWORD"] == "s3cr@t"
    params = conninfo_to_dict(conninfo)
    assert params["dbname"] == "other db" and params["sslmode"] == "require"
    argv = restore.restore_argv(
        pgtools.Tool("/bin/pg_restore", 15, 0, ""), Path("/b.dump"), conninfo, 1, clean=True
    )
    assert all("s3cr" not in a for a in argv)
    assert "--single-transaction" in argv and "--clean" in argv and "--if-exists" in argv
    parallel = restore.restore_argv(
        pgtools.Tool("/bin/pg_restore", 15, 0, ""), Path("/b.dump"), conninfo, 4, clean=False
    )
    assert "--jobs=4" in parallel and "--single-transaction" not in parallel
    assert "--clean" not in parallel


def _row(version: int, run: str, started: datetime, status: str = "applied") -> HistoryRow:
    return HistoryRow(version, f"v{version}", "c", status, started_at=started, applied_by=run)


def test_default_versions_are_the_last_runs() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        _row(1, "r1", t),
        _row(2, "r1", t + timedelta(seconds=1)),
        _row(3, "r2", t + timedelta(hours=1)),
        _row(4, "r2", t + timedelta(hours=1, seconds=3), status="failed"),
        _row(5, "r3", t + timedelta(hours=2), status="rolled_back"),
    ]
    assert rollback.default_versions(rows) == [3, 4]
    assert rollback.default_versions([]) == []


def test_drop_statements_quote_identifiers() -> None:
    index = CreatedObject(kind="index", schema_name='we"ird', name="idx ü", table="t")
    text = rollback.drop_statement(index, 'we"ird').as_string(None)
    assert text == 'DROP INDEX CONCURRENTLY IF EXISTS "we""ird"."idx ü"'
    column = CreatedObject(kind="column", schema_name="s", name="c c", table="t")
    assert rollback.drop_statement(column, "s").as_string(None) == (
        'ALTER TABLE IF EXISTS "s"."t" DROP COLUMN IF EXISTS "c c"'
    )
    schema = CreatedObject(kind="schema", name="new")
    assert rollback.drop_statement(schema, "public").as_string(None) == (
        'DROP SCHEMA IF EXISTS "new"'
    )
    with pytest.raises(rollback.RollbackError, match="no table"):
        rollback.drop_statement(CreatedObject(kind="column", name="c"), "s")
