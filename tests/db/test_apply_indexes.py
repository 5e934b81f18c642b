"""CONCURRENTLY builds: cancelled mid-way, the INVALID index left behind, and its recovery."""

from __future__ import annotations

import psycopg

from dbmigrate.api.plan import ApplyProgress, ApplyResult
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.history import read_history
from dbmigrate.engine.sources import load_mapping
from tests.db.engine_support import (
    Background,
    fast,
    index_state,
    open_transaction,
    query,
    wait_until,
)

ROWS = 200_000
FILES = {
    "001_items.sql": "CREATE TABLE IF NOT EXISTS items (id bigint, kind int, note text);",
    "002_index.sql": (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_kind ON items (kind);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_note ON items (note);\n"
    ),
}


def _seed(url: str) -> None:
    query(
        url,
        "INSERT INTO items SELECT g, g %% 97, md5(g::text) FROM generate_series(1, %s) g",
        (ROWS,),
    )


def _building_phase(url: str, pid: int) -> str | None:
    rows = query(url, "SELECT phase FROM pg_stat_progress_create_index WHERE pid = %s", (pid,))
    return str(rows[0][0]) if rows else None


def _apply_pid(url: str) -> int | None:
    rows = query(
        url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dbmigrate apply cancel-me'",
    )
    if not rows:
        return None
    pid = rows[0][0]
    assert isinstance(pid, int)
    return pid


def test_cancelled_concurrent_build_is_replaced_on_rerun(database_url: str) -> None:
    assert (
        apply_migrations(
            database_url, load_mapping({"001_items.sql": FILES["001_items.sql"]}), fast(), "setup"
        ).status
        == "succeeded"
    )
    _seed(database_url)
    samples: list[ApplyProgress] = []
    settings = fast(lock_timeout_ms=0)  # wait as long as it takes: the test cancels it
    # An open REPEATABLE READ snapshot holds the build in "waiting for old snapshots"
    with open_transaction(
        database_url, "old-snapshot", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SELECT 1"
    ) as snapshot_pid:
        run = Background(
            lambda: apply_migrations(
                database_url, load_mapping(FILES), settings, "cancel-me", samples.append
            )
        )
        run.start()
        wait_until(lambda: _apply_pid(database_url) is not None, what="the apply session")
        pid = _apply_pid(database_url)
        assert pid is not None
        wait_until(  # seconds on a quiet machine; generous for a loaded one
            lambda: _building_phase(database_url, pid) == "waiting for old snapshots",
            timeout=120,
            what="the build to wait for the old snapshot",
        )
        # The build may first wait for a moment on another session's short transaction (this
        # test's own polling, on a loaded machine): wait until a sample names the old snapshot.
        wait_until(
            lambda: any(snapshot_pid in [b.pid for b in s.blockers] for s in samples),
            timeout=60,
            what="a progress sample naming the old snapshot",
        )
        query(database_url, "SELECT pg_cancel_backend(%s)", (pid,))
        result = run.outcome()
    assert isinstance(result, ApplyResult)
    assert (result.status, result.error_code) == ("failed", "57014")
    assert "002_index.sql:1" in (result.error or "")

    # the live progress named the phase and the session holding the build up
    waiting = [s for s in samples if s.phase == "waiting for old snapshots"]
    assert waiting and waiting[-1].waiting
    named = [b for s in waiting for b in s.blockers if b.pid == snapshot_pid]
    assert named and named[-1].application_name == "old-snapshot"

    # the trap: an INVALID index is left behind, and the history says statement 1 did not finish
    assert index_state(database_url, "items_kind") == (False, True)
    with psycopg.connect(database_url) as conn:
        row = {r.version: r for r in read_history(conn)}[2]
    assert (row.status, row.statements_done) == ("failed", 0)

    rerun = apply_migrations(database_url, load_mapping(FILES), fast(), "rerun")
    assert rerun.status == "succeeded", rerun.error
    assert index_state(database_url, "items_kind") == (True, True)
    assert index_state(database_url, "items_note") == (True, True)
    assert [o.name for o in rerun.versions[0].created_objects] == ["items_kind", "items_note"]
    count = query(
        database_url,
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'items_kind%%' AND relkind = 'i'",
    )
    assert count == [(1,)]
    # the rebuilt index really answers queries
    plan_rows = query(database_url, "EXPLAIN SELECT * FROM items WHERE kind = 3")
    assert any("items_kind" in str(r[0]) for r in plan_rows)


