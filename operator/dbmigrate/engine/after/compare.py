"""The watch's verdict: the counter deltas of the before and after windows, compared per query.

Pure (snapshots in, a ``WatchReport`` out), so every rule is tested without a server. The rules
keep false positives out, because a Regressed verdict may roll a migration back:

- A window's delta of an entry (per dbid, userid, queryid, toplevel) is its counters at the
  window's end minus those at its start. An entry reset within the window (``stats_since`` after
  the start, PG 17+, or counters that went backwards) is excluded; so is an entry absent at the
  start when entries were evicted during the window (``dealloc`` grew, PG 14+): its counters
  cover an unknown part of the window. An entry absent at the start of a complete snapshot (not
  cut to top-N) and created within the window counts whole.
- The two windows' entries match by key; where a key is in one window only (a rebuilt or
  swapped table changes every queryid on it), they match by (userid, toplevel, normalized text).
- A query is compared only with ``minCalls`` in both windows; it is regressed only when slower by
  ``ratio`` AND by ``minDeltaMs`` per call AND significantly (Welch's t from the windows' sums
  of squares, which pg_stat_statements' stddev gives: a few outliers on a busy machine do not
  make a slowdown) AND it matters (share of the after window's time, or extra time per hour).
  Too few calls anywhere gives Inconclusive, never Regressed; so does a before window shorter
  than ``minBaselineSeconds``. No pg_stat_statements at all: Unavailable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dbmigrate.api.watch import (
    REPORT_LIMIT,
    Baseline,
    DatabaseDeltas,
    DatabaseWindow,
    ExcludedCounts,
    IndexUsage,
    MatchedBy,
    ProbeTiming,
    QueryComparison,
    Snapshot,
    StatementCounters,
    Verdict,
    WatchReport,
    WatchThresholds,
    WatchWindow,
)

Key = tuple[int, int, int, bool | None]
TextKey = tuple[int, bool | None, str]


@dataclass
class Delta:
    """What one query did within one window."""

    query: str
    queryid: int | None
    calls: int = 0
    total_ms: float = 0.0
    squares: float | None = 0.0  # sum of the squared times (ms²); None: no stddev to know it

    def add(self, calls: int, total_ms: float, squares: float | None) -> None:
        self.calls += calls
        self.total_ms += total_ms
        self.squares = None if self.squares is None or squares is None else self.squares + squares

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    @property
    def variance(self) -> float | None:
        """The sample variance of the window's times (ms²), or None when unknown."""
        if self.squares is None:
            return None
        if self.calls < 2:
            return 0.0
        spread = self.squares - self.calls * self.mean_ms**2
        return max(spread, 0.0) / (self.calls - 1)


def squares(entry: StatementCounters) -> float | None:
    """Σ time² of an entry since it started counting, from its mean and population stddev."""
    if entry.stddev_exec_time is None or entry.calls == 0:
        return None
    mean = entry.total_exec_time / entry.calls
    return entry.calls * (entry.stddev_exec_time**2 + mean**2)


def welch_t(before: Delta, after: Delta) -> float | None:
    """Welch's t of (mean after - mean before): how many standard errors the slowdown is."""
    var_before, var_after = before.variance, after.variance
    if var_before is None or var_after is None or not (before.calls and after.calls):
        return None
    error = math.sqrt(var_before / before.calls + var_after / after.calls)
    diff = after.mean_ms - before.mean_ms
    if error == 0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / error


@dataclass
class WindowDeltas:
    """A window's deltas by key, and the entries left out of it."""

    seconds: float
    deltas: dict[Key, Delta] = field(default_factory=dict)
    texts: dict[Key, TextKey] = field(default_factory=dict)
    evicted: int = 0
    reset: int = 0
    total_ms: float = 0.0


def _key(entry: StatementCounters) -> Key:
    return (entry.dbid, entry.userid, entry.queryid, entry.toplevel)


def _text_key(entry: StatementCounters) -> TextKey:
    return (entry.userid, entry.toplevel, entry.text_hash or entry.query)


def _complete(snap: Snapshot) -> bool:
    """Whether ``snap`` holds every entry of the database (not cut to top-N)."""
    return snap.statements_count <= len(snap.statements)


def _first_holding(
    samples: Sequence[Snapshot], held: Sequence[dict[Key, StatementCounters]], key: Key
) -> tuple[Snapshot, StatementCounters] | None:
    """The earliest sample holding ``key``, and its counters there."""
    for snap, found in zip(samples, held, strict=False):
        if key in found:
            return snap, found[key]
    return None


