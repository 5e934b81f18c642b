"""The emergency rollback, tiered as the migration guide's: drop what the run created, or restore
the backup; then check the state and mark the versions rolled back in the history table.

Tier 1 (dropCreatedObjects) drops exactly the objects in the apply step's manifest, newest first:
indexes with DROP INDEX CONCURRENTLY IF EXISTS (no table lock held for long), tables only when the
run created them; then it builds again, CONCURRENTLY, each index the run dropped, from the
definition the apply step recorded before the drop (``dropped_indexes``): no data is lost either
way. Tier 2 (restoreBackup) first drops what the run created (``pg_restore --clean``
cannot drop a table of the dump that a new table references, and new tables would survive it),
then restores the pg_dump taken before the run over the same database. The history rows of
the rolled-back versions are read before a restore and written back afterwards, marked rolled
back, so the history stays honest. The backup is never deleted.

The result models are loaded while pg_restore works (or when the drops start), not before: a
restore's own cost stays small next to pg_restore's.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import psycopg
from psycopg import sql

from dbmigrate.api.exitcodes import EXIT_FAILED
from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine import history
from dbmigrate.engine.connect import connect
from dbmigrate.engine.undo import dropped_indexes, restore
from dbmigrate.engine.undo.pgtools import StepError

if TYPE_CHECKING:
    from dbmigrate.api.evidence import DroppedObject, RollbackRecord

Strategy = Literal["dropCreatedObjects", "restoreBackup"]
ROLLABLE_STATUSES = ("applied", "failed", "running")
RESULT_MODULE = "dbmigrate.api.evidence"
_DROP = {
    "index": "DROP INDEX CONCURRENTLY IF EXISTS {}",
    "table": "DROP TABLE IF EXISTS {}",
    "view": "DROP VIEW IF EXISTS {}",
    "materialized_view": "DROP MATERIALIZED VIEW IF EXISTS {}",
    "sequence": "DROP SEQUENCE IF EXISTS {}",
    "type": "DROP TYPE IF EXISTS {}",
    "schema": "DROP SCHEMA IF EXISTS {}",
}


class RollbackError(StepError):
    """The rollback cannot start (bad input); nothing was changed."""


def default_versions(rows: Sequence[history.HistoryRow]) -> list[int]:
    """The versions of the most recent run (same applied_by as the newest started row)."""
    live = [r for r in rows if r.status in ROLLABLE_STATUSES and r.started_at is not None]
    if not live:
        return []
    newest = max(live, key=lambda r: (r.started_at, r.version))
    return sorted(r.version for r in live if r.applied_by == newest.applied_by)


def drop_statement(obj: CreatedObject, schema: str) -> sql.Composed:
    """The DROP for one manifest object, identifiers quoted."""
    if obj.kind == "column":
        if not obj.table:
            raise RollbackError(f"manifest column {obj.name!r} has no table; cannot drop it")
        return sql.SQL("ALTER TABLE IF EXISTS {} DROP COLUMN IF EXISTS {}").format(
            sql.Identifier(schema, obj.table), sql.Identifier(obj.name)
        )
    if obj.kind == "schema":
        return sql.SQL(_DROP["schema"]).format(sql.Identifier(obj.name))
    return sql.SQL(_DROP[obj.kind]).format(sql.Identifier(schema, obj.name))


def object_exists(conn: psycopg.Connection, obj: CreatedObject, schema: str) -> bool:
    """Whether a manifest object exists now."""
    if obj.kind == "schema":
        query = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
        return conn.execute(query, (obj.name,)).fetchone() is not None
    if obj.kind == "type":
        query = (
            "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname = %s AND t.typname = %s"
        )
        return conn.execute(query, (schema, obj.name)).fetchone() is not None
    if obj.kind == "column":
        query = (
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s AND column_name = %s"
        )
        return conn.execute(query, (schema, obj.table, obj.name)).fetchone() is not None
    query = (
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s"
    )
    return conn.execute(query, (schema, obj.name)).fetchone() is not None


def drop_objects(
    conn: psycopg.Connection, manifest: Sequence[CreatedObject], lock_timeout: str
) -> tuple[list[DroppedObject], str | None]:
    """Drop each manifest object that exists (autocommit, one statement each).

    What happened to each, and the error that stopped the drops (None when all went through).
    """
    from dbmigrate.api.evidence import DroppedObject

    conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))
    current = conn.execute("SELECT current_schema()").fetchone()
    default_schema = str(current[0]) if current and current[0] else "public"
    done: list[DroppedObject] = []
    for obj in manifest:
        schema = obj.schema_name or default_schema
        existed = object_exists(conn, obj, schema)
        item = DroppedObject(
            kind=obj.kind, schema_name=schema, name=obj.name, table=obj.table, existed=existed
        )
        done.append(item)
        try:
            if existed:
                conn.execute(drop_statement(obj, schema))
        except psycopg.Error as exc:
            reason = exc.diag.message_primary or str(exc)
            return done, f"DROP of {obj.kind} {schema}.{obj.name} failed: {reason}"
        item.gone = not object_exists(conn, obj, schema)
    return done, None


def _mark(conn: psycopg.Connection, rows: Sequence[history.HistoryRow], run_id: str) -> list[str]:
    """Write the captured history rows back if a restore removed them, then mark them."""
    history.ensure_history(conn)
    present = {r.version for r in history.read_history(conn)}
    for row in rows:
        if row.version not in present:
            history.upsert_row(conn, row)
    history.mark_rolled_back(conn, [r.version for r in rows], run_id)
    marked = {r.version for r in history.read_history(conn) if r.status == "rolled_back"}
    return [str(r.version) for r in rows if r.version in marked]


def rollback(
    url: str,
    strategy: Strategy,
    run_id: str,
    versions: Sequence[int] | None = None,
    backup_path: str | None = None,
    into_database: str | None = None,
    jobs: int = 1,
    pg_bin: str | None = None,
    expected_sha256: str | None = None,
    lock_timeout: str = "10s",
) -> RollbackRecord:
    """Roll the database back; the record says what was done and whether it was verified."""
    started, clock = datetime.now(UTC), time.monotonic()
    chosen, captured, manifest, dbname = _read_state(url, run_id, versions)
    outcome: restore.RestoreOutcome | None = None
    dropped_first: list[DroppedObject] = []
    if strategy == "restoreBackup":
        tools = (jobs, pg_bin, expected_sha256)
        outcome, dropped_first = _restore_over(
            url, (run_id, manifest, lock_timeout), backup_path, into_database, tools
        )
    record = _record(strategy, chosen, into_database or dbname, jobs, started)
    if outcome is not None:
        record.restored_from, record.restored_sha256 = backup_path, expected_sha256
        record.parallel_jobs = outcome.jobs
    error = None
    if into_database is None:
        with connect(url, "rollback", run_id) as conn:
            dropped, error = drop_objects(conn, manifest, lock_timeout)
            record.dropped_objects = _merged(dropped_first, dropped)
            if error is None and strategy == "dropCreatedObjects":
                recorded = dropped_indexes.recorded(conn, chosen)
                record.rebuilt_indexes, error = dropped_indexes.rebuild(conn, recorded)
            if error is None:
                record.versions_marked_rolled_back = _mark(conn, captured, run_id)
    record.verified = error is None and all(d.gone for d in record.dropped_objects)
    record.verified &= all(r.valid or r.state == "tableGone" for r in record.rebuilt_indexes)
    if into_database is None:
        record.verified &= record.versions_marked_rolled_back == record.versions
    record.duration_seconds = round(time.monotonic() - clock, 3)
    record.finished_at = datetime.now(UTC)
    record.message = _summary(record) + (f"; stopped: {error}" if error else "")
    return record


def _record(
    strategy: Strategy, chosen: Sequence[int], target: str, jobs: int, started: datetime
) -> RollbackRecord:
    """The record of a rollback that has not been verified yet."""
    from dbmigrate.api.evidence import RollbackRecord

    return RollbackRecord(
        strategy=strategy,
        versions=[str(v) for v in chosen],
        target_database=target,
        parallel_jobs=jobs,
        duration_seconds=0.0,
        verified=False,
        message="",
        started_at=started,
    )


def _read_state(
    url: str, run_id: str, versions: Sequence[int] | None
) -> tuple[list[int], list[history.HistoryRow], list[CreatedObject], str]:
    """(versions, their history rows, their manifest, database name), read before anything."""
    with connect(url, "rollback", run_id) as conn:
        rows = history.read_history(conn)
        chosen = list(versions) if versions else default_versions(rows)
        if not chosen:
            raise RollbackError("no applied versions to roll back; name them with --versions")
        captured = [r for r in rows if r.version in set(chosen)]
        return chosen, captured, history.created_objects(conn, chosen), str(conn.info.dbname)


def _restore_over(
    url: str,
    run: tuple[str, Sequence[CreatedObject], str],
    backup_path: str | None,
    into_database: str | None,
    tools: tuple[int, str | None, str | None],
) -> tuple[restore.RestoreOutcome, list[DroppedObject]]:
    """pg_restore with TOOLS = (jobs, pg_bin, expected sha256). Into the same database, once the
    archive passed its checks, RUN's objects (run id, manifest, lock timeout) are dropped first
    (``_drop_before_restore``); what those drops found is returned with the outcome."""
    if not backup_path:
        raise RollbackError("--strategy restore needs --backup PATH (status.backup.path)")
    jobs, pg_bin, expected_sha256 = tools
    dropped: list[DroppedObject] = []

    def drop_first() -> None:
        dropped.extend(_drop_before_restore(url, *run))

    first = drop_first if run[1] else None  # with it, the whole archive is read first
    try:
        outcome = restore.restore(
            url, backup_path, jobs, into_database, pg_bin, expected_sha256,
            _load_result_model, first,
        )  # fmt: skip
    except restore.RestoreError as exc:
        if not any(d.existed for d in dropped):
            raise
        raise restore.RestoreError(
            f"{exc}. Before the restore the objects this run created were dropped, so the "
            "database is as a dropCreatedObjects rollback leaves it",
            exit_code=exc.exit_code,
        ) from exc
    return outcome, dropped


def _drop_before_restore(
    url: str, run_id: str, manifest: Sequence[CreatedObject], lock_timeout: str
) -> list[DroppedObject]:
    """Drop what the run created before the backup is restored over it: ``pg_restore --clean``
    cannot drop a table of the backup that a table of the run references (a foreign key, a
    view), and the restore would stop (atomically, changing nothing)."""
    with connect(url, "rollback", run_id) as conn:
        dropped, error = drop_objects(conn, manifest, lock_timeout)
    if error is not None:
        gone = ", ".join(f"{d.kind} {d.schema_name}.{d.name}" for d in dropped if d.gone)
        raise restore.RestoreError(
            f"before the restore, the objects this run created are dropped, and {error}; "
            f"nothing was restored (dropped so far: {gone or 'none'}). Fix the cause and run the "
            "rollback again",
            exit_code=EXIT_FAILED,
        )
    return dropped


def _merged(first: list[DroppedObject], then: list[DroppedObject]) -> list[DroppedObject]:
    """Per manifest object, the drop that found it (before the restore, else after it)."""
    if not first:
        return then
    return [a if a.existed else b for a, b in zip(first, then, strict=True)]


def _load_result_model() -> None:
    """Import the result models while pg_restore works, instead of after it."""
    importlib.import_module(RESULT_MODULE)


def _summary(record: RollbackRecord) -> str:
    dropped = sum(1 for d in record.dropped_objects if d.existed)
    where = f"into database {record.target_database!r}" if record.restored_from else ""
    how = (
        f"restored {record.restored_from} {where}".strip()
        if record.strategy == "restoreBackup"
        else f"dropped {dropped} object(s) the run created"
    )
    rebuilt = [f"{r.schema_name}.{r.name}" for r in record.rebuilt_indexes if r.state == "rebuilt"]
    if rebuilt:
        how += f", rebuilt {len(rebuilt)} index(es) it dropped ({', '.join(rebuilt)})"
    if record.verified:
        return f"rolled back versions {', '.join(record.versions)}: {how}; state verified"
    left = [f"{d.kind} {d.schema_name}.{d.name}" for d in record.dropped_objects if not d.gone]
    missing = [
        f"{r.schema_name}.{r.name}"
        for r in record.rebuilt_indexes
        if not r.valid and r.state != "tableGone"
    ]
    return (
        f"rollback of versions {', '.join(record.versions)} incomplete: {how}; still present: "
        f"{', '.join(left) or 'none'}; not rebuilt: {', '.join(missing) or 'none'}; "
        "history marked: "
        f"{', '.join(record.versions_marked_rolled_back) or 'none'}"
    )
