"""Live progress of the running statement, sampled on a separate connection.

While the apply's session runs a statement, a monitor thread looks at that session (the leader
only: parallel workers have their own pids) in pg_stat_activity and pg_stat_progress_create_index
every ``interval`` seconds: the index-build phase, the measure that moves in that phase, and the
sessions holding it up (pg_blocking_pids for lock waits, current_locker_pid while a CONCURRENTLY
build waits for old snapshots). The last blockers seen are kept so a lock timeout can name them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row

from dbmigrate.api.plan import ApplyProgress, Blocker
from dbmigrate.engine.connect import connect
from dbmigrate.engine.errors import MigrationError

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ApplyProgress], None]

_SAMPLE_QUERY = """
SELECT a.wait_event_type, pg_blocking_pids(a.pid) AS blocking, p.phase,
       p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done,
       p.lockers_total, p.lockers_done, p.current_locker_pid
FROM pg_stat_activity a LEFT JOIN pg_stat_progress_create_index p ON p.pid = a.pid
WHERE a.pid = %s
"""

_BLOCKERS_QUERY = """
SELECT pid, state, application_name, left(query, 300) AS query,
       extract(epoch FROM now() - xact_start)::float8 AS transaction_age_seconds
FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY xact_start NULLS LAST, pid
"""


@dataclass(frozen=True)
class CurrentStatement:
    """What the apply session is running now."""

    version: int
    name: str
    index: int  # 1-based
    total: int
    statement: str  # first line


def describe_blockers(blockers: list[Blocker]) -> str:
    """A sentence naming the sessions that held a statement up."""
    if not blockers:
        return "no blocking session was observed while waiting"
    parts = []
    for b in blockers:
        age = f"{b.transaction_age_seconds:.0f} s" if b.transaction_age_seconds is not None else "?"
        parts.append(
            f"pid {b.pid} (application_name {b.application_name!r}, state {b.state!r}, "
            f"transaction open {age}, query {b.query!r})"
        )
    return "blocked by " + "; ".join(parts)


def measure(phase: str | None, row: dict[str, int | None]) -> tuple[int | None, int | None]:
    """(done, total) of the counter that moves in this index-build phase."""
    if not phase:
        return None, None
    if phase.startswith("waiting"):
        return row.get("lockers_done"), row.get("lockers_total")
    if "scanning table" in phase:
        return row.get("blocks_done"), row.get("blocks_total")
    if "loading tuples" in phase or "scanning index" in phase or "sorting" in phase:
        return row.get("tuples_done"), row.get("tuples_total")
    return row.get("blocks_done"), row.get("blocks_total")


def percent(done: int | None, total: int | None) -> float | None:
    """done/total as a percentage rounded to 0.1, None when there is nothing to measure."""
    if done is None or not total:
        return None
    return round(min(100.0, 100.0 * done / total), 1)


def build_progress(
    current: CurrentStatement, row: dict[str, object] | None, blockers: list[Blocker]
) -> ApplyProgress:
    """One progress sample from the monitor's query row (None when nothing was sampled)."""
    data: dict[str, object] = dict(row or {})
    phase = data.get("phase") if isinstance(data.get("phase"), str) else None
    counters = {k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}
    done, total = measure(phase, counters)  # type: ignore[arg-type]
    locker = counters.get("current_locker_pid") or 0
    return ApplyProgress(
        version=current.version,
        name=current.name,
        statement_index=current.index,
        statements_total=current.total,
        statement=current.statement,
        phase=phase,
        blocks_done=counters.get("blocks_done"),
        blocks_total=counters.get("blocks_total"),
        tuples_done=counters.get("tuples_done"),
        tuples_total=counters.get("tuples_total"),
        lockers_done=counters.get("lockers_done"),
        lockers_total=counters.get("lockers_total"),
        percent=percent(done, total),
        waiting=data.get("wait_event_type") == "Lock" or locker > 0,
        blockers=blockers,
        updated_at=datetime.now(UTC),
    )


class ProgressMonitor:
    """Samples the apply session's progress on its own connection in a background thread."""

    def __init__(
        self,
        conninfo: str,
        run_id: str,
        worker_pid: int,
        on_progress: ProgressCallback | None,
        interval: float = 0.5,
    ) -> None:
        self._conninfo, self._run_id, self._pid = conninfo, run_id, worker_pid
        self._on_progress, self._interval = on_progress, interval
        self._current: CurrentStatement | None = None
        self._blockers: list[Blocker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    @property
    def last_blockers(self) -> list[Blocker]:
        """The blockers seen most recently during the current statement."""
        with self._lock:
            return list(self._blockers)

    def start(self) -> None:
        """Start sampling. The monitor connects at the first sample of a statement that is still
        running, so quick migrations never pay for a second connection."""
        self._thread = threading.Thread(target=self._loop, name="dbmigrate-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()

    def begin(self, current: CurrentStatement) -> None:
        """A statement starts: report it at once, then sample it."""
        with self._lock:
            self._current, self._blockers = current, []
        if self._on_progress is not None:
            self._emit(build_progress(current, None, []))

    def end(self) -> None:
        """The statement ended (its blockers stay readable until the next begin)."""
        with self._lock:
            self._current = None

    def _emit(self, progress: ApplyProgress) -> None:
        """Hand a sample to the callback; a failing callback (say, the API server is briefly
        unreachable) costs a progress report, never the migration."""
        if self._on_progress is None:
            return
        try:
            self._on_progress(progress)
        except Exception as exc:  # any reporting failure is logged, never raised
            log.warning("progress report failed: %s: %s", type(exc).__name__, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sample()
            except (psycopg.Error, MigrationError) as exc:  # the apply goes on without progress
                log.warning("progress sampling stopped: %s", exc)
                return

    def sample(self) -> ApplyProgress | None:
        """Take one sample now (also called by the thread); None when no statement runs."""
        with self._lock:
            current = self._current
        if current is None:
            return None
        if self._conn is None:
            self._conn = connect(self._conninfo, "monitor", self._run_id)
        with self._conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(_SAMPLE_QUERY, (self._pid,)).fetchone()
            pids = set((row or {}).get("blocking") or [])
            locker = (row or {}).get("current_locker_pid") or 0
            if locker > 0:
                pids.add(locker)
            blockers = []
            if pids:
                found = cur.execute(_BLOCKERS_QUERY, (sorted(pids),)).fetchall()
                blockers = [Blocker.model_validate(b) for b in found]
        with self._lock:
            if self._current is not current:
                return None
            if blockers:
                self._blockers = blockers
        progress = build_progress(current, row, blockers)
        self._emit(progress)
        return progress
