"""Running one migration file, either in one transaction or statement by statement.

A file whose statements all run inside a transaction runs in ONE transaction together with its
history row: either everything (row included) commits, or nothing does and a 'failed' row says so.
A file with a statement that cannot run in a transaction (CONCURRENTLY, ADD VALUE, VACUUM...) runs
in autocommit: each ordinary statement commits together with the row's progress counter, each
autocommit statement is followed by a progress update, so a rerun resumes after the last statement
that committed. lock_timeout/statement_timeout are in force for every statement: the runner sets
them on the session when they differ from what it last set, and again after any statement that may
have changed them (SET, DO, a query...; see ``Statement.may_change_settings``) or after an error.
The timeouts belong to the run, not to the file: right after a statement that may have changed
them, the runner reads them back and puts the run's own value back wherever the file raised or
disabled one (``SET lock_timeout = 0``, as pg_dump's header writes), so a file can only lower
them, for its own statements. Attempts that timed out waiting for a lock are retried with backoff.
Before a DROP INDEX runs, the definition of each index it names is recorded
(``undo.dropped_indexes``), so a rollback can build it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import psycopg

from dbmigrate.api.plan import CreatedObject, VersionApplyRecord
from dbmigrate.engine import catalog, history
from dbmigrate.engine.errors import (
    DeadlockError,
    LockTimeoutError,
    MigrationError,
    from_database_error,
)
from dbmigrate.engine.planning import resume_point
from dbmigrate.engine.prepared import PreparedFile
from dbmigrate.engine.progress import CurrentStatement, ProgressMonitor, describe_blockers
from dbmigrate.engine.settings import ApplySettings
from dbmigrate.engine.statements import Statement, created_objects_of
from dbmigrate.engine.undo import dropped_indexes

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE = (LockTimeoutError, DeadlockError)
# For each timeout with a bound (> 0): the bound again if the session's value is 0 (none) or
# above it. pg_settings gives both in milliseconds.
_KEEP_BOUNDS = """
SELECT set_config(name, bound::text, false)
FROM pg_settings
JOIN (VALUES ('lock_timeout', %(lock)s::bigint), ('statement_timeout', %(statement)s::bigint))
    AS b (name, bound) USING (name)
