"""The preflight step: what the pending SQL will need and meet, checked before anything changes.

The server's major version against the supported range (PostgreSQL 13 to 18), privileges for what
the SQL does, database and table sizes, row estimates (large tables flagged),
each new index's disk and build-time estimate (see ``estimates``), sessions that would hold up a
CONCURRENTLY build, duplicates that would make a UNIQUE build fail (bounded by a timeout), and
whether a new index ends HOT updates. Nothing is changed: SQL derived from the migration files
(predicates, duplicate checks, probes) runs in READ ONLY transactions with a statement_timeout,
and the sample index builds run on a temporary table inside a transaction that is rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from dbmigrate.api.evidence import Check, IndexEstimate, PreflightResult, TableEstimate
from dbmigrate.engine import estimates, hotupdates, indexdefs, table_stats
from dbmigrate.engine.indexdefs import IndexDef, TableRef
from dbmigrate.engine.probes import Probe, run_probe
from dbmigrate.engine.sources import Migration
from dbmigrate.engine.undo import pgtools


@dataclass(frozen=True)
class PreflightOptions:
    """Thresholds and bounds of the checks."""

    large_table_rows: int = 1_000_000
    long_transaction_seconds: float = 60.0
    duplicate_check_timeout_ms: int = 30_000
    sample_builds: bool = True
    probes: Sequence[Probe] = ()


def run_preflight(
    conn: psycopg.Connection, pending: Sequence[Migration], options: PreflightOptions
) -> PreflightResult:
    """Every check against the connected database (autocommit connection)."""
    conn.autocommit = True
    texts = [m.sql for m in pending]
    indexes = [i for m in pending for i in indexdefs.index_defs(m.sql, m.version)]
    info = table_stats.server_facts(conn)
    result = PreflightResult(
        passed=True,
        pending_versions=[str(m.version) for m in pending],
        role=info.role,
        server_version=info.server_version,
        database_size_bytes=info.database_size,
        large_table_rows=options.large_table_rows,
        checked_at=datetime.now(UTC),
    )
    tables = _tables(conn, indexdefs.touched_tables(texts), options.large_table_rows)
    result.tables = [t for t, _ in tables]
    result.touches_large_tables = any(t.large for t in result.tables)
    result.checks.append(_version_check(conn.info.server_version, info.server_version))
    result.checks.append(_privilege_check(conn, info, tables, indexdefs.created_schemas(texts)))
    result.checks.append(_size_check(result))
    result.new_indexes = [_estimate(conn, i, tables, options.sample_builds) for i in indexes]
    result.estimated_disk_bytes = sum(i.estimated_size_bytes for i in result.new_indexes)
    result.estimated_build_seconds = round(
        sum(i.estimated_build_seconds for i in result.new_indexes), 2
    )
    result.checks.append(_estimate_check(result))
    result.checks.extend(_unique_checks(conn, indexes, result.new_indexes, tables, options))
    result.checks.extend(_hot_checks(conn, indexes, result.new_indexes, tables))
    result.blockers = table_stats.blockers(conn, options.long_transaction_seconds)
    result.checks.append(_blocker_check(result, indexes))
    result.probe_baseline = [run_probe(conn, p, analyze=False) for p in options.probes]
    result.passed = all(c.status != "fail" for c in result.checks)
    return result


Resolved = list[tuple[TableEstimate, table_stats.TableFacts | None]]


def _tables(conn: psycopg.Connection, refs: Sequence[TableRef], threshold: int) -> Resolved:
    out: Resolved = []
    for ref in refs:
        facts = table_stats.table_facts(conn, ref.schema, ref.name)
        if facts is None:
            schema = ref.schema or table_stats.current_schema(conn)
            out.append((TableEstimate(schema_name=schema, name=ref.name, exists=False), None))
            continue
        est = TableEstimate(
            schema_name=facts.schema,
            name=facts.name,
            exists=True,
            size_bytes=facts.size_bytes,
            total_size_bytes=facts.total_size_bytes,
            estimated_rows=facts.rows,
            row_estimate_source=facts.row_source,
            large=facts.rows > threshold,
            updates=facts.updates,
            hot_updates=facts.hot_updates,
            hot_update_percent=estimates.hot_percent(facts.updates, facts.hot_updates),
        )
        out.append((est, facts))
    return out


def _facts_for(tables: Resolved, idx: IndexDef) -> table_stats.TableFacts | None:
    for est, facts in tables:
        if est.name == idx.table and (idx.schema is None or idx.schema == est.schema_name):
            return facts
    return None


def _privilege_check(
    conn: psycopg.Connection, info: table_stats.ServerFacts, tables: Resolved, schemas: list[str]
) -> Check:
    problems = table_stats.privilege_problems(conn, info, tables, schemas)
    if problems:
        return Check(name="privileges", status="fail", message="; ".join(problems))
    return Check(
        name="privileges",
        status="ok",
        message=f"role {info.role} owns every table the SQL alters or indexes and may create in "
        "the schemas it creates objects in",
    )


def _version_check(server_version_num: int, server_version: str) -> Check:
    """Warns about a server outside the PostgreSQL majors dbmigrate supports and tests."""
    problem = pgtools.unsupported_server(server_version_num)
    if problem:
        return Check(name="server-version", status="warn", message=problem)
    return Check(
        name="server-version",
        status="ok",
        message=f"PostgreSQL {server_version} (supported: {pgtools.OLDEST_SUPPORTED_MAJOR} to "
        f"{pgtools.NEWEST_SUPPORTED_MAJOR})",
    )


def _size_check(result: PreflightResult) -> Check:
    large = [
        f"{t.schema_name}.{t.name} (~{t.estimated_rows:,} rows)" for t in result.tables if t.large
    ]
    if large:
        return Check(
            name="large-tables",
            status="warn",
            message=f"large tables touched: {', '.join(large)}; schedule a maintenance window "
            "and expect long index builds",
        )
    return Check(
        name="large-tables",
        status="ok",
        message=f"no touched table above {result.large_table_rows:,} estimated rows; database "
        f"size {result.database_size_bytes:,} bytes",
    )


def _estimate(
    conn: psycopg.Connection, idx: IndexDef, tables: Resolved, sample: bool
) -> IndexEstimate:
    est = IndexEstimate(
        name=idx.name,
        schema_name=idx.schema or "",
        table=idx.table,
        method=idx.method,
        columns=list(idx.referenced_columns),
        unique=idx.unique,
        partial=idx.partial,
        concurrently=idx.concurrent,
    )
    facts = _facts_for(tables, idx)
    if facts is None:
        est.estimate_basis = "the table is created by the pending SQL: empty, nothing to build"
        return est
    est.schema_name = facts.schema
    est.estimated_rows = _indexed_rows(conn, facts, idx)
    built = _sample(conn, facts, idx) if sample and facts.rows > 0 else None
    if built is not None and built.rows > 0:
        size, seconds = estimates.scale_sample(built, facts.rows, facts.size_bytes, idx.concurrent)
        est.estimate_basis = (
            f"built the same index on a {built.rows:,}-row sample in {built.seconds:.3f}s "
            f"({built.size_bytes:,} bytes), scaled to {facts.rows:,} rows (size linear, time "
            "n log n) plus one heap read"
        )
    else:
        width = table_stats.key_width(conn, facts, idx)
        pages = facts.size_bytes // estimates.PAGE
        size, basis = estimates.index_size_bytes(idx.method, est.estimated_rows, width, pages)
        seconds = estimates.default_build_seconds(facts.rows, facts.size_bytes, idx.concurrent)
        est.estimate_basis = f"{basis}; key width {width} B; time at the default rate (no sample)"
    est.estimated_size_bytes, est.estimated_build_seconds = size, round(seconds, 3)
    return est


def _indexed_rows(conn: psycopg.Connection, facts: table_stats.TableFacts, idx: IndexDef) -> int:
    if not idx.partial:
        return facts.rows
    try:
        return table_stats.predicate_rows(conn, facts, idx)
    except psycopg.Error:
        return facts.rows  # no SELECT privilege to plan the predicate: an upper bound


def _sample(
    conn: psycopg.Connection, facts: table_stats.TableFacts, idx: IndexDef
) -> estimates.SampleBuild | None:
    try:
        return table_stats.sample_build(conn, facts, idx)
    except psycopg.Error:
        return None  # e.g. no TEMP privilege: the formula and the default rate are used


def _estimate_check(result: PreflightResult) -> Check:
    return Check(
        name="index-estimates",
        status="ok",
        message=f"{len(result.new_indexes)} new index(es): about "
        f"{result.estimated_disk_bytes:,} bytes of disk and "
        f"{result.estimated_build_seconds:.1f}s to build (see each index's basis); make sure the "
        "volume has that much free space plus room for the sort's temporary files",
    )


def _unique_checks(
    conn: psycopg.Connection,
    indexes: Sequence[IndexDef],
    found: Sequence[IndexEstimate],
    tables: Resolved,
    options: PreflightOptions,
) -> list[Check]:
    checks: list[Check] = []
    for idx, est in zip(indexes, found, strict=True):
        facts = _facts_for(tables, idx)
        if not idx.unique or facts is None:
            continue
        started = time.monotonic()
        dup = table_stats.has_duplicates(conn, facts, idx, options.duplicate_check_timeout_ms)
        est.unique_duplicates_found = dup
        checks.append(_unique_check(idx, dup, time.monotonic() - started, options))
    return checks


def _unique_check(idx: IndexDef, dup: bool | None, took: float, options: PreflightOptions) -> Check:
    name = f"unique-duplicates:{idx.name}"
    if dup is None:
        return Check(
            name=name,
            status="warn",
            message=f"the duplicate check of {idx.name} did not finish (timeout of "
            f"{options.duplicate_check_timeout_ms} ms, or no SELECT privilege); run it off-peak "
            "with a higher --duplicate-timeout-ms, as a role that may read the table",
        )
    if dup:
        return Check(
            name=name,
            status="fail",
            message=f"{idx.table} has duplicate values in ({', '.join(idx.key_sql)}): the UNIQUE "
            f"build of {idx.name} would fail (leaving an INVALID index if CONCURRENTLY); remove "
            "the duplicates first",
        )
    return Check(name=name, status="ok", message=f"no duplicates ({took:.2f}s)")


def _hot_checks(
    conn: psycopg.Connection,
    indexes: Sequence[IndexDef],
    found: Sequence[IndexEstimate],
    tables: Resolved,
) -> list[Check]:
    checks: list[Check] = []
    updated_cache: dict[int, set[str] | None] = {}
    for idx, est in zip(indexes, found, strict=True):
        facts = _facts_for(tables, idx)
        if facts is None or not facts.updates:
            continue
        if facts.oid not in updated_cache:
            updated_cache[facts.oid] = hotupdates.updated_columns(conn, facts)
        check = hotupdates.hot_check(conn, facts, idx, est, updated_cache[facts.oid])
        checks.append(check)
    return checks


def _blocker_check(result: PreflightResult, indexes: Sequence[IndexDef]) -> Check:
    if not result.blockers:
        return Check(name="long-transactions", status="ok", message="no long or idle transactions")
    pids = ", ".join(str(b.pid) for b in result.blockers)
    hold = (
        "would hold the CONCURRENTLY builds in 'waiting for old snapshots'"
        if any(i.concurrent for i in indexes)
        else "may hold locks the migration needs"
    )
    return Check(
        name="long-transactions",
        status="warn",
        message=f"sessions {pids} have transactions open; they {hold}. Ask their owners to "
        "commit, or end them with SELECT pg_terminate_backend(pid)",
    )
