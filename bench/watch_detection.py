"""How fast the performance watch sees a regression, how close its figures are to what the
application measures, and how often it cries wolf (never run as a test).

    python3 -m bench.watch_detection [PAGE_VIEWS] [NOOPS] [MIN_T]   # defaults: 1000000, 10, 3

One database with the worked example's data (``testbed.demo.load_analytics``: 001, then PAGE_VIEWS
page views; 002-004 applied; pg_stat_statements created). A steady workload runs in its own
process all along: the dashboard queries of the guide (a page's recent views, a session's views,
the active sessions), each timed by the workload itself. Then, through the engine
(``engine.after.watching``: baseline, migration, watch), three phases:

1. the real 005 (its indexes built CONCURRENTLY) against a baseline without them: the verdict and
   the dashboard queries shown faster;
2. a regressing migration: DROP INDEX idx_page_views_timestamp_desc_path, the index the
   dashboard's recent-views query uses: the time from the end of the DROP to the Regressed
   verdict, and the slowdown pg_stat_statements measured next to the one the workload measured;
3. NOOPS no-op migrations (a column added to users, which no dashboard query reads), each with
   its own baseline and watch, stopping at the first Regressed as the operator would: every
   Regressed verdict is a false positive.

MIN_T is the thresholds' minTScore (0 turns the significance test off, to see what it is for).
Windows are shorter than the spec's defaults to keep the run to minutes (baseline and watch
``WINDOW`` seconds, a sample every ``INTERVAL``); the thresholds are the defaults otherwise.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path

import psycopg

from bench.common import MIGRATIONS, database, psql, server
from dbmigrate.api.watch import Baseline, WatchReport, WatchThresholds
from dbmigrate.engine.after.probes import Probe
from dbmigrate.engine.after.watching import WatchSettings, take_baseline, watch
from dbmigrate.engine.statements import split_statements
from testbed.demo import load_analytics

WINDOW = float(os.environ.get("DBMIGRATE_BENCH_WATCH_WINDOW", "30"))  # seconds
INTERVAL = float(os.environ.get("DBMIGRATE_BENCH_WATCH_INTERVAL", "5"))
RATE = 8.0  # workload queries per second, all kinds together
LIMITS = WatchThresholds(min_baseline_seconds=int(WINDOW))
PATHS = ("/dashboard", "/reports", "/settings", "/users", "/export")
RECENT = "SELECT * FROM page_views WHERE path = %s ORDER BY timestamp DESC LIMIT 100"
SESSION = "SELECT * FROM page_views WHERE session_id = %s ORDER BY timestamp DESC"
ACTIVE = (
    "SELECT id, user_id, last_activity_at FROM visitor_sessions WHERE ended_at IS NULL"
    " AND last_activity_at > now() - interval '24 hours' ORDER BY last_activity_at DESC LIMIT 50"
)
PROBE = Probe(
    "recent-dashboard",
    "SELECT * FROM page_views WHERE path = '/dashboard' ORDER BY timestamp DESC LIMIT 100",
    "idx_page_views_timestamp_desc_path",
)


def workload(url: str, log_path: str, stop: Event, sessions: int) -> None:
    """Run the dashboard queries at RATE per second until ``stop``; log (time, kind, ms)."""
    rng = random.Random(7)
    kinds = (("recent", RECENT), ("session", SESSION), ("active", ACTIVE))
    with psycopg.connect(url, autocommit=True) as conn, open(log_path, "w") as log:
        next_at = time.monotonic()
        while not stop.is_set():
            kind, query = kinds[rng.randrange(3)]
            params: tuple[object, ...] = ()
            if kind == "recent":
                params = (rng.choice(PATHS),)
            elif kind == "session":
                params = (rng.randrange(1, sessions),)
            began = time.perf_counter()
            conn.execute(query, params).fetchall()
            log.write(f"{time.time():.3f} {kind} {(time.perf_counter() - began) * 1000:.3f}\n")
            log.flush()
            next_at += 1 / RATE
            time.sleep(max(next_at - time.monotonic(), 0))


def client_median(log_path: Path, kind: str, start: float, end: float) -> tuple[float, int]:
    """The workload's own median latency (ms) of ``kind`` between two wall-clock times."""
    times = []
    for line in log_path.read_text().splitlines():
        at, what, ms = line.split()
        if what == kind and start <= float(at) <= end:
            times.append(float(ms))
    return (statistics.median(times) if times else float("nan")), len(times)


@dataclass
class Phase:
    """One baseline, migration and watch."""

    report: WatchReport
    migration_seconds: float
    verdict_seconds: float  # from the end of the migration to the verdict
    before: tuple[float, float]
    after: tuple[float, float]


