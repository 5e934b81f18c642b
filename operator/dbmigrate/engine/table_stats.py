"""The catalog and statistics queries behind the preflight checks (all read-only).

Kept apart from ``preflight`` so that module reads as the list of checks, and this one as the
SQL each check asks. Identifiers go through ``psycopg.sql.Identifier``; expressions of a migration
file (index keys and predicates) are pglast's deparse of the file's own parse tree.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from dbmigrate.api.evidence import SessionBlocker, TableEstimate
from dbmigrate.engine import estimates, indexdefs
from dbmigrate.engine.indexdefs import IndexDef


@dataclass(frozen=True)
class ServerFacts:
    """Who runs the checks, against what."""

    role: str
    superuser: bool
    server_version: str
    database_size: int


@dataclass(frozen=True)
class TableFacts:
    """A table as the catalog and the statistics see it."""

    oid: int
    schema: str
    name: str
    is_owner: bool
    size_bytes: int
    total_size_bytes: int
    rows: int
    row_source: Literal["reltuples", "planner"]
    updates: int | None
    hot_updates: int | None


@contextlib.contextmanager
def read_only(conn: psycopg.Connection, timeout_ms: int = 60_000) -> Iterator[None]:
    """A READ ONLY transaction with a statement_timeout, always rolled back."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{timeout_ms}ms",))
        yield


def one_row(conn: psycopg.Connection, query: Any, params: Any = None) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def server_facts(conn: psycopg.Connection) -> ServerFacts:
    """Role, superuser flag, server version and database size."""
    role, superuser, version, size = one_row(
        conn,
        "SELECT current_user, rolsuper, current_setting('server_version'),"
        " pg_database_size(current_database()) FROM pg_roles WHERE rolname = current_user",
    )
    return ServerFacts(str(role), bool(superuser), str(version), int(size))


def current_schema(conn: psycopg.Connection) -> str:
    """Where unqualified new tables go."""
    return str(one_row(conn, "SELECT coalesce(current_schema(), 'public')")[0])


_TABLE = """
SELECT c.oid, n.nspname, c.relname, pg_has_role(current_user, c.relowner, 'USAGE'),
       pg_table_size(c.oid), pg_total_relation_size(c.oid), c.reltuples::bigint,
       s.n_tup_upd, s.n_tup_hot_upd
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relname = %(name)s AND c.relkind IN ('r', 'p', 'm')
   AND (n.nspname = %(schema)s
        OR (%(schema)s::text IS NULL AND n.nspname = ANY (current_schemas(false))))
 -- nspname stays of type name: before PostgreSQL 14, array_position(name[], text) does not exist
 ORDER BY array_position(current_schemas(false), n.nspname) NULLS LAST
 LIMIT 1
"""


def table_facts(conn: psycopg.Connection, schema: str | None, name: str) -> TableFacts | None:
    """Size, owner and row estimate of a table (None when it does not exist yet)."""
    row = conn.execute(_TABLE, {"schema": schema, "name": name}).fetchone()
    if row is None:
        return None
    oid, nsp, rel, owner, size, total, reltuples, upd, hot = row
    source: Literal["reltuples", "planner"] = "reltuples"
    if reltuples < 0:  # never vacuumed or analysed: ask the planner, which scales by file size
        reltuples = _plan_rows(conn, sql.SQL("SELECT FROM {}").format(sql.Identifier(nsp, rel)))
        source = "planner"
    return TableFacts(oid, nsp, rel, owner, size, total, int(reltuples), source, upd, hot)


def _plan_rows(conn: psycopg.Connection, query: sql.Composable) -> int:
    with read_only(conn):
        plan = one_row(conn, sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query))[0]
    return int(plan[0]["Plan"]["Plan Rows"])


def predicate_rows(conn: psycopg.Connection, facts: TableFacts, idx: IndexDef) -> int:
    """The planner's estimate of the rows a partial index keeps."""
    query = sql.SQL("SELECT FROM {} WHERE {}").format(
        sql.Identifier(facts.schema, facts.name),
        sql.SQL(idx.predicate_sql or "true"),
    )
    return _plan_rows(conn, query)


def key_width(conn: psycopg.Connection, facts: TableFacts, idx: IndexDef) -> int:
    """Bytes of key data per entry: pg_stats.avg_width, else type length, per column."""
    rows = conn.execute(
        "SELECT a.attname, t.typlen, s.avg_width FROM pg_attribute a"
        " JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_stats s ON s.schemaname = %s AND s.tablename = %s AND s.attname = a.attname"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (facts.schema, facts.name, facts.oid),
    ).fetchall()
    widths = {name: estimates.column_width(avg, typlen) for name, typlen, avg in rows}
    columns = list(idx.key_columns) + list(idx.include_columns)
    expressions = len(idx.key_sql) - len(idx.key_columns)
    total = sum(widths.get(c, estimates.DEFAULT_VARLENA_WIDTH) for c in columns)
    return total + expressions * estimates.EXPRESSION_WIDTH