WHERE bound > 0 AND (setting::bigint = 0 OR setting::bigint > bound)
"""


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class FileRunner:
    """Applies prepared files on the apply's session, reporting through the monitor."""

    def __init__(
        self,
        conn: psycopg.Connection,
        monitor: ProgressMonitor,
        settings: ApplySettings,
        run_id: str,
    ) -> None:
        self.conn, self.monitor, self.settings, self.run_id = conn, monitor, settings, run_id
        self.error: MigrationError | None = None
        self._context = ""
        self._retries = 0
        self._timeouts: tuple[int, int] | None = None  # (lock, statement) the session has now
        self._bound: tuple[int, int] = (settings.lock_timeout_ms, settings.statement_timeout_ms)
        self.catalog = catalog.LookAhead(conn)
        self._following: list[CreatedObject] = []

    def run(
        self,
        prepared: PreparedFile,
        previous: history.HistoryRow | None,
        following: list[CreatedObject] | None = None,
    ) -> VersionApplyRecord:
        """Apply one file; the record says how it ended and ``self.error`` why it failed.
        ``following``: what the next file's first step looks up (read ahead with this file's
        last look-up, see ``catalog.LookAhead``)."""
        m = prepared.migration
        self.error, self._retries, self._following = None, 0, following or []
        record = VersionApplyRecord(
            version=m.version,
            name=m.name,
            checksum=m.checksum,
            status="running",
            mode="autocommit" if prepared.autocommit else "transaction",
            started_at=now(),
            statements_total=len(prepared.statements),
        )
        try:
            if prepared.autocommit:
                self._run_autocommit(prepared, record, previous)
            else:
                self._run_transaction(prepared, record)
            record.status = "applied"
        except (MigrationError, psycopg.Error) as exc:
            self._timeouts = None
            self.catalog.forget()
            err = (
                exc if isinstance(exc, MigrationError) else from_database_error(exc, self._context)
            )
            self.error = err
            record.status, record.error = "failed", str(err)
            self._write_row(record, "failed")
        record.finished_at = now()
        record.duration_seconds = (record.finished_at - record.started_at).total_seconds()  # type: ignore[operator]
        record.retries = self._retries
        return record

    # -- the two modes -------------------------------------------------------------------------

    def _run_transaction(self, prepared: PreparedFile, record: VersionApplyRecord) -> None:
        statements = prepared.statements
        objects = [o for s in statements for o in created_objects_of(s)]
        self._context = f"{prepared.migration.filename}: before its transaction"
        before = self._objects_before(objects, retry=True)
        self._set_timeouts(self.settings.lock_timeout_ms)

        def body() -> VersionApplyRecord:
            with self.conn.transaction():
                for index, stmt in enumerate(statements):
                    self._execute(prepared, index, stmt)
                done = record.model_copy(
                    update={
                        "created_objects": self._created(objects, self._following, before),
                        "statements_done": len(statements),
                    }
                )
                self._write_row(done, "applied")
            return done

        done = self._attempt(body)  # on failure nothing committed: the record keeps 0 and []
        record.created_objects, record.statements_done = done.created_objects, done.statements_done

    def _run_autocommit(
        self,
        prepared: PreparedFile,
        record: VersionApplyRecord,
        previous: history.HistoryRow | None,
    ) -> None:
        start = resume_point(prepared.migration, previous)
        interrupted = previous is not None and previous.status in ("failed", "running")
        if interrupted and start == 0 and previous and previous.statements_done:  # file changed
            log.warning(
                "%s changed since its interrupted run (%s -> %s); running it from the start",
                prepared.migration.filename,
                previous.checksum,
                prepared.migration.checksum,
            )
        record.statements_done = start
        record.created_objects = list(previous.created_objects) if previous and start else []
        self._write_row(record, "running")
        total = len(prepared.statements)
        for index in range(start, total):
            step = partial(self._autocommit_step, prepared, record, index)
            record.created_objects = record.created_objects + self._attempt(step)
            record.statements_done = index + 1
        if start == total:  # nothing left to run: the last step did not write the final row
            self._write_row(record, "applied")

    def _autocommit_step(
        self, prepared: PreparedFile, record: VersionApplyRecord, index: int
    ) -> list[CreatedObject]:
        statements = prepared.statements
        stmt = statements[index]
        objects = created_objects_of(stmt)
        following = statements[index + 1] if index + 1 < len(statements) else None
        upcoming = created_objects_of(following) if following else self._following
        before = self._objects_before(objects, retry=False)
        if not stmt.needs_autocommit:
            self._set_timeouts(self.settings.lock_timeout_ms)
            with self.conn.transaction():
                self._execute(prepared, index, stmt)
                created = self._created(objects, upcoming, before)
                self._advance(prepared, record, index, created)
            return created
        self._set_timeouts(self.settings.concurrent_timeout_ms)
        self._execute(prepared, index, stmt)
        created = self._created(objects, upcoming, before)
        self._advance(prepared, record, index, created)
        return created

    def _created(
        self,
        objects: list[CreatedObject],
        upcoming: list[CreatedObject],
        before: set[tuple[str, ...]],
    ) -> list[CreatedObject]:
        """What a step created, after checking every index it names is valid; one look-up,
        which also reads the next step's objects ahead."""
        after = self.catalog.after(objects, upcoming)
        catalog.raise_unless_valid(after)
        return catalog.created_since(after, before)

    def _advance(
        self,
        prepared: PreparedFile,
        record: VersionApplyRecord,
        index: int,
        created: list[CreatedObject],
    ) -> None:
        """Record statement ``index`` as done (in its transaction, if any); after the file's last
        statement this writes the final 'applied' row instead of a progress update."""
        objects = record.created_objects + created
        if index + 1 < len(prepared.statements):
            history.record_progress(self.conn, prepared.migration.version, index + 1, objects)
            return
        done = record.model_copy(update={"statements_done": index + 1, "created_objects": objects})
        self._write_row(done, "applied")

    def _objects_before(self, objects: list[CreatedObject], retry: bool) -> set[tuple[str, ...]]:
        """The objects present before their statements run (one catalog query). An INVALID index
        left by an interrupted build is dropped first, concurrently and under the concurrent
        lock timeout (``retry``: with retries of its own), so the build cannot skip it."""
        found = self.catalog.before(objects)
        broken = catalog.invalid(found)
        if not broken:
            return catalog.present_keys(found)
        self._set_timeouts(self.settings.concurrent_timeout_ms)
        for obj in broken:
            drop = partial(catalog.drop_invalid_index, self.conn, obj)
            if self._attempt(drop) if retry else drop():
                log.warning("%s: dropped INVALID index %s to rebuild it", self._context, obj.name)
        return catalog.present_keys(catalog.lookup(self.conn, objects))

    # -- helpers -------------------------------------------------------------------------------

    def _execute(self, prepared: PreparedFile, index: int, stmt: Statement) -> None:
        m = prepared.migration
        self._context = f"{m.filename}:{stmt.line}: {stmt.first_line[:120]}"
        current = CurrentStatement(
            version=m.version,
            name=m.name,
            index=index + 1,
            total=len(prepared.statements),
            statement=stmt.first_line[:200],
        )
        self.monitor.begin(current)
        try:
            if stmt.may_change_settings:
                self._timeouts = None  # whatever it does, set the timeouts again before the next
            dropped_indexes.record_before_drop(self.conn, m.version, stmt.node)
            self.conn.execute(stmt.text)
            if stmt.may_change_settings:
                self._keep_bounds()
        finally:
            self.monitor.end()

    def _set_timeouts(self, lock_timeout_ms: int) -> None:
        """Put the timeouts in force for the statements that follow; a round trip only when they
        differ from what this runner last set (called outside transactions only, so no rollback
        can undo a SET the runner counts on)."""
        wanted = (lock_timeout_ms, self.settings.statement_timeout_ms)
        if self._timeouts == wanted:
            return
        self._timeouts = None
        self._bound = wanted
        self.conn.execute(
            "SELECT set_config('lock_timeout', %s, false),"
            " set_config('statement_timeout', %s, false)",
            (str(wanted[0]), str(wanted[1])),
        )
        self._timeouts = wanted

    def _keep_bounds(self) -> None:
        """Put the run's timeouts back where the statement raised or disabled one (0 = none);
        a lower value the file chose stays. Session-level, so it also holds after the file's
        transaction commits; a rollback restores the run's own values anyway."""
        lock, statement = self._bound
        self.conn.execute(_KEEP_BOUNDS, {"lock": lock, "statement": statement})

    def _attempt(self, action: Callable[[], T]) -> T:
        """Run ``action``; retry with backoff after a lock timeout or deadlock, up to the bound."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except psycopg.Error as exc:
                self._timeouts = None
                err = from_database_error(exc, self._context)
                err.blockers = self.monitor.last_blockers
                if not isinstance(err, RETRYABLE):
                    raise err from exc
                if attempt > self.settings.max_retries:
                    final = type(err)(
                        f"{err}; gave up after {attempt} attempts; "
                        f"{describe_blockers(err.blockers)}",
                        sqlstate=err.sqlstate,
                    )
                    final.blockers = err.blockers
                    raise final from exc
                delay = self.settings.backoff(attempt)
                log.warning(
                    "%s; retry %d/%d in %.1f s; %s",
                    err,
                    attempt,
                    self.settings.max_retries,
                    delay,
                    describe_blockers(err.blockers),
                )
                self._retries += 1
                time.sleep(delay)

    def _write_row(self, record: VersionApplyRecord, status: str) -> None:
        row = history.row_of(record, status, self.run_id, now() if status != "running" else None)
        try:
            history.upsert_row(self.conn, row)
        except psycopg.Error as exc:
            if status != "failed":
                raise
            log.error("could not record the failure of version %s: %s", record.version, exc)
            record.error = f"{record.error} (the history row could not be updated: {exc})"
