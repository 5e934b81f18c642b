"""The data-loss preflight of a rollback on demand: what it would throw away, before it runs.

A rollback asked for after a migration succeeded is not the rollback of a run that just failed:
the application has been writing since. Before anything is dropped or restored this check says
what would be lost, so a person can confirm it knowingly:

- RestoreBackup overwrites every table of the backup with its contents at backup time. The
  backup step recorded each table's write counters (``pg_stat_user_tables``: n_tup_ins, n_tup_upd,
  n_tup_del) and the WAL position just before the dump (``snapshot``); the rows written since are
  the difference with the counters now, per table, and the WAL distance says how much the server
  wrote in all (this run's own DDL included). Tables created since the backup go away too: all
  their rows count. Counters that went down (a statistics reset) cannot be compared: the table is
  reported with every row it holds, as lost.
- DropCreatedObjects drops the tables and columns the run created: the rows in those tables and
  the non-null values of those columns are lost (indexes, views and sequences hold no data). The
  indexes the run dropped, which it builds again, are listed too (``indexes_to_rebuild``).

The history table's own rows are left out: the rollback rewrites them itself; so are the
recorded definitions of dropped indexes (bookkeeping, not application data). It also names what
makes the rollback impossible (``refusals``): the backup file missing or failing its checksum,
a version applied on top of the run's by another run, the migration lock held by another session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from dbmigrate.api.dataloss import (
    DataLoss,
    RequestStrategy,
    RollbackCheck,
    TableCounters,
    TableLoss,
)
from dbmigrate.engine import history, locking
from dbmigrate.engine.undo import dropped_indexes
from dbmigrate.engine.undo.archive import sha256_of

if TYPE_CHECKING:
    from dbmigrate.api.evidence import BackupEvidence
    from dbmigrate.api.plan import CreatedObject

COUNTERS_SQL = """
SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del, n_live_tup
FROM pg_stat_user_tables
WHERE NOT (schemaname = %s AND relname IN (%s, %s))
ORDER BY 1
"""
# The insert position, not pg_current_wal_lsn() (the write position): WAL still in the server's
# buffers is written since the backup too, and the write position may stand still over it.
LSN_SQL = (
    "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_insert_lsn() END)::text"
)
WAL_DISTANCE_SQL = (
    "SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_insert_lsn() END, %s::pg_lsn)::bigint"
)
MAX_TABLES = 50  # tables listed in the report (the summary counts them all)


def read_counters(conn: psycopg.Connection) -> list[TableCounters]:
    """Every user table's write counters now (a fresh statistics snapshot)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    bookkeeping = (history.SCHEMA, history.TABLE, dropped_indexes.TABLE)
    rows = conn.execute(COUNTERS_SQL, bookkeeping).fetchall()
    return [
        TableCounters(
            table=str(name),
            inserted=int(ins or 0),
            updated=int(upd or 0),
            deleted=int(dele or 0),
            live_rows=int(live or 0),
        )
        for name, ins, upd, dele, live in rows
    ]


def snapshot(conn: psycopg.Connection) -> tuple[str, list[TableCounters]]:
    """The WAL position and every table's counters, as the backup records them."""
    row = conn.execute(LSN_SQL).fetchone()
    lsn = str(row[0]) if row and row[0] is not None else ""
    return lsn, read_counters(conn)


def restore_loss(
    conn: psycopg.Connection, at_backup: Sequence[TableCounters], lsn: str | None
) -> DataLoss:
    """What restoring the backup would lose: rows written since it, per table (see the module
    docstring), and the WAL distance."""
    before = {c.table: c for c in at_backup}
    losses = []
    for now in read_counters(conn):
        then = before.get(now.table)
        if then is None:
            written = now.written  # created since the backup: the restore drops it
        elif min(now.inserted - then.inserted, now.updated - then.updated,
                 now.deleted - then.deleted) < 0:  # fmt: skip
            written = max(now.written, now.live_rows)  # statistics reset: cannot compare
        else:
            written = now.written - then.written
        if written > 0:
            losses.append(
                TableLoss(table=now.table, rows=now.live_rows, rows_written_since_backup=written)
            )
    wal = None
    if lsn:
        row = conn.execute(WAL_DISTANCE_SQL, (lsn,)).fetchone()
        wal = int(row[0]) if row and row[0] is not None else None
    total = sum(t.rows_written_since_backup or 0 for t in losses)
    summary = (
        f"{total} row(s) were written since the backup in {len(losses)} table(s) that the "
        f"restore would overwrite: {_names(losses)}"
        if losses
        else "no row was written since the backup in any table the restore would overwrite"
    )
    if wal is not None:
        summary += f"; {wal} bytes of WAL since the backup"
    return DataLoss(
        checked=True, loss_found=bool(losses), tables=losses[:MAX_TABLES],
        wal_bytes_since_backup=wal, summary=summary,
    )  # fmt: skip


