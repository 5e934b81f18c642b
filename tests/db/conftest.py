"""Fixtures of the db tier: a real PostgreSQL server and a fresh database per test.

`pg_admin_url` is the superuser URL of a throwaway cluster started once per session by
`testbed.postgres`, or of the server named by env DBMIGRATE_TEST_DATABASE_URL (a superuser URL).
The throwaway cluster is Debian's PostgreSQL 15 unless env DBMIGRATE_TEST_PG_MAJOR picks another
supported major (13 to 18, fetched and cached by `testbed.pgversions`; `make test-db-matrix` runs
the tier once per major); dbmigrate's pg_dump and pg_restore are then that major's client
programs for the whole session (env DBMIGRATE_PG_BIN).
`database_url` is a new empty database for one test, dropped WITH (FORCE) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbmigrate.engine.undo import pgtools
from testbed.postgres import (
    admin_url_from_env_or_server,
    fresh_database,
    use_test_major_client_tools,
)
from testbed.proc import teardown_on_sigterm
from tests.db.data import server_major


@pytest.fixture(scope="session", autouse=True)
def pg_client_tools() -> Iterator[None]:
    """The chosen major's client programs for every test of the session (see the module doc)."""
    with use_test_major_client_tools():
        yield


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    teardown_on_sigterm()
    with admin_url_from_env_or_server() as url:
        yield url


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def pg_major(pg_admin_url: str) -> int:
    """The major version of the server under test (13 to 18)."""
    return server_major(pg_admin_url)


@pytest.fixture(scope="session")
def pg_tool_bin(pg_major: int) -> str:
    """The folder of the pg_dump and pg_restore dbmigrate picks for the server under test."""
    return str(Path(pgtools.find_tool("pg_dump", pg_major).path).parent)