def privilege_problems(
    conn: psycopg.Connection,
    info: ServerFacts,
    tables: Sequence[tuple[TableEstimate, TableFacts | None]],
    created_schemas: Sequence[str],
) -> list[str]:
    """What the role may not do that the pending SQL does."""
    if info.superuser:
        return []
    problems = [
        f"role {info.role} does not own {f.schema}.{f.name} (nor is a member of its owner): "
        "CREATE INDEX and ALTER TABLE need ownership; run as the owner or GRANT the owner role"
        for _, f in tables
        if f is not None and not f.is_owner
    ]
    schemas = {t.schema_name for t, f in tables if f is None} - set(created_schemas)
    for schema in sorted(schemas):
        ok = one_row(
            conn,
            "SELECT coalesce(has_schema_privilege(oid, 'CREATE'), false) FROM pg_namespace"
            " WHERE nspname = %s UNION ALL SELECT false LIMIT 1",
            (schema,),
        )[0]
        if not ok:
            problems.append(
                f"role {info.role} may not create tables in schema {schema}: GRANT CREATE ON SCHEMA"
            )
    if (
        created_schemas
        and not one_row(conn, "SELECT has_database_privilege(current_database(), 'CREATE')")[0]
    ):
        problems.append(f"role {info.role} may not create schemas: GRANT CREATE ON DATABASE")
    return problems


SAMPLE_TABLE = "dbmigrate_sample"
SAMPLE_TIMEOUT = "120s"  # a slower sample build is abandoned for the formula


def sample_build(
    conn: psycopg.Connection, facts: TableFacts, idx: IndexDef
) -> estimates.SampleBuild:
    """Build the index on a TABLESAMPLE copy of the table in a temporary table (rolled back)."""
    percent = min(100.0, 100.0 * estimates.SAMPLE_ROWS / max(facts.rows, 1))
    with conn.transaction(force_rollback=True):
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (SAMPLE_TIMEOUT,))
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT * FROM {} TABLESAMPLE SYSTEM (%s)"
                " LIMIT %s"
            ).format(sql.Identifier(SAMPLE_TABLE), sql.Identifier(facts.schema, facts.name)),
            (percent, estimates.SAMPLE_ROWS),
        )
        rows = int(
            one_row(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SAMPLE_TABLE)))[
                0
            ]
        )
        started = time.monotonic()
        conn.execute(sql.SQL(indexdefs.index_sql_on(idx, "pg_temp", SAMPLE_TABLE)))
        took = time.monotonic() - started
        size = one_row(
            conn,
            "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index"
            " WHERE indrelid = %s::regclass",
            (f"pg_temp.{SAMPLE_TABLE}",),
        )[0]
    return estimates.SampleBuild(rows=rows, seconds=took, size_bytes=int(size))


def has_duplicates(
    conn: psycopg.Connection, facts: TableFacts, idx: IndexDef, timeout_ms: int
) -> bool | None:
    """Whether rows would violate the UNIQUE index; None when the check timed out."""
    keys = [sql.SQL(k) for k in idx.key_sql]
    conditions: list[sql.Composable] = []
    if not idx.nulls_not_distinct:  # NULLs never collide in a plain UNIQUE index
        conditions += [sql.SQL("({}) IS NOT NULL").format(k) for k in keys]
    if idx.predicate_sql:
        conditions.append(sql.SQL("({})").format(sql.SQL(idx.predicate_sql)))
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {}{} GROUP BY {} HAVING count(*) > 1)").format(
        sql.Identifier(facts.schema, facts.name), where, sql.SQL(", ").join(keys)
    )
    try:
        with read_only(conn, timeout_ms):
            return bool(one_row(conn, query)[0])
    except (psycopg.errors.QueryCanceled, psycopg.errors.InsufficientPrivilege):
        return None


_BLOCKERS = """
SELECT pid, coalesce(state, ''), coalesce(application_name, ''), coalesce(usename, ''),
       extract(epoch FROM now() - xact_start)::float8, left(coalesce(query, ''), 200)
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND backend_type = 'client backend' AND xact_start IS NOT NULL
   AND (state LIKE 'idle in transaction%%' OR now() - xact_start > make_interval(secs => %s))
 ORDER BY xact_start
"""


def blockers(conn: psycopg.Connection, long_seconds: float) -> list[SessionBlocker]:
    """Open idle transactions and transactions older than LONG_SECONDS in this database."""
    found = []
    for pid, state, app, user, age, query in conn.execute(_BLOCKERS, (long_seconds,)).fetchall():
        idle = state.startswith("idle in transaction")
        reason = (
            "idle in transaction: its snapshot holds CONCURRENTLY builds and its locks hold DDL"
            if idle
            else f"transaction open for {age:.0f}s: holds CONCURRENTLY builds until it ends"
        )
        found.append(
            SessionBlocker(
                pid=pid,
                state=state,
                application_name=app,
                user=user,
                transaction_age_seconds=round(age, 1),
                query=query,
                reason=reason,
            )
        )
    return found
