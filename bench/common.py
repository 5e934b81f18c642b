"""Shared pieces of the benchmarks: a PostgreSQL server to run against, psql, timing.

Benchmarks start their own throwaway server (``testbed.postgres``) unless
DBMIGRATE_BENCH_DATABASE_URL names a superuser URL to use instead. They are never run as tests.
"""

from __future__ import annotations

import os
import statistics
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.postgres import PostgresServer, create_database, drop_database

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "database" / "migrations"
PG_BIN = Path(os.environ.get("DBMIGRATE_PG_BIN", "/usr/lib/postgresql/15/bin"))


@contextmanager
def server() -> Iterator[str]:
    """A superuser URL: the env's server, or a throwaway one stopped afterwards."""
    url = os.environ.get("DBMIGRATE_BENCH_DATABASE_URL")
    if url:
        yield url
        return
    pg = PostgresServer()
    pg.start()
    try:
        yield pg.admin_url
    finally:
        pg.stop()


@contextmanager
def database(admin_url: str, name: str) -> Iterator[str]:
    """A new database, dropped afterwards."""
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def psql(url: str, *files: Path, extra: tuple[str, ...] = ()) -> None:
    """Run files with psql, stopping at the first error (the guide's `\\i` path)."""
    argv = [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, *extra]
    for path in files:
        argv += ["-f", str(path)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:  # the argv holds the URL: report psql's own words only
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")


def median(values: list[float]) -> float:
    """The median, for timings repeated a few times."""
    return statistics.median(values)