def window_deltas(samples: Sequence[Snapshot]) -> WindowDeltas:
    """The per-entry deltas over ``samples`` (snapshots of one server, oldest first).

    An entry's delta runs from the first sample that holds it to the last: an entry that was
    below the top-N at the start but made it later counts from there (exact, if partial)."""
    start, end = samples[0], samples[-1]
    window = WindowDeltas(seconds=max((end.taken_at - start.taken_at).total_seconds(), 0.0))
    held = [{_key(s): s for s in snap.statements} for snap in samples[:-1]]
    evictions = (
        start.dealloc is not None and end.dealloc is not None and end.dealloc > start.dealloc
    )
    for entry in end.statements:
        key = _key(entry)
        first = _first_holding(samples, held, key)
        created_within = entry.stats_since is not None and entry.stats_since > start.taken_at
        if first is not None and (first[0] is start or not created_within):
            since, old = first
            calls, total = entry.calls - old.calls, entry.total_exec_time - old.total_exec_time
            now_sq, then_sq = squares(entry), squares(old)
            sq = None if now_sq is None or then_sq is None else now_sq - then_sq
            reset = entry.stats_since is not None and entry.stats_since > since.taken_at
            if reset or calls < 0 or total < 0:
                window.reset += 1
                continue
        elif evictions:
            window.evicted += 1
            continue
        elif created_within or _complete(start):
            calls, total, sq = entry.calls, entry.total_exec_time, squares(entry)
        else:
            continue  # below the top-N of every earlier sample: its delta is unknown
        if calls <= 0:
            continue
        window.deltas[key] = Delta(entry.query, entry.queryid, calls, total, sq)
        window.texts[key] = _text_key(entry)
    known = sum(d.total_ms for d in window.deltas.values())
    total_all = end.statements_total_exec_time - start.statements_total_exec_time
    window.total_ms = max(known, total_all)
    return window


@dataclass(frozen=True)
class Pair:
    """A query's delta in the before window and in the after window."""

    before: Delta
    after: Delta
    matched_by: MatchedBy


def _by_text(window: WindowDeltas, keys: Iterable[Key]) -> dict[TextKey, Delta]:
    grouped: dict[TextKey, Delta] = {}
    for key in keys:
        delta = window.deltas[key]
        group = grouped.setdefault(window.texts[key], Delta(delta.query, delta.queryid))
        group.add(delta.calls, delta.total_ms, delta.squares)
    return grouped


def match(before: WindowDeltas, after: WindowDeltas) -> tuple[list[Pair], int]:
    """Pairs of the same query in both windows (by key, then by text), and how many were left."""
    shared = before.deltas.keys() & after.deltas.keys()
    pairs = [Pair(before.deltas[k], after.deltas[k], "queryid") for k in sorted(shared)]
    only_before = _by_text(before, before.deltas.keys() - shared)
    only_after = _by_text(after, after.deltas.keys() - shared)
    for text in sorted(only_before.keys() & only_after.keys(), key=repr):
        pairs.append(Pair(only_before[text], only_after[text], "text"))
    unmatched = len(only_before.keys() ^ only_after.keys())
    return pairs, unmatched


def _comparison(pair: Pair, after: WindowDeltas) -> QueryComparison:
    mean_before, mean_after = pair.before.mean_ms, pair.after.mean_ms
    hours = after.seconds / 3600 if after.seconds > 0 else float("inf")
    share = 100.0 * pair.after.total_ms / after.total_ms if after.total_ms > 0 else 0.0
    ratio = mean_after / mean_before if mean_before > 0 else float("inf")
    return QueryComparison(
        query=pair.after.query,
        queryid=pair.after.queryid,
        matched_by=pair.matched_by,
        calls_before=pair.before.calls,
        calls_after=pair.after.calls,
        mean_before_ms=round(mean_before, 4),
        mean_after_ms=round(mean_after, 4),
        ratio=round(min(ratio, 1e9), 3),
        extra_ms_per_hour=round((mean_after - mean_before) * pair.after.calls / hours, 1),
        share_percent=round(min(share, 100.0), 2),
        t_score=_finite(welch_t(pair.before, pair.after)),
    )


def _finite(value: float | None) -> float | None:
    """Rounded, and bounded (the status is JSON: no infinities)."""
    return None if value is None else round(max(min(value, 1e9), -1e9), 2)


