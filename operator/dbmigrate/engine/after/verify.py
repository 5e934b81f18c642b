"""The verify step: the indexes the applied SQL asked for exist, are valid, ready and as written,
and probe queries' plans use the expected indexes.

A failed check is a result (``passed: false`` with the reason), never an exception. The definition
check lets PostgreSQL render the file's CREATE INDEX on an empty temporary copy of the table
(rolled back), so both sides are in PostgreSQL's own normal form (casts, ANY arrays, defaults), then
compares the two with pglast after removing the index and table names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from dbmigrate.api.evidence import IndexCheck, ProbeResult, VerificationResult
from dbmigrate.engine import indexdefs
from dbmigrate.engine.after import probes
from dbmigrate.engine.after.probes import Probe
from dbmigrate.engine.indexdefs import IndexDef
from dbmigrate.engine.sources import Migration

TEMP_TABLE = "dbmigrate_verify_shape"
REPAIR_COMMAND = "dbmigrate repair --migrations DIR"

_FIND_INDEX = """
SELECT n.nspname, t.relname, i.indisvalid, i.indisready,
       pg_get_indexdef(i.indexrelid), pg_relation_size(i.indexrelid)
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class t ON t.oid = i.indrelid
 WHERE c.relname = %(name)s
   AND (n.nspname = %(schema)s
        OR (%(schema)s::text IS NULL AND n.nspname = ANY (current_schemas(false))))
 -- nspname stays of type name: before PostgreSQL 14, array_position(name[], text) does not exist
 ORDER BY array_position(current_schemas(false), n.nspname) NULLS LAST
 LIMIT 1
"""


def expected_indexes(migrations: Iterable[Migration]) -> list[IndexDef]:
    """Indexes the migrations create, in order, minus those a later migration drops."""
    found: dict[str, IndexDef] = {}
    for migration in migrations:
        for stmt in indexdefs.statements(migration.sql):
            if isinstance(stmt, indexdefs.ast.IndexStmt):
                idx = indexdefs.index_def(stmt, migration.version)
                found[idx.name or f"(unnamed #{len(found)})"] = idx
            for name in indexdefs.dropped_indexes(stmt):
                found.pop(name, None)
    return list(found.values())


def rendered_definition(conn: psycopg.Connection, idx: IndexDef, schema: str) -> str:
    """pg_get_indexdef of the file's index built on an empty copy of its table (rolled back)."""
    with conn.transaction(force_rollback=True):
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(
                sql.Identifier(TEMP_TABLE), sql.Identifier(schema, idx.table)
            )
        )
        conn.execute(sql.SQL(indexdefs.index_sql_on(idx, "pg_temp", TEMP_TABLE)))
        row = conn.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass",
            (f"pg_temp.{TEMP_TABLE}",),
        ).fetchone()
    assert row is not None
    return str(row[0])


def check_index(conn: psycopg.Connection, idx: IndexDef) -> IndexCheck:
    """Find the index in the catalog and judge it."""
    if not idx.name:
        return IndexCheck(
            name="",
            schema_name=idx.schema or "",
            table=idx.table,
            exists=False,
            passed=False,
            message=f"an index on {idx.table} is unnamed in the file, so it cannot be found, "
            "verified or rolled back; give it a name",
        )
    row = conn.execute(_FIND_INDEX, {"name": idx.name, "schema": idx.schema}).fetchone()
    if row is None:
        return IndexCheck(
            name=idx.name,
            schema_name=idx.schema or "",
            table=idx.table,
            exists=False,
            passed=False,
            message=f"index {idx.name} does not exist (dropped, or never built): rebuild the "
            f"indexes of the applied versions with `{REPAIR_COMMAND}`, or roll back",
        )
    schema, table, valid, ready, actual, size = row
    check = IndexCheck(
        name=idx.name,
        schema_name=schema,
        table=table,
        exists=True,
        valid=valid,
        ready=ready,
        actual_definition=actual,
        size_bytes=size,
        passed=False,
    )
    _compare_definition(conn, idx, check)
    check.passed = bool(valid and ready and check.definition_matches)
    drop = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, idx.name))
    check.message = _index_message(check, drop.as_string(conn))
    return check


def _compare_definition(conn: psycopg.Connection, idx: IndexDef, check: IndexCheck) -> None:
    try:
        expected = rendered_definition(conn, idx, check.schema_name)
    except psycopg.Error as exc:
        check.message = f"could not render the file's definition: {exc.diag.message_primary}"
        return
    check.expected_definition = expected
    actual = check.actual_definition or ""
    matches = indexdefs.comparable_definition(expected) == indexdefs.comparable_definition(actual)
    check.definition_matches = matches


def _index_message(check: IndexCheck, drop_sql: str) -> str:
    problems = []
    if check.valid is False:
        problems.append(
            "it is INVALID (an interrupted or failed CONCURRENTLY build): rebuild it with "
            f"`{REPAIR_COMMAND}` (which runs {drop_sql}; and the file's CREATE INDEX "
            "CONCURRENTLY)"
        )
    if check.ready is False:
        problems.append("it is not ready for inserts")
    if check.definition_matches is False:
        problems.append(
            f"its definition differs from the file: found {check.actual_definition!r}, "
            f"the file asks for {check.expected_definition!r}"
        )
    if check.definition_matches is None and check.message:
        problems.append(check.message)
    return "; ".join(problems) if problems else "exists, valid, ready, as written"


def analyze_tables(conn: psycopg.Connection, tables: Sequence[tuple[str, str]]) -> list[str]:
    """ANALYZE each (schema, table) that exists; the names analysed."""
    done: list[str] = []
    for schema, table in tables:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table)))
        done.append(f"{schema}.{table}")
    return done


def database_size(conn: psycopg.Connection) -> int:
    """pg_database_size of the connected database."""
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def verify(
    conn: psycopg.Connection,
    migrations: Sequence[Migration],
    probe_list: Sequence[Probe] = (),
    analyze: bool = True,
    explain_analyze: bool = False,
    baseline: Sequence[ProbeResult] = (),
    size_before: int | None = None,
) -> VerificationResult:
    """Check every expected index, ANALYZE, run the probes; the result (never raises on a fail)."""
    conn.autocommit = True
    checks = [check_index(conn, idx) for idx in expected_indexes(migrations)]
    tables = sorted({(c.schema_name, c.table) for c in checks if c.exists})
    analyzed = analyze_tables(conn, tables) if analyze else []
    results = [probes.run_probe(conn, p, explain_analyze) for p in probe_list]
    probes.attach_baseline(results, baseline)
    passed = all(c.passed for c in checks) and all(p.passed for p in results)
    failed = [c.name for c in checks if not c.passed] + [p.name for p in results if not p.passed]
    return VerificationResult(
        passed=passed,
        versions=[str(m.version) for m in migrations],
        indexes=checks,
        probes=results,
        analyzed_tables=analyzed,
        database_size_before=size_before,
        database_size_after=database_size(conn),
        message="all checks passed" if passed else "failed: " + ", ".join(failed),
        checked_at=datetime.now(UTC),
    )
