"""One watch snapshot: the cumulative counters of the database at an instant, small and bounded.

A snapshot reads ``pg_stat_statements`` (top-N entries of this database by total time, and the
probes' own entries), ``pg_stat_user_indexes``, ``pg_stat_user_tables`` and ``pg_stat_database``
in one READ ONLY transaction under a statement_timeout. Each part runs in its own savepoint: a
part that is missing or refused (no extension, library not preloaded, a timeout) is written into
``missing`` with how to fix it, and the others are still read; a snapshot never fails a migration.
It never calls ``pg_stat_statements_reset()``: the counters are other people's too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

from dbmigrate.api.watch import (
    ENABLE_PG_STAT_STATEMENTS,
    DatabaseCounters,
    IndexCounters,
    Snapshot,
    StatementCounters,
    TableCounters,
    WatchThresholds,
)
from dbmigrate.engine.after import stat_queries
from dbmigrate.engine.after.probe_timing import time_probes
from dbmigrate.engine.after.probes import Probe
from dbmigrate.engine.table_stats import read_only

log = logging.getLogger(__name__)


def _failure(exc: psycopg.Error) -> str:
    return str(exc.diag.message_primary or exc).strip()


def _read_statements(
    conn: psycopg.Connection, snap: Snapshot, top_n: int, queryids: Sequence[int]
) -> None:
    """Fill the pg_stat_statements part of ``snap`` (or say why it cannot be read)."""
    view = stat_queries.find_statements_view(conn)
    if view is None:
        snap.statements_missing = (
            "pg_stat_statements is not installed in this database: per-query times cannot be "
            f"compared; to enable it, {ENABLE_PG_STAT_STATEMENTS}"
        )
        return
    try:
        with conn.transaction():
            rows = conn.execute(
                stat_queries.statements_query(view), {"top": top_n, "ids": list(queryids)}
            ).fetchall()
    except psycopg.Error as exc:
        snap.statements_missing = (
            f"pg_stat_statements cannot be read ({_failure(exc)}); to enable it, "
            f"{ENABLE_PG_STAT_STATEMENTS}"
        )
        return
    snap.statements_available = True
    snap.statements = [
        StatementCounters(
            dbid=row[0],
            userid=row[1],
            queryid=row[2],
            toplevel=row[3],
            query=row[4] or "",
            text_hash=row[5] or "",
            calls=row[6],
            total_exec_time=float(row[7]),
            stats_since=row[8],
            stddev_exec_time=None if row[12] is None else float(row[12]),
        )
        for row in rows
    ]
    if rows:
        snap.statements_count = int(rows[0][9])
        snap.statements_total_calls = int(rows[0][10])
        snap.statements_total_exec_time = float(rows[0][11])
    _read_info(conn, snap, view)
    _note_hidden(conn, snap, view)


def _read_info(conn: psycopg.Connection, snap: Snapshot, view: stat_queries.StatementsView) -> None:
    if not view.has_info:
        snap.missing.append(
            "pg_stat_statements_info (PostgreSQL 14+, extension 1.9+) is not there: entries "
            "evicted past pg_stat_statements.max cannot be told apart"
        )
        return
    try:
        with conn.transaction():
            row = conn.execute(stat_queries.info_query(view)).fetchone()
    except psycopg.Error as exc:
        snap.missing.append(f"pg_stat_statements_info cannot be read: {_failure(exc)}")
        return
    if row is not None:
        snap.dealloc, snap.stats_reset = int(row[0]), row[1]


def _note_hidden(
    conn: psycopg.Connection, snap: Snapshot, view: stat_queries.StatementsView
) -> None:
    try:
        with conn.transaction():
            row = conn.execute(
                stat_queries.HIDDEN_TEXT_QUERY.format(sql.Identifier(view.schema))
            ).fetchone()
    except psycopg.Error as exc:
        snap.missing.append(f"pg_stat_statements entries could not be counted: {_failure(exc)}")
        return
    hidden = int(row[0]) if row else 0
    if hidden:
        snap.missing.append(
            f"{hidden} pg_stat_statements entries of other roles are hidden from this role; "
            "GRANT pg_read_all_stats TO it to compare them too"
        )


def _read_relations(conn: psycopg.Connection, snap: Snapshot) -> None:
    try:
        with conn.transaction():
            indexes = conn.execute(stat_queries.INDEXES_QUERY).fetchall()
            tables = conn.execute(stat_queries.TABLES_QUERY).fetchall()
    except psycopg.Error as exc:
        snap.missing.append(f"pg_stat_user_indexes/tables cannot be read: {_failure(exc)}")
        return
    snap.indexes = [
        IndexCounters(schema_name=r[0], table=r[1], index=r[2], idx_scan=r[3] or 0) for r in indexes
    ]
    snap.tables = [
        TableCounters(
            schema_name=r[0],
            table=r[1],
            seq_scan=r[2] or 0,
            seq_tup_read=r[3] or 0,
            idx_scan=r[4] or 0,
            n_tup_ins=r[5] or 0,
            n_tup_upd=r[6] or 0,
            n_tup_del=r[7] or 0,
            n_live_tup=r[8] or 0,
        )
        for r in tables
    ]


def _read_database(conn: psycopg.Connection, snap: Snapshot) -> None:
    try:
        with conn.transaction():
            row = conn.execute(stat_queries.DATABASE_QUERY).fetchone()
    except psycopg.Error as exc:
        snap.missing.append(f"pg_stat_database cannot be read: {_failure(exc)}")
        return
    if row is None:
        return
    snap.database_counters = DatabaseCounters(
        xact_commit=row[0] or 0,
        xact_rollback=row[1] or 0,
        blks_read=row[2] or 0,
        blks_hit=row[3] or 0,
        tup_returned=row[4] or 0,
        tup_fetched=row[5] or 0,
        temp_files=row[6] or 0,
        temp_bytes=row[7] or 0,
        deadlocks=row[8] or 0,
        size_bytes=row[9] or 0,
        stats_reset=row[10],
    )


def take_snapshot(
    conn: psycopg.Connection,
    thresholds: WatchThresholds | None = None,
    probes: Sequence[Probe] = (),
    track: Sequence[int] = (),
) -> Snapshot:
    """The counters now (and the probes' median times when ``probes`` are given); the entries
    of the queryids in ``track`` (and the probes') are kept even below the top-N.

    ``conn`` must not be inside a transaction; it is left as it was found."""
    limits = thresholds or WatchThresholds()
    timed = time_probes(conn, probes, limits.probe_runs, limits.statement_timeout_ms)
    queryids = [*track, *(t.queryid for t in timed if t.queryid is not None)]
    with read_only(conn, limits.statement_timeout_ms):
        row = conn.execute(stat_queries.SERVER_QUERY).fetchone()
        assert row is not None
        snap = Snapshot(
            taken_at=row[0], server_version=row[1], server_version_num=row[2], database=row[3]
        )
        _read_statements(conn, snap, limits.top_n, queryids)
        _read_relations(conn, snap)
        _read_database(conn, snap)
    snap.probes = [t.sample for t in timed]
    if snap.statements_missing:
        snap.missing.insert(0, snap.statements_missing)
    log.debug(
        "snapshot: %d statements (of %d), %d indexes, %d tables",
        len(snap.statements),
        snap.statements_count,
        len(snap.indexes),
        len(snap.tables),
    )
    return snap