def regressed(row: QueryComparison, limits: WatchThresholds) -> bool:
    """Slower by the ratio AND the absolute delta, and mattering (share or extra time/hour)."""
    slower = row.ratio >= limits.ratio and (
        row.mean_after_ms - row.mean_before_ms >= limits.min_delta_ms
    )
    significant = row.t_score is None or row.t_score >= limits.min_t_score
    matters = (
        row.share_percent >= limits.min_share_percent
        or row.extra_ms_per_hour >= limits.min_extra_ms_per_hour
    )
    return slower and significant and matters


def improved(row: QueryComparison, limits: WatchThresholds) -> bool:
    """Faster by the ratio AND the absolute delta."""
    saved = row.mean_before_ms - row.mean_after_ms
    if saved < limits.min_delta_ms:
        return False
    return row.mean_after_ms == 0 or row.mean_before_ms / row.mean_after_ms >= limits.ratio


def _window(start: Snapshot, end: Snapshot) -> WatchWindow:
    seconds = max((end.taken_at - start.taken_at).total_seconds(), 0.0)
    return WatchWindow(start=start.taken_at, end=end.taken_at, seconds=round(seconds, 3))


def database_window(start: Snapshot, end: Snapshot) -> DatabaseWindow:
    """The database-wide deltas of one window (zero where a counter went backwards: a reset)."""
    a, b = start.database_counters, end.database_counters
    seconds = max((end.taken_at - start.taken_at).total_seconds(), 1e-9)

    def delta(name: str) -> int:
        return max(int(getattr(b, name)) - int(getattr(a, name)), 0)

    read, hit = delta("blks_read"), delta("blks_hit")
    return DatabaseWindow(
        xact_commit=delta("xact_commit"),
        xact_rollback=delta("xact_rollback"),
        blks_read=read,
        blks_hit=hit,
        temp_bytes=delta("temp_bytes"),
        deadlocks=delta("deadlocks"),
        commits_per_second=round(delta("xact_commit") / seconds, 3),
        blks_read_per_second=round(read / seconds, 3),
        temp_bytes_per_second=round(delta("temp_bytes") / seconds, 3),
        cache_hit_percent=round(100.0 * hit / (hit + read), 2) if hit + read else None,
    )


def index_usage(
    after_start: Snapshot, after_end: Snapshot, new_indexes: Sequence[tuple[str, str]]
) -> list[IndexUsage]:
    """The idx_scan delta over the after window of each (schema, index) in ``new_indexes``."""
    first = {(i.schema_name, i.index): i for i in after_start.indexes}
    last = {(i.schema_name, i.index): i for i in after_end.indexes}
    usage = []
    for schema, name in new_indexes:
        now = last.get((schema, name))
        if now is None:
            usage.append(IndexUsage(schema_name=schema, index=name, scans=None, scanned=False))
            continue
        then = first.get((schema, name))
        scans = now.idx_scan - (then.idx_scan if then is not None else 0)
        scans = now.idx_scan if scans < 0 else scans
        usage.append(
            IndexUsage(
                schema_name=schema, table=now.table, index=name, scans=scans, scanned=scans > 0
            )
        )
    return usage


def indexes_created(baseline_end: Snapshot, later: Snapshot) -> list[tuple[str, str]]:
    """The (schema, index) pairs ``later`` has and the end of the baseline had not."""
    old = {(i.schema_name, i.index) for i in baseline_end.indexes}
    return [(i.schema_name, i.index) for i in later.indexes if (i.schema_name, i.index) not in old]


def probe_timings(before: Snapshot, after: Snapshot, limits: WatchThresholds) -> list[ProbeTiming]:
    """Each probe's median before and after, flagged when slower by the ratio and the delta."""
    old = {p.name: p for p in before.probes}
    rows = []
    for probe in after.probes:
        then = old.get(probe.name)
        before_ms = then.median_ms if then is not None else None
        ratio = None
        slower = False
        if before_ms is not None and probe.median_ms is not None:
            ratio = round(probe.median_ms / before_ms, 3) if before_ms > 0 else None
            slower = (ratio is None or ratio >= limits.ratio) and (
                probe.median_ms - before_ms >= limits.min_delta_ms
            )
        rows.append(
            ProbeTiming(
                probe=probe.name,
                before_ms=before_ms,
                after_ms=probe.median_ms,
                runs=probe.runs,
                ratio=ratio,
                regressed=slower,
            )
        )
    return rows


def _missing(snapshots: Sequence[Snapshot]) -> list[str]:
    seen: list[str] = []
    for snap in snapshots:
        for note in snap.missing:
            if note not in seen:
                seen.append(note)
    return seen[:REPORT_LIMIT]


