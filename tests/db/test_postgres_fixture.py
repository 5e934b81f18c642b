"""The db tier's fixtures give a real, empty, writable database per test."""

from __future__ import annotations

import os

import psycopg
import pytest

from testbed.postgres import PostgresServer, fresh_database
from testbed.proc import TestbedError


def test_database_is_fresh_and_writable(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO item VALUES (1, 'one'), (2, 'two')")
        conn.commit()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, name FROM item ORDER BY id").fetchall()
    assert rows == [(1, "one"), (2, "two")]


def test_database_is_dropped_after_the_test(pg_admin_url: str) -> None:
    with fresh_database(pg_admin_url) as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE kept_open (x int)")
            # an open session must not stop the drop: it is dropped WITH (FORCE)
            with psycopg.connect(pg_admin_url, autocommit=True) as admin:
                assert admin.execute(
                    "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
                ).fetchone() == (1,)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        left = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert left.fetchone() == (0,)


@pytest.mark.skipif(
    bool(os.environ.get("DBMIGRATE_TEST_DATABASE_URL")), reason="an external server's auth rules"
)
def test_password_is_required_on_tcp(pg_admin_url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(pg_admin_url)
    params["password"] = "wrong-password"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(make_conninfo("", **params), connect_timeout=5)


def test_failed_start_reports_the_log_tail() -> None:
    server = PostgresServer(max_connections=-5)
    with pytest.raises(TestbedError, match="PostgreSQL exited") as excinfo:
        server.start(timeout=30)
    assert "max_connections" in str(excinfo.value)
    assert server.proc is None


@pytest.mark.skipif(
    not os.environ.get("DBMIGRATE_TEST_PG_MAJOR"), reason="only when a major version is asked for"
)
def test_the_server_and_client_programs_are_of_the_major_asked_for(pg_admin_url: str) -> None:
    from dbmigrate.engine.undo import pgtools
    from testbed import pgversions

    release = pgversions.release_for(os.environ["DBMIGRATE_TEST_PG_MAJOR"])
    with psycopg.connect(pg_admin_url) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    assert pgtools.server_major(row[0]) == release.major
    client = os.environ.get(pgversions.CLIENT_MAJOR_ENV)
    client_major = pgversions.release_for(client).client_major if client else release.client_major
    for name in ("pg_dump", "pg_restore"):
        tool = pgtools.find_tool(name, release.major)
        assert tool.major == client_major, tool
        assert tool.path.startswith(str(pgversions.cache_root())), tool
