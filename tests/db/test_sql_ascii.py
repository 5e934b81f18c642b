"""A database created with ENCODING 'SQL_ASCII' (common on servers initialised without a locale,
such as a container with no LANG): psycopg returns its text as bytes unless the client asks for
UTF8, and the plan step crashed on `bytes` identifiers (found when the kind tier's PostgreSQL was
first initialised that way). Every step's connection now asks for client_encoding UTF8."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from testbed.postgres import drop_database, replace_dbname
from tests.db.data import MIGRATIONS
from tests.db.test_engine_cli import run


@pytest.fixture
def sql_ascii_url(pg_admin_url: str) -> Iterator[str]:
    name = f"ascii_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            ).format(sql.Identifier(name))
        )
    try:
        yield replace_dbname(pg_admin_url, name)
    finally:
        drop_database(pg_admin_url, name)


def test_plan_preflight_and_apply_work_on_a_sql_ascii_database(sql_ascii_url: str) -> None:
    with psycopg.connect(sql_ascii_url) as conn:
        encoding = conn.execute("SHOW server_encoding").fetchone()
        assert encoding == (b"SQL_ASCII",)  # psycopg's own default: bytes
        conn.execute(Path(MIGRATIONS, "001_initial_schema.sql").read_text())  # the app's tables
        conn.commit()
    for command in ("plan", "preflight", "apply", "verify"):
        done = run([command, "--migrations", str(MIGRATIONS), "--output", "json"], sql_ascii_url)
        assert done.returncode == 0, f"{command}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    with psycopg.connect(sql_ascii_url) as conn:
        rows = conn.execute("SELECT count(*) FROM dbmigrate.schema_migrations").fetchone()
    assert rows == (5,)  # 001 (its IF NOT EXISTS finds the tables) to 005