def _statements_verdict(
    report: WatchReport, limits: WatchThresholds, baseline_seconds: float
) -> tuple[Verdict, str]:
    if report.offenders:
        worst = report.offenders[0]
        text = (
            f"{len(report.offenders)} quer{'y' if len(report.offenders) == 1 else 'ies'} "
            f"slower: {worst.query[:80]!r} {worst.mean_before_ms:g} -> {worst.mean_after_ms:g} "
            f"ms per call (x{worst.ratio:g}, {worst.calls_after} calls)"
        )
        if baseline_seconds < limits.min_baseline_seconds:
            return "Inconclusive", (
                f"the before window ({baseline_seconds:.0f}s) is shorter than minBaselineSeconds "
                f"({limits.min_baseline_seconds}s), so nothing is called regressed; it shows {text}"
            )
        return "Regressed", text
    if baseline_seconds < limits.min_baseline_seconds:
        return "Inconclusive", (
            f"the before window ({baseline_seconds:.0f}s) is shorter than minBaselineSeconds "
            f"({limits.min_baseline_seconds}s)"
        )
    if report.compared == 0:
        return "Inconclusive", (
            f"no query ran at least minCalls ({limits.min_calls}) times in both windows "
            f"({report.excluded.too_few_calls} had fewer calls)"
        )
    return "NoRegression", (
        f"{report.compared} quer{'y' if report.compared == 1 else 'ies'} compared, none slower by "
        f"x{limits.ratio:g} and {limits.min_delta_ms:g} ms per call that matters"
        + (f"; {len(report.improved)} faster" if report.improved else "")
    )


def compare(
    baseline: Baseline,
    after: Sequence[Snapshot],
    thresholds: WatchThresholds | None = None,
    *,
    new_indexes: Sequence[tuple[str, str]] | None = None,
    decided_at: datetime | None = None,
) -> WatchReport:
    """The verdict of the after window (the samples ``after``, oldest first, at least one)
    against the baseline.

    ``new_indexes`` are the run's (schema, index) pairs; None: those ``after_end`` has and the end
    of the baseline had not."""
    if not after:
        raise ValueError("compare needs at least one snapshot of the after window")
    limits = thresholds or WatchThresholds()
    after_start, after_end = after[0], after[-1]
    snapshots = (baseline.start, baseline.end, *after)
    before_window = _window(baseline.start, baseline.end)
    report = WatchReport(
        verdict="Inconclusive",
        reason="",
        before=before_window,
        after=_window(after_start, after_end),
        samples=len(after),
        thresholds=limits,
        missing=_missing(snapshots),
        decided_at=decided_at or after_end.taken_at,
    )
    created = indexes_created(baseline.end, after_end) if new_indexes is None else new_indexes
    usage = index_usage(after_start, after_end, created)
    report.new_indexes = usage[:50]
    report.unused_new_indexes = [f"{u.schema_name}.{u.index}" for u in usage if not u.scanned][:50]
    report.database = DatabaseDeltas(
        before=database_window(baseline.start, baseline.end),
        after=database_window(after_start, after_end),
        size_before_bytes=baseline.end.database_counters.size_bytes,
        size_after_bytes=after_end.database_counters.size_bytes,
    )
    timed = next((s for s in reversed(after) if s.probes), after_end)
    report.probes = probe_timings(baseline.end, timed, limits)[:50]
    if not all(s.statements_available for s in snapshots):
        report.verdict = "Unavailable"
        report.reason = (
            "pg_stat_statements was not readable in every snapshot, so query times cannot be "
            "compared; the index usage, database counters and probe timings are shown"
        )
        return report
    before, after_deltas = window_deltas([baseline.start, baseline.end]), window_deltas(after)
    pairs, unmatched = match(before, after_deltas)
    rows: list[QueryComparison] = []
    too_few = 0
    for pair in pairs:
        if pair.before.calls < limits.min_calls or pair.after.calls < limits.min_calls:
            too_few += 1
            continue
        rows.append(_comparison(pair, after_deltas))
    report.compared = len(rows)
    report.excluded = ExcludedCounts(
        evicted=before.evicted + after_deltas.evicted,
        reset=before.reset + after_deltas.reset,
        unmatched=unmatched,
        too_few_calls=too_few,
    )
    worst_first = sorted(rows, key=lambda r: r.extra_ms_per_hour, reverse=True)
    report.offenders = [r for r in worst_first if regressed(r, limits)][:REPORT_LIMIT]
    report.improved = [r for r in reversed(worst_first) if improved(r, limits)][:REPORT_LIMIT]
    report.verdict, report.reason = _statements_verdict(report, limits, before_window.seconds)
    return report
