"""lock_timeout/statement_timeout are in force for every statement, although the runner sets them
only when they differ from what it last set: a file that changes them does not leak its values
into the files and statements after it."""

from __future__ import annotations

import pytest

from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.sources import load_mapping
from tests.db.engine_support import fast, query

# Each file records the timeouts its statements ran with.
SEEN = (
    "INSERT INTO seen SELECT {v}, {i}, current_setting('lock_timeout'),"
    " current_setting('statement_timeout');"
)


def _seen(version: int, index: int) -> str:
    return SEEN.format(v=version, i=index)


def _timeouts(url: str) -> dict[tuple[int, int], tuple[str, str]]:
    rows = query(url, "SELECT version, step, lock, stmt FROM seen")
    return {(int(v), int(i)): (str(lock), str(stmt)) for v, i, lock, stmt in rows}  # type: ignore[call-overload]


FILES = {
    "001_seen.sql": "CREATE TABLE seen (version int, step int, lock text, stmt text);\n"
    + _seen(1, 1),
    # a transactional file changing both timeouts for its own statements
    "002_set.sql": "SET lock_timeout = '1ms';\n"
    "SELECT set_config('statement_timeout', '9s', false);\n" + _seen(2, 1),
    "003_after.sql": _seen(3, 1),
    # an autocommit file: each statement runs with the configured timeouts, the SET only in its
    # own step
    "004_autocommit.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS seen_v ON seen (version);\n"
    "SET lock_timeout = '3ms';\n" + _seen(4, 1) + "\n" + _seen(4, 2),
    "005_last.sql": _seen(5, 1),
}


@pytest.mark.parametrize("lock_ms", [2000, 0])
def test_every_file_runs_with_the_configured_timeouts(database_url: str, lock_ms: int) -> None:
    settings = fast(lock_timeout_ms=lock_ms, statement_timeout_ms=45_000)
    result = apply_migrations(database_url, load_mapping(FILES), settings, "timeouts")
    assert result.status == "succeeded", result.error
    configured = ("2s" if lock_ms else "0", "45s")
    assert _timeouts(database_url) == {
        (1, 1): configured,
        (2, 1): ("1ms", "9s"),  # the file's own SETs hold inside the file
        (3, 1): configured,
        (4, 1): configured,  # the SET committed with its own step; the next one sets again
        (4, 2): configured,
        (5, 1): configured,
    }


def test_concurrent_lock_timeout_applies_to_autocommit_statements_only(database_url: str) -> None:
    files = {
        "001_seen.sql": FILES["001_seen.sql"],
        "002_mixed.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS seen_v ON seen (version);\n"
        + _seen(2, 1),
        "003_tx.sql": _seen(3, 1),
    }
    settings = fast(lock_timeout_ms=2000, concurrent_lock_timeout_ms=7000)
    result = apply_migrations(database_url, load_mapping(files), settings, "mixed")
    assert result.status == "succeeded", result.error
    seen = _timeouts(database_url)
    assert seen[(2, 1)][0] == "2s"  # the ordinary step after the CONCURRENTLY build
    assert seen[(3, 1)][0] == "2s"
