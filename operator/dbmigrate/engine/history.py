"""The history table: the database's own record of which migration versions ran, and how far.

``dbmigrate.schema_migrations`` is the truth of what ran. A transactional file writes its row in
the same transaction as its statements; an autocommit file updates ``statements_done`` after each
statement so a rerun resumes where the last one stopped. ``created_objects`` is the manifest of
objects a version created, which the emergency rollback drops.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dbmigrate.api.plan import CreatedObject, VersionApplyRecord

SCHEMA = "dbmigrate"
TABLE = "schema_migrations"
STATUSES = ("pending", "running", "applied", "failed", "rolled_back")

_DDL = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {table} (
        version bigint PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        status text NOT NULL CHECK (status IN
            ('pending', 'running', 'applied', 'failed', 'rolled_back')),
        started_at timestamptz,
        finished_at timestamptz,
        duration interval,
        statements_done integer NOT NULL DEFAULT 0,
        statements_total integer NOT NULL DEFAULT 0,
        applied_by text,
        rolled_back_at timestamptz,
        rolled_back_by text,
        created_objects jsonb NOT NULL DEFAULT '[]'::jsonb,
        error text
    )""",
)


def table_ident() -> sql.Identifier:
    """``dbmigrate.schema_migrations`` as a quoted identifier."""
    return sql.Identifier(SCHEMA, TABLE)


@dataclass(frozen=True)
class HistoryRow:
    """One row of the history table."""

    version: int
    name: str
    checksum: str
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    statements_done: int = 0
    statements_total: int = 0
    applied_by: str | None = None
    rolled_back_at: datetime | None = None
    rolled_back_by: str | None = None
    created_objects: list[CreatedObject] = field(default_factory=list)
    error: str | None = None


def row_of(
    record: VersionApplyRecord, status: str, applied_by: str, finished_at: datetime | None
) -> HistoryRow:
    """The row that records an apply's record of one version with ``status``."""
    return HistoryRow(
        version=record.version,
        name=record.name,
        checksum=record.checksum,
        status=status,
        started_at=record.started_at,
        finished_at=finished_at,
        statements_done=record.statements_done,
        statements_total=record.statements_total,
        applied_by=applied_by,
        created_objects=record.created_objects,
        error=record.error,
    )


def ensure_history(conn: psycopg.Connection) -> None:
    """Create the history schema and table if missing (needs CREATE on the database); both
    statements go in one message, so they take one round trip and commit together."""
    ddl = [sql.SQL(s).format(schema=sql.Identifier(SCHEMA), table=table_ident()) for s in _DDL]
    conn.execute(sql.SQL(";\n").join(ddl))


def history_exists(conn: psycopg.Connection) -> bool:
    """Whether the history table exists (a fresh database has none)."""
    row = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (SCHEMA, TABLE)
    ).fetchone()
    return bool(row and row[0])


def _row(record: dict[str, object]) -> HistoryRow:
    duration = record.pop("duration")
    objects = record.pop("created_objects") or []
    assert isinstance(objects, list)
    return HistoryRow(
        **record,  # type: ignore[arg-type]
        duration_seconds=duration.total_seconds() if duration is not None else None,  # type: ignore[attr-defined]
        created_objects=[CreatedObject.model_validate(o) for o in objects],
    )


def read_history(conn: psycopg.Connection) -> list[HistoryRow]:
    """Every row, ordered by version; empty when the table does not exist yet."""
    return read_rows(conn) if history_exists(conn) else []


def read_rows(conn: psycopg.Connection) -> list[HistoryRow]:
    """Every row of the history table, which must exist, ordered by version."""
    query = sql.SQL(
        "SELECT version, name, checksum, status, started_at, finished_at, duration, "
        "statements_done, statements_total, applied_by, rolled_back_at, rolled_back_by, "
        "created_objects, error FROM {} ORDER BY version"
    ).format(table_ident())
    with conn.cursor(row_factory=dict_row) as cur:
        return [_row(dict(r)) for r in cur.execute(query).fetchall()]


def objects_json(objects: Sequence[CreatedObject]) -> str:
    """The manifest as stored in the jsonb column."""
    return json.dumps([o.to_wire() for o in objects])


def upsert_row(conn: psycopg.Connection, row: HistoryRow) -> None:
    """Insert or overwrite a version's row (inside the caller's transaction, if any)."""
    query = sql.SQL(
        "INSERT INTO {} AS h (version, name, checksum, status, started_at, finished_at, duration,"
        " statements_done, statements_total, applied_by, rolled_back_at, rolled_back_by,"
        " created_objects, error)"
        " VALUES (%(version)s, %(name)s, %(checksum)s, %(status)s, %(started_at)s,"
        " %(finished_at)s, %(finished_at)s - %(started_at)s, %(statements_done)s,"
        " %(statements_total)s, %(applied_by)s, NULL, NULL, %(objects)s::jsonb, %(error)s)"
        " ON CONFLICT (version) DO UPDATE SET name = excluded.name, checksum = excluded.checksum,"
        " status = excluded.status, started_at = excluded.started_at,"
        " finished_at = excluded.finished_at, duration = excluded.duration,"
        " statements_done = excluded.statements_done,"
        " statements_total = excluded.statements_total, applied_by = excluded.applied_by,"
        " rolled_back_at = NULL, rolled_back_by = NULL,"
        " created_objects = excluded.created_objects, error = excluded.error"
    ).format(table_ident())
    params = {
        "version": row.version,
        "name": row.name,
        "checksum": row.checksum,
        "status": row.status,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "statements_done": row.statements_done,
        "statements_total": row.statements_total,
        "applied_by": row.applied_by,
        "objects": objects_json(row.created_objects),
        "error": row.error,
    }
    conn.execute(query, params)


def record_progress(
    conn: psycopg.Connection, version: int, statements_done: int, objects: Sequence[CreatedObject]
) -> None:
    """Advance a running version's statement counter and manifest (in the caller's transaction)."""
    query = sql.SQL(
        "UPDATE {} SET statements_done = %s, created_objects = %s::jsonb WHERE version = %s"
    ).format(table_ident())
    conn.execute(query, (statements_done, objects_json(objects), version))


def mark_rolled_back(conn: psycopg.Connection, versions: Sequence[int], run_id: str) -> int:
    """Mark versions as rolled back by ``run_id``; returns how many rows changed."""
    query = sql.SQL(
        "UPDATE {} SET status = 'rolled_back', rolled_back_at = now(), rolled_back_by = %s"
        " WHERE version = ANY(%s) AND status <> 'rolled_back'"
    ).format(table_ident())
    cur = conn.execute(query, (run_id, list(versions)))
    return cur.rowcount


def created_objects(conn: psycopg.Connection, versions: Sequence[int]) -> list[CreatedObject]:
    """The objects the given versions created, newest version first (the order to drop them)."""
    if not history_exists(conn):
        return []
    query = sql.SQL(
        "SELECT created_objects FROM {} WHERE version = ANY(%s) ORDER BY version DESC"
    ).format(table_ident())
    rows = conn.execute(query, (list(versions),)).fetchall()
    objects: list[CreatedObject] = []
    for (manifest,) in rows:
        objects.extend(CreatedObject.model_validate(o) for o in reversed(manifest or []))
    return objects
