"""Concurrency: the migration advisory lock, lock timeouts with retries, blockers named."""

from __future__ import annotations

import time

import psycopg

from dbmigrate.api.plan import ApplyResult
from dbmigrate.engine import locking
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.errors import exit_code_for
from dbmigrate.engine.history import read_history
from dbmigrate.engine.sources import load_mapping
from tests.db.engine_support import Background, example_set, fast, open_transaction, query


def test_second_run_waits_for_the_lock_then_finds_nothing_to_do(database_url: str) -> None:
    slow = {"001_slow.sql": "CREATE TABLE IF NOT EXISTS s (id int);\nSELECT pg_sleep(1.5);"}
    first = Background(lambda: apply_migrations(database_url, load_mapping(slow), fast(), "one"))
    first.start()
    time.sleep(0.5)
    second = apply_migrations(database_url, load_mapping(slow), fast(lock_wait_seconds=20), "two")
    done = first.outcome()
    assert isinstance(done, ApplyResult)
    assert done.status == "succeeded"
    # the second run planned before the first committed, waited for the lock, re-planned under
    # it and ran nothing
    assert second.status in ("nothing_to_do", "succeeded")
    assert second.versions == []
    with psycopg.connect(database_url) as conn:
        assert [(r.version, r.applied_by) for r in read_history(conn)] == [(1, "one")]


def test_lock_held_too_long_names_the_holder_and_how_to_break_it(database_url: str) -> None:
    with psycopg.connect(
        database_url, autocommit=True, application_name="dbmigrate apply run-other"
    ) as holder:
        assert locking.try_lock(holder)
        pid = holder.info.backend_pid
        started = time.monotonic()
        result = apply_migrations(database_url, example_set(), fast(lock_wait_seconds=1.0), "me")
        waited = time.monotonic() - started
    assert 1.0 <= waited < 10
    assert (result.status, result.error_code) == ("failed", "LockHeldError")
    assert exit_code_for(result.error_code) == 3
    message = result.error or ""
    assert f"pid {pid}" in message
    assert "'dbmigrate apply run-other'" in message
    assert "connected since" in message
    assert f"pg_terminate_backend({pid})" in message
    assert query(database_url, "SELECT to_regclass('public.users')") == [(None,)]


def test_blocking_transaction_times_out_retries_and_names_the_blocker(database_url: str) -> None:
    query(database_url, "CREATE TABLE busy (id int)")
    files = {"001_alter.sql": "ALTER TABLE busy ADD COLUMN IF NOT EXISTS note text;"}
    settings = fast(lock_timeout_ms=300, max_retries=2, retry_backoff_seconds=0.2)
    with open_transaction(database_url, "report-tool", "SELECT * FROM busy") as blocker_pid:
        result = apply_migrations(database_url, load_mapping(files), settings, "run")
    assert (result.status, result.error_code) == ("failed", "55P03")
    assert exit_code_for(result.error_code) == 3
    [record] = result.versions
    assert (record.status, record.retries) == ("failed", 2)
    message = result.error or ""
    assert "001_alter.sql:1" in message
    assert "gave up after 3 attempts" in message
    assert f"pid {blocker_pid}" in message
    assert "'report-tool'" in message
    assert "idle in transaction" in message
    assert [b.pid for b in result.blockers] == [blocker_pid]
    assert result.blockers[0].query == "SELECT * FROM busy"
    with psycopg.connect(database_url) as conn:
        [row] = read_history(conn)
    assert (row.status, row.statements_done) == ("failed", 0)

    again = apply_migrations(database_url, load_mapping(files), settings, "run-2")
    assert again.status == "succeeded", again.error


def test_retry_succeeds_when_the_blocker_goes_away(database_url: str) -> None:
    query(database_url, "CREATE TABLE busy (id int)")
    files = {"001_alter.sql": "ALTER TABLE busy ADD COLUMN IF NOT EXISTS note text;"}
    settings = fast(lock_timeout_ms=300, max_retries=5, retry_backoff_seconds=0.5)
    with open_transaction(database_url, "short-lived", "SELECT * FROM busy"):
        run = Background(lambda: apply_migrations(database_url, load_mapping(files), settings, "r"))
        run.start()
        time.sleep(1.0)
    result = run.outcome()
    assert isinstance(result, ApplyResult)
    assert result.status == "succeeded", result.error
    assert result.versions[0].retries >= 1
