"""The performance watch on a real PostgreSQL of every supported major (13 to 18): snapshots read
the columns each version has, the counter deltas are exact, a dropped index is Regressed, a
swapped table (new queryids) is still matched by its text, evicted and reset entries are left
out, and a database without pg_stat_statements gets Unavailable with how to enable it."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from dbmigrate.api.watch import Baseline, Snapshot, WatchThresholds
from dbmigrate.cli.main import main
from dbmigrate.engine.after.compare import compare, window_deltas
from dbmigrate.engine.after.probes import Probe
from dbmigrate.engine.after.snapshot import take_snapshot
from testbed.postgres import (
    PostgresServer,
    create_database,
    drop_database,
    fresh_database,
    replace_dbname,
)

QUERY = "SELECT count(*) FROM events WHERE kind = %s"
LIMITS = WatchThresholds(min_calls=20, min_delta_ms=0.3, min_baseline_seconds=0)


def _setup(url: str, rows: int = 30_000) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, kind int, payload text)")
        conn.execute(
            "INSERT INTO events SELECT g, g %% 5000, repeat('x', 40) FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CREATE INDEX events_kind ON events (kind)")
        conn.execute("ANALYZE events")


def _calls(url: str, n: int = 30) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(n):
            conn.execute(QUERY, (i,))


def _snap(url: str, probes: tuple[Probe, ...] = ()) -> Snapshot:
    with psycopg.connect(url, autocommit=True) as conn:
        return take_snapshot(conn, LIMITS, probes)


@pytest.fixture(scope="module")
def events_template(pg_admin_url: str) -> Iterator[str]:
    """A database with the events table, copied for each test (faster than loading it again)."""
    name = f"watch_template_{secrets.token_hex(4)}"
    _setup(create_database(pg_admin_url, name))
    try:
        yield name
    finally:
        drop_database(pg_admin_url, name)


@pytest.fixture
def events_url(pg_admin_url: str, events_template: str) -> Iterator[str]:
    name = f"watch_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(events_template)
            )
        )
    url = replace_dbname(pg_admin_url, name)
    # The earlier tests of the tier fill pg_stat_statements (shared by the whole server) up to
    # pg_stat_statements.max, and a full one evicts as new entries come: the watch then leaves
    # the entries created in its windows out, as it must. The product never resets the
    # counters; a test that wants its own entries compared starts from an empty view.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    try:
        yield url
    finally:
        drop_database(pg_admin_url, name)


def _windows(url: str, migration: str) -> tuple[Baseline, list[Snapshot]]:
    start = _snap(url)
    _calls(url)
    baseline = Baseline(start=start, end=_snap(url))
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in migration.split(";"):
            if statement.strip():
                conn.execute(statement)
    after_start = _snap(url)
    _calls(url)
    if after_start.server_version_num < 150000:
        time.sleep(0.7)  # the statistics collector before 15 sends its counts every 500 ms
    return baseline, [after_start, _snap(url)]


def test_a_dropped_index_is_regressed_with_exact_deltas(events_url: str, pg_major: int) -> None:
    baseline, after = _windows(events_url, "DROP INDEX events_kind")
    snap = after[-1]
    assert snap.statements_available and snap.server_version_num // 10000 == pg_major
    assert (snap.dealloc is None) == (pg_major < 14)
    assert all((s.stats_since is None) == (pg_major < 17) for s in snap.statements)
    assert all((s.toplevel is None) == (pg_major < 14) for s in snap.statements)
    report = compare(baseline, after, LIMITS)
    assert report.verdict == "Regressed", report.reason
    (offender,) = [o for o in report.offenders if "events" in o.query]
    assert (offender.calls_before, offender.calls_after) == (30, 30)
    assert offender.matched_by == "queryid" and offender.ratio >= LIMITS.ratio
    assert offender.t_score is not None and offender.t_score >= LIMITS.min_t_score
    assert "dbmigrate watch" not in " ".join(s.query for s in snap.statements)
    assert report.database and report.database.after.blks_hit + report.database.after.blks_read
    assert report.database.after.xact_commit >= 30


def test_a_swapped_table_matches_by_text(events_url: str, pg_major: int) -> None:
    """Up to 17 a swapped table's queries get new queryids (the jumble holds the relation's oid),
    matched by text; 18 jumbles the relation's name, so they keep theirs."""
    swap = (
        "CREATE TABLE events_new (LIKE events INCLUDING DEFAULTS);"
        "INSERT INTO events_new SELECT * FROM events;"
        "ALTER TABLE events_new ADD PRIMARY KEY (id);"
        "ANALYZE events_new;"
        "DROP TABLE events;"
        "ALTER TABLE events_new RENAME TO events"
    )
    baseline, after = _windows(events_url, swap)
    report = compare(baseline, after, LIMITS)
    assert report.verdict == "Regressed", report.reason
    (offender,) = [o for o in report.offenders if "events" in o.query]
    assert offender.matched_by == ("text" if pg_major < 18 else "queryid")
    assert offender.calls_after == 30