def test_old_snapshot_makes_the_build_time_out_then_fail_naming_it(database_url: str) -> None:
    assert (
        apply_migrations(
            database_url, load_mapping({"001_items.sql": FILES["001_items.sql"]}), fast(), "setup"
        ).status
        == "succeeded"
    )
    settings = fast(
        lock_timeout_ms=5000,
        concurrent_lock_timeout_ms=400,
        max_retries=1,
        retry_backoff_seconds=0.1,
    )
    with open_transaction(
        database_url, "long-report", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SELECT 1"
    ) as pid:
        result = apply_migrations(database_url, load_mapping(FILES), settings, "run")
    assert (result.status, result.error_code) == ("failed", "55P03")
    assert result.versions[0].retries == 1
    assert pid in [b.pid for b in result.blockers]
    assert "'long-report'" in (result.error or "")
    assert index_state(database_url, "items_kind") == (False, True)

    rerun = apply_migrations(database_url, load_mapping(FILES), settings, "rerun")
    assert rerun.status == "succeeded", rerun.error
    assert index_state(database_url, "items_kind") == (True, True)


def test_invalid_index_with_if_not_exists_is_not_skipped(database_url: str) -> None:
    query(database_url, "CREATE TABLE items (id bigint, kind int, note text)")
    query(database_url, "INSERT INTO items VALUES (1, 1, 'a'), (2, 1, 'a')")
    # a failed unique build leaves an INVALID index of that name
    failed = apply_migrations(
        database_url,
        load_mapping(
            {"001_u.sql": "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_u ON items (kind);"}
        ),
        fast(),
        "r1",
    )
    assert (failed.status, failed.error_code) == ("failed", "23505")
    state = index_state(database_url, "items_u")
    assert state is not None and state[0] is False  # left behind, INVALID
    query(database_url, "DELETE FROM items WHERE id = 2")
    fixed = apply_migrations(
        database_url,
        load_mapping(
            {"001_u.sql": "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_u ON items (kind);"}
        ),
        fast(),
        "r2",
    )
    assert fixed.status == "succeeded", fixed.error
    assert index_state(database_url, "items_u") == (True, True)


def test_invalid_index_met_by_a_plain_build_in_an_autocommit_file_is_rebuilt(
    database_url: str,
) -> None:
    """A plain CREATE INDEX IF NOT EXISTS in a file that runs in autocommit (it has a CONCURRENTLY
    build too) must not skip an INVALID index of its name either."""
    query(database_url, "CREATE TABLE items (id bigint, kind int, note text)")
    query(database_url, "INSERT INTO items VALUES (1, 1, 'a'), (2, 1, 'a')")
    broken = {
        "001_u.sql": "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_u ON items (kind);"
    }
    failed = apply_migrations(database_url, load_mapping(broken), fast(), "r1")
    assert (failed.status, failed.error_code) == ("failed", "23505")
    assert index_state(database_url, "items_u") == (False, False)  # left behind, INVALID
    query(database_url, "DELETE FROM items WHERE id = 2")
    mixed = {
        "001_u.sql": (
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id ON items (id);\n"
            "CREATE UNIQUE INDEX IF NOT EXISTS items_u ON items (kind);\n"
        )
    }
    fixed = apply_migrations(database_url, load_mapping(mixed), fast(), "r2")
    assert fixed.status == "succeeded", fixed.error
    assert fixed.versions[0].mode == "autocommit"
    assert index_state(database_url, "items_u") == (True, True)
    assert {o.name for o in fixed.versions[0].created_objects} == {"items_id", "items_u"}
