"""The watch's comparison, rule by rule: a Regressed verdict may roll a migration back, so each
rule that keeps a false positive out is tested on its own (pure: snapshots in, report out)."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from dbmigrate.api.watch import (
    Baseline,
    IndexCounters,
    Snapshot,
    StatementCounters,
    WatchThresholds,
)
from dbmigrate.engine.after.compare import compare, window_deltas

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DASH = "SELECT path, count(*) FROM page_views WHERE timestamp > $1 GROUP BY path"


def entry(
    queryid: int, calls: int, total: float, query: str = DASH, since: datetime | None = None
) -> StatementCounters:
    return StatementCounters(
        dbid=1,
        userid=10,
        queryid=queryid,
        toplevel=True,
        query=query,
        text_hash="",
        calls=calls,
        total_exec_time=total,
        stats_since=since,
    )


def snap(
    minutes: float, *entries: StatementCounters, dealloc: int | None = 0, **kw: object
) -> Snapshot:
    total = sum(e.total_exec_time for e in entries)
    return Snapshot(
        taken_at=T0 + timedelta(minutes=minutes),
        statements_available=True,
        dealloc=dealloc,
        statements=list(entries),
        statements_count=len(entries),
        statements_total_exec_time=total,
        **kw,
    )


def baseline(before_calls: int = 100, before_mean: float = 1.0, minutes: float = 5) -> Baseline:
    return Baseline(
        start=snap(0, entry(7, 1000, 1000.0)),
        end=snap(minutes, entry(7, 1000 + before_calls, 1000.0 + before_calls * before_mean)),
    )


def after(*pairs: tuple[int, float], queryid: int = 7, start_calls: int = 2000) -> list[Snapshot]:
    """After-window samples from 10 min on, each (calls so far, mean ms of the new calls)."""
    samples = [snap(10, entry(queryid, start_calls, 3000.0))]
    for i, (calls, mean) in enumerate(pairs, start=1):
        samples.append(snap(10 + i, entry(queryid, start_calls + calls, 3000.0 + calls * mean)))
    return samples


def test_a_query_five_times_slower_is_regressed() -> None:
    report = compare(baseline(), after((100, 5.0)))
    assert report.verdict == "Regressed"
    (worst,) = report.offenders
    assert worst.calls_before == 100 and worst.calls_after == 100
    assert worst.mean_before_ms == 1.0 and worst.mean_after_ms == 5.0 and worst.ratio == 5.0
    assert worst.extra_ms_per_hour == pytest.approx(4.0 * 100 * 60)
    assert worst.matched_by == "queryid" and "slower" in report.reason


def test_same_speed_is_no_regression() -> None:
    report = compare(baseline(), after((100, 1.1)))
    assert report.verdict == "NoRegression" and report.compared == 1 and not report.offenders


def test_too_few_calls_is_inconclusive_never_regressed() -> None:
    limits = WatchThresholds(min_calls=50)
    report = compare(baseline(before_calls=100), after((10, 50.0)), limits)
    assert report.verdict == "Inconclusive" and report.excluded.too_few_calls == 1
    assert not report.offenders


def test_a_ratio_without_the_absolute_delta_is_not_a_regression() -> None:
    report = compare(baseline(before_mean=0.01), after((100, 0.05)))
    assert report.offenders == [] and report.verdict == "NoRegression"


def test_slower_but_mattering_to_no_one_is_not_a_regression() -> None:
    """5x slower, 4 ms more per call, but 2 calls a minute among heavy queries: no share, no
    extra minute per hour."""
    heavy = "SELECT * FROM reports"
    limits = WatchThresholds(min_calls=2)
    base = Baseline(
        start=snap(0, entry(7, 0, 0.0), entry(8, 0, 0.0, heavy)),
        end=snap(60, entry(7, 120, 120.0), entry(8, 100, 600_000.0, heavy)),
    )
    samples = [
        snap(70, entry(7, 120, 120.0), entry(8, 100, 600_000.0, heavy)),
        snap(100, entry(7, 180, 420.0), entry(8, 150, 900_000.0, heavy)),
    ]
    report = compare(base, samples, limits)
    assert report.compared == 2 and report.offenders == []
    assert report.verdict == "NoRegression"
    sensitive = WatchThresholds(min_calls=2, min_extra_ms_per_hour=100)
    assert compare(base, samples, sensitive).verdict == "Regressed"


def test_a_new_queryid_matches_by_text_after_a_table_rebuild() -> None:
    samples = after((100, 6.0), queryid=99, start_calls=0)
    samples[0] = snap(10)  # the new queryid did not exist yet when the after window opened
    report = compare(baseline(), samples)
    assert report.verdict == "Regressed"
    assert report.offenders[0].matched_by == "text" and report.offenders[0].queryid == 99


def test_an_entry_reset_within_the_window_is_excluded() -> None:
    samples = after((100, 9.0))
    last = samples[-1].statements[0]
    samples[-1].statements[0] = last.model_copy(
        update={"stats_since": T0 + timedelta(minutes=10.5)}
    )
    report = compare(baseline(), samples)
    assert report.excluded.reset == 1 and report.verdict == "Inconclusive"


def test_counters_going_backwards_count_as_a_reset() -> None:
    samples = [snap(10, entry(7, 2000, 3000.0)), snap(11, entry(7, 150, 900.0))]
    report = compare(baseline(), samples)
    assert report.excluded.reset == 1 and report.offenders == []


def test_entries_missing_at_the_start_when_evictions_happened_are_excluded() -> None:
    samples = [snap(10, dealloc=3), snap(11, entry(99, 100, 900.0), dealloc=5)]
    report = compare(baseline(), samples)
    assert report.excluded.evicted == 1 and report.compared == 0
    assert report.verdict == "Inconclusive"


def test_without_evictions_a_new_entry_of_a_complete_snapshot_counts_whole() -> None:
    window = window_deltas([snap(10), snap(11, entry(99, 100, 900.0))])
    assert window.deltas[(1, 10, 99, True)].calls == 100


def test_an_entry_below_the_top_n_at_the_start_counts_from_where_it_appears() -> None:
    start = snap(10, entry(5, 10, 99_999.0, "SELECT heavy"))
    start.statements_count = 50  # cut to top-N: entry 7 was there but not kept
    middle = snap(11, entry(5, 10, 99_999.0, "SELECT heavy"), entry(7, 2000, 3000.0))
    end = snap(12, entry(5, 10, 99_999.0, "SELECT heavy"), entry(7, 2100, 3500.0))
    window = window_deltas([start, middle, end])
    delta = window.deltas[(1, 10, 7, True)]
    assert (delta.calls, delta.total_ms) == (100, 500.0)
    assert (1, 10, 7, True) not in window_deltas([start, end]).deltas


def test_a_short_baseline_is_inconclusive_even_with_an_offender() -> None:
    report = compare(baseline(minutes=0.5), after((100, 5.0)))
    assert report.verdict == "Inconclusive" and report.offenders
    assert "minBaselineSeconds" in report.reason


def test_no_pg_stat_statements_is_unavailable_and_says_how_to_enable() -> None:
    empty = Snapshot(taken_at=T0, missing=["pg_stat_statements is not installed; CREATE EXTENSION"])
    later = empty.model_copy(update={"taken_at": T0 + timedelta(minutes=5)})
    report = compare(Baseline(start=empty, end=later), [later, later])
    assert report.verdict == "Unavailable" and "CREATE EXTENSION" in report.missing[0]


def test_faster_queries_are_listed_as_improved() -> None:
    report = compare(baseline(before_mean=10.0), after((100, 1.0)))
    assert report.verdict == "NoRegression" and report.improved[0].ratio == 0.1


def test_new_indexes_scanned_or_not() -> None:
    old = IndexCounters(schema_name="public", table="t", index="t_pkey", idx_scan=5)
    base = baseline()
    base.end.indexes = [old]
    samples = after((100, 1.0))
    used = IndexCounters(schema_name="public", table="t", index="idx_new", idx_scan=0)
    idle = IndexCounters(schema_name="public", table="t", index="idx_idle", idx_scan=0)
    samples[0].indexes = [old, used, idle]
    samples[-1].indexes = [old, used.model_copy(update={"idx_scan": 42}), idle]
    report = compare(base, samples)
    assert {(u.index, u.scans, u.scanned) for u in report.new_indexes} == {
        ("idx_new", 42, True),
        ("idx_idle", 0, False),
    }
    assert report.unused_new_indexes == ["public.idx_idle"]
    named = compare(base, samples, new_indexes=[("public", "gone")])
    assert named.new_indexes[0].scans is None and not named.new_indexes[0].scanned


def timed(times: list[float], queryid: int = 7) -> StatementCounters:
    """An entry as pg_stat_statements keeps it after calls taking ``times`` (ms)."""
    return entry(queryid, len(times), sum(times)).model_copy(
        update={"stddev_exec_time": statistics.pstdev(times)}
    )


def outlier_windows(after_times: list[float]) -> tuple[Baseline, list[Snapshot]]:
    history = [0.1 + 0.01 * (i % 3) for i in range(100)]
    before = history + [0.1 + 0.01 * (i % 5) for i in range(30)]
    base = Baseline(start=snap(0, timed(history)), end=snap(5, timed(before)))
    return base, [snap(10, timed(before)), snap(11, timed(before + after_times))]


def test_one_slow_outlier_is_not_a_regression() -> None:
    """A 60 ms stall of one call among thirty 0.1 ms ones (a busy machine): the mean is 20x,
    but Welch's t is about 1."""
    base, samples = outlier_windows([0.1] * 29 + [60.0])
    report = compare(base, samples)
    row = report.improved + report.offenders
    assert report.verdict == "NoRegression" and not report.offenders, report.reason
    assert compare(base, samples, WatchThresholds(min_t_score=0)).verdict == "Regressed"
    assert row == [] and report.compared == 1


def test_a_steady_slowdown_is_significant() -> None:
    base, samples = outlier_windows([5.0 + 0.1 * (i % 4) for i in range(30)])
    report = compare(base, samples)
    assert report.verdict == "Regressed"
    t_score = report.offenders[0].t_score
    assert t_score is not None and t_score > 50