def drop_loss(conn: psycopg.Connection, created: Sequence[CreatedObject]) -> DataLoss:
    """What dropping the run's objects would lose: rows of its tables, values of its columns."""
    current = conn.execute("SELECT current_schema()").fetchone()
    default_schema = str(current[0]) if current and current[0] else "public"
    losses = []
    for obj in created:
        schema = obj.schema_name or default_schema
        if obj.kind == "table":
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, obj.name))
            where = f"{schema}.{obj.name}"
        elif obj.kind == "column" and obj.table:
            query = sql.SQL("SELECT count({}) FROM {}").format(
                sql.Identifier(obj.name), sql.Identifier(schema, obj.table)
            )
            where = f"{schema}.{obj.table}.{obj.name}"
        else:
            continue
        try:
            row = conn.execute(query).fetchone()
        except psycopg.errors.UndefinedTable:
            continue  # already gone: nothing to lose
        except psycopg.errors.UndefinedColumn:
            continue
        rows = int(row[0]) if row else 0
        if rows:
            losses.append(TableLoss(table=where, rows=rows))
    total = sum(t.rows for t in losses)
    summary = (
        f"{total} row(s) or value(s) in what the run created would be dropped: {_names(losses)}"
        if losses
        else "the tables and columns the run created hold no data"
    )
    return DataLoss(checked=True, loss_found=bool(losses), tables=losses[:MAX_TABLES],
                    summary=summary)  # fmt: skip


def _names(losses: Sequence[TableLoss]) -> str:
    shown = [t.table for t in losses[:5]]
    more = f" and {len(losses) - 5} more" if len(losses) > 5 else ""
    return ", ".join(shown) + more


@dataclass(frozen=True)
class CheckInput:
    """What the check needs besides the database: the run, the request and the backup."""

    request: str
    strategy: RequestStrategy
    run_id: str
    backup: BackupEvidence | None = None
    backup_path: str | None = None  # where the backup is here (a Job: the mounted PVC)


def backup_problems(backup: BackupEvidence | None, path: str | None) -> list[str]:
    """Why the backup cannot be restored: not taken, missing, or not the file recorded."""
    if backup is None:
        return ["RestoreBackup needs a backup, but this run took none (status.backup is empty)"]
    where = Path(path or backup.path)
    if not where.exists():
        return [f"the backup {where} is missing (deleted, or its volume is not mounted)"]
    digest = sha256_of(where)
    if digest != backup.sha256:
        return [
            f"the backup {where} fails its checksum: sha256 {digest}, the backup step recorded "
            f"{backup.sha256}; it was changed or damaged since"
        ]
    return []


def newer_versions(rows: Sequence[history.HistoryRow], run_id: str) -> list[history.HistoryRow]:
    """Versions another run applied on top of this run's (they would be undone too)."""
    mine = [r.version for r in rows if r.applied_by == run_id]
    if not mine:
        return []
    return [
        r
        for r in rows
        if r.applied_by != run_id and r.status == "applied" and r.version > min(mine)
    ]


def check(conn: psycopg.Connection, given: CheckInput) -> RollbackCheck:
    """The rollback check: refusals first, then the data-loss preflight of the strategy."""
    rows = history.read_history(conn) if history.history_exists(conn) else []
    versions = [r.version for r in rows if r.applied_by == given.run_id and r.status == "applied"]
    problems: list[str] = []
    if not versions:
        problems.append(
            f"run {given.run_id} has no applied version in the history table: nothing to roll "
            "back (it was rolled back already, or applied nothing)"
        )
    for row in newer_versions(rows, given.run_id):
        problems.append(
            f"version {row.version} ({row.name}) was applied on top by {row.applied_by}: roll "
            "that migration back first"
        )
    if locking.try_lock(conn):
        locking.unlock(conn)
    else:
        problems.append(locking.describe_holder(conn, 0))
    if given.strategy == "RestoreBackup":
        problems += backup_problems(given.backup, given.backup_path)
        counters = given.backup.table_counters if given.backup is not None else []
        lsn = given.backup.wal_lsn if given.backup is not None else None
        if given.backup is not None and not counters and not lsn:
            loss = DataLoss(
                checked=False, loss_found=True,
                summary="the backup recorded no table counters (taken by an older dbmigrate): "
                "what was written since it cannot be told, so it is treated as lost",
            )  # fmt: skip
        else:
            loss = restore_loss(conn, counters, lsn)
        rebuild: list[str] = []
    else:
        created = history.created_objects(conn, versions)
        loss = drop_loss(conn, created)
        tables = {(o.schema_name, o.name) for o in created if o.kind == "table"}
        rebuild = dropped_indexes.to_rebuild(conn, dropped_indexes.recorded(conn, versions), tables)
    return RollbackCheck(
        request=given.request, strategy=given.strategy, data_loss=loss, problems=problems,
        versions=[str(v) for v in versions], indexes_to_rebuild=rebuild,
        checked_at=datetime.now(UTC),
    )  # fmt: skip
