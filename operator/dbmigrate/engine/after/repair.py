"""Rebuilding the indexes an applied version created, when they went missing or INVALID.

The history says a version is applied, so ``apply`` has nothing to do for it; yet its index may
have been dropped by hand, or left INVALID (a build that failed after the row was written, a
restore, a crash of a REINDEX CONCURRENTLY). ``verify`` reports it; ``repair`` is the remedy it
prints: for each index the applied files create (minus those a later file drops) that is absent
or INVALID, drop the INVALID one concurrently and build the file's definition again with CREATE
INDEX CONCURRENTLY, under the run's lock timeout. Indexes that exist and are valid are left alone,
even when their definition differs (that is drift to review, not to overwrite).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

from dbmigrate.engine import history
from dbmigrate.engine.after.verify import check_index, expected_indexes
from dbmigrate.engine.catalog import relation_schema
from dbmigrate.engine.errors import HistoryError, from_database_error
from dbmigrate.engine.indexdefs import IndexDef, index_sql_on
from dbmigrate.engine.sources import Migration

log = logging.getLogger(__name__)


def _applied(conn: psycopg.Connection, migrations: Sequence[Migration]) -> list[Migration]:
    done = {r.version for r in history.read_history(conn) if r.status == "applied"}
    return [m for m in migrations if m.version in done]


def _needs_rebuild(conn: psycopg.Connection, idx: IndexDef) -> bool:
    check = check_index(conn, idx)
    return bool(idx.name) and (not check.exists or check.valid is False or check.ready is False)


def _rebuild(conn: psycopg.Connection, idx: IndexDef) -> str:
    schema = relation_schema(conn, idx.schema, idx.table)
    if schema is None:
        raise HistoryError(
            f"index {idx.name} of version {idx.version}: its table {idx.table} does not exist, "
            "so it cannot be rebuilt; the schema no longer matches the history"
        )
    name = sql.Identifier(schema, idx.name)
    conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name))
    conn.execute(sql.SQL(index_sql_on(idx, schema, idx.table, concurrent=True)))
    return f"{schema}.{idx.name}"


def repair_indexes(
    conn: psycopg.Connection, migrations: Sequence[Migration], lock_timeout_ms: int
) -> list[str]:
    """Rebuild the missing or INVALID indexes of the applied versions; the names rebuilt."""
    conn.autocommit = True
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (str(lock_timeout_ms),))
    rebuilt: list[str] = []
    for idx in expected_indexes(_applied(conn, migrations)):
        if not _needs_rebuild(conn, idx):
            continue
        try:
            rebuilt.append(_rebuild(conn, idx))
        except psycopg.Error as exc:
            raise from_database_error(exc, f"rebuilding index {idx.name}") from exc
        log.info("rebuilt index %s (version %s)", rebuilt[-1], idx.version)
    return rebuilt
