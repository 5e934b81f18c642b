"""The performance watch: its thresholds, the snapshots it samples and the verdict it reaches.

The guide ends every migration with "check query execution times before and after". The watch
does it from cumulative counters: a snapshot of ``pg_stat_statements`` (when installed),
``pg_stat_user_indexes``, ``pg_stat_user_tables`` and ``pg_stat_database`` at the start and end of
a window before the apply, and again through a window after it; the deltas of the two windows are
compared per query. These models are the contract between the engine (which samples and
compares), the CLI (``dbmigrate snapshot`` / ``dbmigrate watch``) and the operator (``spec`` holds
the thresholds, ``status`` the report). Everything is bounded (top-N statements, query text cut
to ``QUERY_TEXT_LIMIT`` characters, at most ``REPORT_LIMIT`` entries per list in a report),
because the report lands in the resource's status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel

QUERY_TEXT_LIMIT = 200
"""Characters of a normalized query text kept in a snapshot or a report."""

REPORT_LIMIT = 10
"""At most this many offenders, improved queries, new indexes and probes in a report."""

Verdict = Literal["NoRegression", "Regressed", "Inconclusive", "Unavailable"]
VERDICTS: tuple[Verdict, ...] = ("NoRegression", "Regressed", "Inconclusive", "Unavailable")

MatchedBy = Literal["queryid", "text"]

ENABLE_PG_STAT_STATEMENTS = (
    "add pg_stat_statements to shared_preload_libraries (postgresql.conf or ALTER SYSTEM, then "
    "restart the server) and run CREATE EXTENSION pg_stat_statements in this database"
)
"""How to enable what the watch misses most, said wherever it is missing."""


class WatchThresholds(ApiModel):
    """When a query counts as regressed, and how big and slow a sample may be.

    A query is regressed only when ALL hold: it ran at least ``minCalls`` times in both windows,
    its mean time per call grew by ``ratio`` or more AND by ``minDeltaMs`` or more, the growth is
    no accident of a few outliers (Welch's t at least ``minTScore``), and it matters: its share
    of the after window's execution time is ``minSharePercent`` or more, OR the extra time it
    costs is ``minExtraMsPerHour`` or more. Too few calls is Inconclusive, never Regressed.
    """

    min_calls: int = Field(
        default=20, ge=1, le=1_000_000, description="Calls a query needs in each window."
    )
    ratio: float = Field(
        default=1.5, ge=1.0, le=1000.0, description="Mean time after / before that is a slowdown."
    )
    min_delta_ms: float = Field(
        default=1.0, ge=0.0, le=3_600_000.0, description="Slowdown per call (ms) that counts."
    )
    min_share_percent: float = Field(
        default=5.0,
        ge=0.0,
        le=100.0,
        description="Share of the after window's execution time (percent) that makes it matter.",
    )
    min_extra_ms_per_hour: float = Field(
        default=60_000.0,
        ge=0.0,
        description="Extra execution time per hour (ms) that makes it matter (60000: 1 min/h).",
    )
    min_t_score: float = Field(
        default=3.0,
        ge=0.0,
        le=1000.0,
        description="Welch's t of the slowdown (difference of the means over its standard "
        "error, from pg_stat_statements' stddev): a few slow outliers are not a regression; 0: "
        "off.",
    )
    min_baseline_seconds: int = Field(
        default=60,
        ge=0,
        le=86_400,
        description="Shortest before window compared; shorter gives Inconclusive.",
    )
    top_n: int = Field(
        default=100, ge=1, le=1000, description="Statements kept per snapshot (by total time)."
    )
    statement_timeout_ms: int = Field(
        default=5000, ge=100, le=600_000, description="statement_timeout of each sample (ms)."
    )
    probe_runs: int = Field(
        default=5, ge=1, le=50, description="EXPLAIN ANALYZE runs per probe (the median is kept)."
    )


class StatementCounters(ApiModel):
    """One pg_stat_statements entry, cumulative since it was created or reset."""

    dbid: int = Field(description="Database oid.")
    userid: int = Field(description="Role oid.")
    queryid: int = Field(description="pg_stat_statements queryid (64-bit, signed).")
    toplevel: bool | None = Field(
        default=None, description="Run at top level (PG 14+; None before)."
    )
    query: str = Field(max_length=QUERY_TEXT_LIMIT, description="Normalized query text, cut short.")
    text_hash: str = Field(
        default="", max_length=32, description="md5 of the whole normalized text (for matching)."
    )
    calls: int = Field(description="Executions.")
    total_exec_time: float = Field(description="Total execution time (ms).")
    stddev_exec_time: float | None = Field(
        default=None, description="Population standard deviation of the execution time (ms)."
    )
    stats_since: datetime | None = Field(
        default=None, description="When this entry started counting (PG 17+; None before)."
    )


class IndexCounters(ApiModel):
    """pg_stat_user_indexes of one index."""

    schema_name: str = Field(description="Schema of the index.")
    table: str = Field(description="Indexed table.")
    index: str = Field(description="Index name.")
    idx_scan: int = Field(description="Index scans since the statistics were reset.")


class TableCounters(ApiModel):
    """pg_stat_user_tables of one table."""

    schema_name: str = Field(description="Schema of the table.")
    table: str = Field(description="Table name.")
    seq_scan: int = Field(default=0, description="Sequential scans.")
    seq_tup_read: int = Field(default=0, description="Rows read by sequential scans.")
    idx_scan: int = Field(default=0, description="Index scans (all its indexes).")
    n_tup_ins: int = Field(default=0, description="Rows inserted.")
    n_tup_upd: int = Field(default=0, description="Rows updated.")
    n_tup_del: int = Field(default=0, description="Rows deleted.")
    n_live_tup: int = Field(default=0, description="Estimated live rows.")


class DatabaseCounters(ApiModel):
    """pg_stat_database of the connected database, and its size."""

    xact_commit: int = Field(default=0, description="Transactions committed.")
    xact_rollback: int = Field(default=0, description="Transactions rolled back.")
    blks_read: int = Field(default=0, description="Blocks read from disk (or the OS cache).")
    blks_hit: int = Field(default=0, description="Blocks found in shared buffers.")
    tup_returned: int = Field(default=0, description="Rows returned.")
    tup_fetched: int = Field(default=0, description="Rows fetched.")
    temp_files: int = Field(default=0, description="Temporary files written.")
    temp_bytes: int = Field(default=0, description="Bytes written to temporary files.")
    deadlocks: int = Field(default=0, description="Deadlocks detected.")
    size_bytes: int = Field(default=0, description="pg_database_size.")
    stats_reset: datetime | None = Field(
        default=None, description="When the database's statistics were last reset."
    )


class ProbeTimingSample(ApiModel):
    """A probe query's execution time (EXPLAIN ANALYZE), repeated; the median is kept."""

    name: str = Field(description="Probe name.")
    runs: int = Field(default=0, description="Runs that succeeded.")
    median_ms: float | None = Field(default=None, description="Median execution time (ms).")
    message: str = Field(default="", description="Why there is no timing, when there is none.")


class Snapshot(ApiModel):
    """Cumulative counters at one instant, bounded (top-N statements, cut query text)."""

    taken_at: datetime = Field(description="When the snapshot was taken (server clock).")
    server_version: str = Field(default="", description="PostgreSQL server version.")
    server_version_num: int = Field(default=0, description="server_version_num, such as 170002.")
    database: str = Field(default="", description="The connected database.")
    statements_available: bool = Field(
        default=False, description="pg_stat_statements could be read."
    )
    statements_missing: str = Field(
        default="", description="Why pg_stat_statements could not be read, and how to enable it."
    )
    dealloc: int | None = Field(
        default=None,
        description="pg_stat_statements_info.dealloc: entries evicted (PG 14+; None before).",
    )
    stats_reset: datetime | None = Field(
        default=None, description="pg_stat_statements_info.stats_reset (PG 14+)."
    )
    statements_total_calls: int = Field(
        default=0, description="Calls of every entry of this database, not only the top-N."
    )
    statements_total_exec_time: float = Field(
        default=0.0, description="Total execution time (ms) of every entry of this database."
    )
    statements_count: int = Field(default=0, description="Entries of this database.")
    statements: list[StatementCounters] = Field(
        default_factory=list, description="The top-N entries by total time, and the probes'."
    )
    indexes: list[IndexCounters] = Field(default_factory=list, description="User indexes.")
    tables: list[TableCounters] = Field(default_factory=list, description="User tables.")
    database_counters: DatabaseCounters = Field(
        default_factory=DatabaseCounters, description="Database-wide counters."
    )
    probes: list[ProbeTimingSample] = Field(
        default_factory=list, description="Probe timings at this instant."
    )
    missing: list[str] = Field(
        default_factory=list, description="What could not be read, and how to enable it."
    )


class Baseline(ApiModel):
    """The before window: a snapshot at its start and one at its end (just before the apply)."""

    start: Snapshot = Field(description="The first snapshot of the before window.")
    end: Snapshot = Field(description="The last snapshot of the before window.")


class WatchWindow(ApiModel):
    """The span between two snapshots."""

    start: datetime = Field(description="Its first snapshot.")
    end: datetime = Field(description="Its last snapshot.")
    seconds: float = Field(description="Its length in seconds.")


class QueryComparison(ApiModel):
    """One query's mean time in the before and after windows."""

    query: str = Field(max_length=QUERY_TEXT_LIMIT, description="Normalized text, cut short.")
    queryid: int | None = Field(default=None, description="queryid in the after window.")
    matched_by: MatchedBy = Field(
        default="queryid",
        description="queryid, or text where the queryid changed (a rebuilt or swapped table).",
    )
    calls_before: int = Field(description="Calls in the before window.")
    calls_after: int = Field(description="Calls in the after window.")
    mean_before_ms: float = Field(description="Mean execution time per call before (ms).")
    mean_after_ms: float = Field(description="Mean execution time per call after (ms).")
    ratio: float = Field(description="mean after / mean before.")
    extra_ms_per_hour: float = Field(
        description="Extra (negative: saved) execution time per hour at the after call rate."
    )
    share_percent: float = Field(description="Share of the after window's execution time.")
    t_score: float | None = Field(
        default=None,
        description="Welch's t of the difference of the means (None: no stddev to judge by).",
    )


class IndexUsage(ApiModel):
    """A new index of the run, and whether anything scanned it during the after window."""

    schema_name: str = Field(description="Schema of the index.")
    table: str = Field(default="", description="Indexed table.")
    index: str = Field(description="Index name.")
    scans: int | None = Field(
        default=None, description="idx_scan delta over the after window (None: not found)."
    )
    scanned: bool = Field(description="Scanned at least once during the after window.")


class DatabaseWindow(ApiModel):
    """Database-wide counter deltas over one window, and rates per second."""

    xact_commit: int = Field(default=0, description="Transactions committed.")
    xact_rollback: int = Field(default=0, description="Transactions rolled back.")
    blks_read: int = Field(default=0, description="Blocks read.")
    blks_hit: int = Field(default=0, description="Blocks hit in shared buffers.")
    temp_bytes: int = Field(default=0, description="Bytes written to temporary files.")
    deadlocks: int = Field(default=0, description="Deadlocks.")
    commits_per_second: float = Field(default=0.0, description="xact_commit per second.")
    blks_read_per_second: float = Field(default=0.0, description="blks_read per second.")
    temp_bytes_per_second: float = Field(default=0.0, description="temp_bytes per second.")
    cache_hit_percent: float | None = Field(
        default=None, description="blks_hit / (blks_hit + blks_read), percent (None: no reads)."
    )


class DatabaseDeltas(ApiModel):
    """The database-wide counters of both windows side by side, and the size change."""

    before: DatabaseWindow = Field(description="The before window.")
    after: DatabaseWindow = Field(description="The after window.")
    size_before_bytes: int = Field(default=0, description="Database size at the before end.")
    size_after_bytes: int = Field(default=0, description="Database size at the after end.")


class ProbeTiming(ApiModel):
    """A probe query's median EXPLAIN ANALYZE time before and after."""

    probe: str = Field(description="Probe name.")
    before_ms: float | None = Field(default=None, description="Median before (ms).")
    after_ms: float | None = Field(default=None, description="Median after (ms).")
    runs: int = Field(default=0, description="Runs per side.")
    ratio: float | None = Field(default=None, description="after / before.")
    regressed: bool = Field(default=False, description="Slower by the ratio and the delta.")


class ExcludedCounts(ApiModel):
    """Statements left out of the comparison, and why."""

    evicted: int = Field(default=0, description="Entries evicted past pg_stat_statements.max.")
    reset: int = Field(default=0, description="Entries reset within a window (stats_since).")
    unmatched: int = Field(default=0, description="In one window only (new or gone queries).")
    too_few_calls: int = Field(default=0, description="Fewer than minCalls in a window.")


class WatchReport(ApiModel):
    """The verdict of a watch, with its evidence (bounded: it lands in the resource status)."""

    verdict: Verdict = Field(description="NoRegression, Regressed, Inconclusive or Unavailable.")
    reason: str = Field(description="Why, in one or two sentences.")
    before: WatchWindow | None = Field(default=None, description="The before window.")
    after: WatchWindow | None = Field(default=None, description="The after window.")
    samples: int = Field(default=0, description="Snapshots taken in the after window.")
    compared: int = Field(default=0, description="Queries compared (enough calls in both).")
    excluded: ExcludedCounts = Field(
        default_factory=ExcludedCounts, description="Queries left out, by reason."
    )
    offenders: list[QueryComparison] = Field(
        default_factory=list,
        max_length=REPORT_LIMIT,
        description="Regressed queries, the worst (extra time per hour) first.",
    )
    improved: list[QueryComparison] = Field(
        default_factory=list,
        max_length=REPORT_LIMIT,
        description="Queries faster by the ratio and the delta, the most saved first.",
    )
    new_indexes: list[IndexUsage] = Field(
        default_factory=list, max_length=50, description="The run's new indexes and their scans."
    )
    unused_new_indexes: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="New indexes not scanned during the after window (schema.index).",
    )
    database: DatabaseDeltas | None = Field(
        default=None, description="Database-wide deltas of both windows."
    )
    probes: list[ProbeTiming] = Field(
        default_factory=list, max_length=50, description="Probe timings before and after."
    )
    missing: list[str] = Field(
        default_factory=list,
        max_length=REPORT_LIMIT,
        description="What was not available, and how to enable it.",
    )
    thresholds: WatchThresholds = Field(
        default_factory=WatchThresholds, description="The thresholds the verdict used."
    )
    decided_at: datetime | None = Field(default=None, description="When the verdict was reached.")