def run_phase(url: str, migration: list[str], settings: WatchSettings) -> Phase:
    def connect() -> contextlib.AbstractContextManager[psycopg.Connection]:
        return psycopg.connect(url, autocommit=True)

    before_start = time.time()
    baseline: Baseline = take_baseline(connect, WINDOW, settings.thresholds, settings.probes)
    before_end = time.time()
    began = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in migration:
            conn.execute(statement)
    migrated = time.monotonic()
    after_start = time.time()
    report = watch(connect, baseline, settings)
    return Phase(
        report=report,
        migration_seconds=migrated - began,
        verdict_seconds=time.monotonic() - migrated,
        before=(before_start, before_end),
        after=(after_start, time.time()),
    )


def recent_row(phase: Phase, log_path: Path) -> str:
    """pg_stat_statements' figures for the recent-views query beside the workload's own."""
    rows = [r for r in (*phase.report.offenders, *phase.report.improved) if "path = $1" in r.query]
    before, n_before = client_median(log_path, "recent", *phase.before)
    after, n_after = client_median(log_path, "recent", *phase.after)
    watched = (
        f"{rows[0].mean_before_ms:.2f} -> {rows[0].mean_after_ms:.2f} ms "
        f"(x{rows[0].ratio:g}, mean, t {rows[0].t_score})"
        if rows
        else "not listed"
    )
    return (
        f"  recent-views: watch {watched}; workload {before:.2f} -> {after:.2f} ms "
        f"(x{after / before:.3g}, median of {n_before} / {n_after})"
    )


@contextlib.contextmanager
def running_workload(url: str, log_path: Path, sessions: int) -> Iterator[None]:
    stop = multiprocessing.Event()
    proc = multiprocessing.Process(target=workload, args=(url, str(log_path), stop, sessions))
    proc.start()
    try:
        yield
    finally:
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
            proc.join()


def main(page_views: int, noops: int, min_t: float) -> int:
    log_path = Path("/tmp/dbmigrate-bench-watch-workload.log")
    limits = LIMITS.model_copy(update={"min_t_score": min_t})
    settings = WatchSettings(
        duration_seconds=WINDOW, interval_seconds=INTERVAL, thresholds=limits, probes=(PROBE,)
    )
    with server() as admin, database(admin, "bench_watch") as url:
        started = time.monotonic()
        load_analytics(url, page_views)
        psql(url, *sorted(MIGRATIONS.glob("00[234]_*.sql")))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        print(f"loaded {page_views} page views in {time.monotonic() - started:.0f}s", flush=True)
        with running_workload(url, log_path, max(page_views // 15, 10)):
            text = (MIGRATIONS / "005_add_performance_indexes.sql").read_text()
            statements = [s.text for s in split_statements(text)]
            real = run_phase(url, statements, settings)
            print(
                f"005: {real.report.verdict} ({real.report.reason}); built in "
                f"{real.migration_seconds:.1f}s",
                flush=True,
            )
            print(recent_row(real, log_path), flush=True)
            for probe in real.report.probes:
                print(f"  probe {probe.probe}: {probe.before_ms} -> {probe.after_ms} ms median")
            drop = run_phase(url, ["DROP INDEX idx_page_views_timestamp_desc_path"], settings)
            print(
                f"drop: {drop.report.verdict} after {drop.verdict_seconds:.1f}s "
                f"({drop.report.samples} samples); {drop.report.reason}",
                flush=True,
            )
            print(recent_row(drop, log_path), flush=True)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(statements[0])  # the index back
            verdicts = []
            for i in range(noops):
                noop = [f"ALTER TABLE users ADD COLUMN noop_{i} integer"]
                phase = run_phase(url, noop, settings)
                verdicts.append(phase.report.verdict)
                print(
                    f"no-op {i + 1}: {phase.report.verdict}; {phase.report.compared} compared; "
                    f"{phase.report.reason}",
                    flush=True,
                )
        regressed = verdicts.count("Regressed")
        print(
            f"no-ops: {regressed} Regressed of {len(verdicts)} "
            f"({', '.join(f'{v}: {verdicts.count(v)}' for v in sorted(set(verdicts)))})"
        )
    return 0


if __name__ == "__main__":
    given = sys.argv[1:]
    sys.exit(
        main(
            int(given[0]) if given else 1_000_000,
            int(given[1]) if len(given) > 1 else 10,
            float(given[2]) if len(given) > 2 else LIMITS.min_t_score,
        )
    )
