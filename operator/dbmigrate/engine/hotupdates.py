"""Will a new index end HOT updates on its table?

An UPDATE is HOT (heap-only: no index is touched, the old version is pruned in place) only when
it changes no column that any index refers to, keys, expressions and predicates alike. So a new
index on a column the workload updates turns those HOT updates into ordinary ones: every index
written on every update, and bloat. pg_stat_user_tables gives the share of HOT updates; which
columns the workload updates comes from pg_stat_statements when it is installed (the UPDATE
statements parsed with pglast), otherwise every column no current index covers is suspect.
"""

from __future__ import annotations

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError

from dbmigrate.api.evidence import Check, IndexEstimate
from dbmigrate.engine import estimates, indexdefs
from dbmigrate.engine.indexdefs import IndexDef
from dbmigrate.engine.table_stats import TableFacts, one_row, read_only


def updated_columns(conn: psycopg.Connection, facts: TableFacts) -> set[str] | None:
    """Columns UPDATE statements of the workload set (from pg_stat_statements), if available."""
    if not one_row(conn, "SELECT to_regclass('pg_stat_statements') IS NOT NULL")[0]:
        return None
    try:
        with read_only(conn):
            queries = conn.execute(
                "SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
                " WHERE datname = current_database()) ORDER BY calls DESC LIMIT 5000"
            ).fetchall()
    except psycopg.Error:
        return None  # the view exists but the library is not loaded or readable
    columns: set[str] = set()
    for (text,) in queries:
        columns |= _set_columns(str(text), facts.name)
    return columns


def _set_columns(query: str, table: str) -> set[str]:
    try:
        stmts = parse_sql(query)
    except ParseError:
        return set()
    return {
        target.name
        for raw in stmts
        if isinstance(raw.stmt, ast.UpdateStmt)
        and raw.stmt.relation is not None
        and raw.stmt.relation.relname == table
        for target in raw.stmt.targetList or ()
        if target.name
    }


def indexed_columns(conn: psycopg.Connection, facts: TableFacts) -> set[str]:
    """Columns any existing index of the table refers to (keys, expressions, predicates)."""
    defs = conn.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s", (facts.oid,)
    ).fetchall()
    return {c for (d,) in defs for i in indexdefs.index_defs(d) for c in i.referenced_columns}


def hot_check(
    conn: psycopg.Connection,
    facts: TableFacts,
    idx: IndexDef,
    est: IndexEstimate,
    updated: set[str] | None,
) -> Check:
    """Whether the new index refers to columns the workload updates, ending HOT updates."""
    new = sorted(set(idx.referenced_columns) - indexed_columns(conn, facts))
    est.newly_indexed_columns = new
    share = estimates.hot_percent(facts.updates, facts.hot_updates) or 0.0
    name = f"hot-updates:{idx.name}"
    hit = sorted(set(new) & updated) if updated is not None else new
    est.ends_hot_updates = bool(hit) and share > 0
    if not est.ends_hot_updates:
        return Check(
            name=name, status="ok", message=f"{share}% HOT updates on {facts.name} stay HOT"
        )
    source = (
        "pg_stat_statements shows UPDATEs setting"
        if updated is not None
        else "if the workload updates"
    )
    return Check(
        name=name,
        status="warn",
        message=f"{facts.name} has {share}% HOT updates "
        f"({facts.hot_updates:,} of {facts.updates:,}); "
        f"{source} {', '.join(hit)}, {idx.name} makes those updates non-HOT (every update then "
        "writes every index and bloats the table); index another column, or accept the cost",
    )
