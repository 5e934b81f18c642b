"""The statistics queries behind a watch snapshot, written for the columns each server has.

Kept apart from ``snapshot`` so that module reads as what a snapshot holds, and this one as the
SQL that reads it. ``pg_stat_statements`` changes by version (``total_exec_time`` from 13,
``toplevel`` and ``pg_stat_statements_info`` with its ``dealloc`` from 14, ``stats_since`` from
17), and the extension's own version may lag the server's (an ``ALTER EXTENSION ... UPDATE`` not
yet run), so the columns are read from the view's catalog entry, not guessed from the server
version. Every query is read-only and bounded: top-N statements by total time, a row limit on
indexes and tables; none resets anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from dbmigrate.api.watch import QUERY_TEXT_LIMIT

MARKER = "/* dbmigrate watch */"
"""Follows the first word of every statement the watch runs (PostgreSQL 18 drops a leading
comment from the text it keeps), so snapshots leave the watch's own entries out."""

RELATION_LIMIT = 5000
"""Indexes (and tables) read per snapshot at most."""


@dataclass(frozen=True)
class StatementsView:
    """Where pg_stat_statements lives in this database and which columns its view has."""

    schema: str
    columns: frozenset[str]
    has_info: bool

    @property
    def has_toplevel(self) -> bool:
        return "toplevel" in self.columns

    @property
    def has_stats_since(self) -> bool:
        return "stats_since" in self.columns

    @property
    def stddev_column(self) -> str | None:
        """stddev_exec_time (1.8+), stddev_time (older), or None."""
        for name in ("stddev_exec_time", "stddev_time"):
            if name in self.columns:
                return name
        return None

    @property
    def time_column(self) -> str:
        """total_exec_time (1.8+, PG 13+); total_time on an extension left at an older version."""
        return "total_exec_time" if "total_exec_time" in self.columns else "total_time"


def find_statements_view(conn: psycopg.Connection) -> StatementsView | None:
    """The pg_stat_statements view of this database, or None when the extension is not created."""
    row = conn.execute(
        "SELECT "
        + MARKER
        + " n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    if row is None:
        return None
    schema = str(row[0])
    columns = conn.execute(
        "SELECT " + MARKER + " a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = 'pg_stat_statements'"
        " AND a.attnum > 0 AND NOT a.attisdropped",
        (schema,),
    ).fetchall()
    info = conn.execute(
        "SELECT "
        + MARKER
        + " to_regclass(format('%%I.pg_stat_statements_info', %s::text)) IS NOT NULL",
        (schema,),
    ).fetchone()
    return StatementsView(
        schema=schema,
        columns=frozenset(str(c[0]) for c in columns),
        has_info=bool(info and info[0]),
    )


def statements_query(view: StatementsView) -> sql.Composed:
    """The top-N entries of this database by total time (plus the queryids asked for), with the
    totals over every entry of the database; parameters: ``ids`` (bigint[]) and ``top`` (int).

    The view is read once (a MATERIALIZED CTE): each read of it reads the query-text file."""
    toplevel = sql.SQL("s.toplevel") if view.has_toplevel else sql.SQL("NULL::boolean")
    since = sql.SQL("s.stats_since") if view.has_stats_since else sql.SQL("NULL::timestamptz")
    column = view.stddev_column
    stddev = sql.SQL("s.{}").format(sql.Identifier(column)) if column else sql.SQL("NULL::float8")
    return sql.SQL(
        """
WITH """
        + MARKER
        + """ s AS MATERIALIZED (
    SELECT s.dbid, s.userid, s.queryid, {toplevel} AS toplevel, s.query, s.calls,
           s.{time} AS total_time, {since} AS stats_since, {stddev} AS stddev
      FROM {schema}.pg_stat_statements s
     WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND s.queryid IS NOT NULL
       AND strpos(s.query, {marker}) = 0
), ranked AS (
    SELECT s.*, row_number() OVER (ORDER BY s.total_time DESC) AS rank,
           count(*) OVER () AS entries, sum(s.calls) OVER () AS all_calls,
           sum(s.total_time) OVER () AS all_time
      FROM s
)
SELECT dbid::bigint, userid::bigint, queryid, toplevel, left(query, {limit}), md5(query),
       calls, total_time, stats_since, entries, all_calls, all_time, stddev
  FROM ranked
 WHERE rank <= %(top)s OR queryid = ANY(%(ids)s)
 ORDER BY total_time DESC
"""
    ).format(
        toplevel=toplevel,
        since=since,
        stddev=stddev,
        time=sql.Identifier(view.time_column),
        schema=sql.Identifier(view.schema),
        limit=sql.Literal(QUERY_TEXT_LIMIT),
        marker=sql.Literal(MARKER),
    )


def info_query(view: StatementsView) -> sql.Composed:
    """dealloc and stats_reset of pg_stat_statements_info (PG 14+)."""
    return sql.SQL(
        "SELECT " + MARKER + " dealloc, stats_reset FROM {}.pg_stat_statements_info"
    ).format(sql.Identifier(view.schema))


HIDDEN_TEXT_QUERY = sql.SQL(
    "SELECT " + MARKER + " count(*) FROM {}.pg_stat_statements(false)"
    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND queryid IS NULL"
)
"""Entries whose queryid and text the role may not see (other roles', without
pg_read_all_stats); ``showtext`` false, so the query-text file is not read again."""

INDEXES_QUERY = (
    "SELECT "
    + MARKER
    + f"""
schemaname, relname, indexrelname, idx_scan
  FROM pg_stat_user_indexes
 ORDER BY schemaname, relname, indexrelname
 LIMIT {RELATION_LIMIT}
"""
)

TABLES_QUERY = (
    "SELECT "
    + MARKER
    + f"""
schemaname, relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_tup_ins,
       n_tup_upd, n_tup_del, n_live_tup
  FROM pg_stat_user_tables
 ORDER BY schemaname, relname
 LIMIT {RELATION_LIMIT}
"""
)

DATABASE_QUERY = (
    "SELECT "
    + MARKER
    + """
xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched, temp_files,
       temp_bytes, deadlocks, pg_database_size(current_database()), stats_reset
  FROM pg_stat_database
 WHERE datname = current_database()
"""
)

SERVER_QUERY = (
    "SELECT "
    + MARKER
    + """
clock_timestamp(), current_setting('server_version'),
       current_setting('server_version_num')::int, current_database()
"""
)
