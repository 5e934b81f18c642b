"""Fixtures of the db tier: a real PostgreSQL 15 server and a fresh database per test.

`pg_admin_url` is the superuser URL of a throwaway cluster started once per session by
`testbed.postgres`, or of the server named by env DBMIGRATE_TEST_DATABASE_URL (a superuser URL).
`database_url` is a new empty database for one test, dropped WITH (FORCE) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.postgres import admin_url_from_env_or_server, fresh_database
from testbed.proc import teardown_on_sigterm


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    teardown_on_sigterm()
    with admin_url_from_env_or_server() as url:
        yield url


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        yield url