def test_new_indexes_and_probe_timings(events_url: str, pg_major: int) -> None:
    probe = Probe("by-kind", "SELECT count(*) FROM events WHERE kind = 7", "events_kind")
    with psycopg.connect(events_url, autocommit=True) as conn:
        conn.execute("DROP INDEX events_kind")
    start = _snap(events_url)
    _calls(events_url)
    baseline = Baseline(start=start, end=_snap(events_url, (probe,)))
    with psycopg.connect(events_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX events_kind ON events (kind)")
        conn.execute("CREATE INDEX events_idle ON events (payload)")
    after = [_snap(events_url, (probe,))]
    _calls(events_url)
    if pg_major < 15:
        time.sleep(0.7)  # the statistics collector before 15 sends its counts every 500 ms
    after.append(_snap(events_url))
    report = compare(baseline, after, LIMITS)
    assert report.verdict == "NoRegression" and report.improved, report.reason
    scans = {u.index: u.scans for u in report.new_indexes}
    assert scans["events_kind"] is not None and scans["events_kind"] >= 30
    assert scans["events_idle"] == 0 and report.unused_new_indexes == ["public.events_idle"]
    (timing,) = report.probes
    assert timing.runs == LIMITS.probe_runs and timing.before_ms and timing.after_ms
    assert timing.after_ms < timing.before_ms


def test_reset_entries_are_left_out(events_url: str, pg_major: int) -> None:
    _calls(events_url, 40)
    start = _snap(events_url)
    (entry,) = [s for s in start.statements if "FROM events WHERE kind" in s.query]
    with psycopg.connect(events_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_stat_statements_reset(%s::oid, %s::oid, %s::bigint)",
            (entry.userid, entry.dbid, entry.queryid),
        )
    _calls(events_url, 10 if pg_major < 17 else 60)
    window = window_deltas([start, _snap(events_url)])
    key = (entry.dbid, entry.userid, entry.queryid, entry.toplevel)
    assert key not in window.deltas and window.reset >= 1


@pytest.fixture(scope="module")
def small_statements_server() -> Iterator[PostgresServer]:
    """A server keeping at most 100 statements (the least allowed), so entries get evicted."""
    server = PostgresServer(max_connections=10, settings={"pg_stat_statements.max": "100"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_evicted_entries_are_left_out(small_statements_server: PostgresServer) -> None:
    with fresh_database(small_statements_server.admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            start = take_snapshot(conn, LIMITS)
            for width in range(1, 160):
                columns = ", ".join(str(i) for i in range(width))
                conn.execute(f"SELECT {columns}")
            end = take_snapshot(conn, LIMITS)
        if start.server_version_num < 140000:
            assert end.dealloc is None
            assert any("pg_stat_statements_info" in note for note in end.missing)
            return
        assert end.dealloc is not None and start.dealloc is not None
        assert end.dealloc > start.dealloc
        window = window_deltas([start, end])
        assert window.evicted > 0
        assert not any(d.query.startswith("SELECT $1, $2") for d in window.deltas.values())


def test_without_the_extension_the_watch_says_what_is_missing(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        first = take_snapshot(conn, LIMITS)
        conn.execute("CREATE INDEX t_new ON t (id)")
        conn.execute("SELECT * FROM t WHERE id = 1")
        later = take_snapshot(conn, LIMITS)
    assert not later.statements_available
    assert "shared_preload_libraries" in later.missing[0]
    assert "CREATE EXTENSION pg_stat_statements" in later.missing[0]
    report = compare(Baseline(start=first, end=first), [first, later], LIMITS)
    assert report.verdict == "Unavailable" and report.missing == later.missing[:1]
    assert [u.index for u in report.new_indexes] == ["t_new"]


def test_snapshot_and_watch_by_hand(
    events_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dbmigrate snapshot, the index dropped, dbmigrate watch: Regressed, exit 1, as JSON."""
    stop = threading.Event()

    def workload() -> None:
        with psycopg.connect(events_url, autocommit=True) as conn:
            i = 0
            while not stop.is_set():
                conn.execute(QUERY, (i % 100,))
                i += 1

    thread = threading.Thread(target=workload, daemon=True)
    thread.start()
    baseline = tmp_path / "baseline.json"
    sampling = ["--database-url", events_url, "--top-n", "20"]
    try:
        assert main(["snapshot", *sampling, "--output", str(baseline), "--window", "500ms"]) == 0
        with psycopg.connect(events_url, autocommit=True) as conn:
            conn.execute("DROP INDEX events_kind")
        capsys.readouterr()
        code = main(
            [
                "watch",
                *sampling,
                "--baseline",
                str(baseline),
                "--duration",
                "3s",
                "--interval",
                "1s",
                "--min-baseline-seconds",
                "0",
                "--output",
                "json",
            ]
        )
    finally:
        stop.set()
        thread.join()
    report = json.loads(capsys.readouterr().out)
    assert (code, report["verdict"]) == (1, "Regressed"), report["reason"]
    assert report["offenders"][0]["query"].startswith("SELECT count(*) FROM events")
    assert report["samples"] >= 2
    assert main(["watch", "--database-url", events_url, "--baseline", str(tmp_path)]) == 2


def test_entries_of_other_roles_hidden_from_a_plain_role_are_said(events_url: str) -> None:
    _calls(events_url, 3)  # entries of the superuser
    role = f"watch_reader_{secrets.token_hex(4)}"
    with psycopg.connect(events_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'reader-pw'").format(sql.Identifier(role))
        )
    parts = urlsplit(events_url)
    netloc = f"{role}:reader-pw@{parts.hostname}:{parts.port}"
    try:
        with psycopg.connect(urlunsplit(parts._replace(netloc=netloc)), autocommit=True) as conn:
            snap = take_snapshot(conn, LIMITS)
        assert snap.statements_available
        assert any("pg_read_all_stats" in note for note in snap.missing), snap.missing
        assert all("FROM events" not in s.query for s in snap.statements)
    finally:
        with psycopg.connect(events_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
