"""Probe queries: does the planner use the index the migration built for them?

A probe is EXPLAINed (FORMAT JSON; with ANALYZE only when asked) inside a READ ONLY transaction
with a statement_timeout, so it can neither change data nor run away. The plan tree is walked for
Index Scan, Index Only Scan and Bitmap Index Scan nodes and the indexes they name. The probe SQL
must parse as exactly one SELECT. A failure is a ProbeResult with the reason, not an exception.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pglast import ast, parse_sql
from pglast.parser import ParseError
from psycopg import sql

from dbmigrate.api.evidence import ProbeResult
from dbmigrate.engine.undo.pgtools import StepError

INDEX_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
DEFAULT_TIMEOUT_MS = 30_000


class ProbeError(StepError):
    """A probe definition is malformed (bad --probe argument or probes file)."""


@dataclass(frozen=True)
class Probe:
    """A query whose plan must use ``expect_index``."""

    name: str
    sql: str
    expect_index: str


def parse_probe_arg(text: str) -> Probe:
    """A probe from ``NAME=INDEX:SQL`` (the SQL may contain ':' and '=')."""
    name, sep, rest = text.partition("=")
    index, sep2, query = rest.partition(":")
    if not (sep and sep2 and name.strip() and index.strip() and query.strip()):
        raise ProbeError(
            f"--probe wants NAME=INDEX:SQL, e.g. recent=idx_page_views_timestamp_desc_path:"
            f"SELECT ... ; got {text!r}"
        )
    return Probe(name=name.strip(), sql=query.strip(), expect_index=index.strip())


def load_probes_file(path: str | Path) -> list[Probe]:
    """Probes from a YAML list of {name, sql, expectIndex}."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProbeError(f"cannot read probes file {path}: {exc}") from exc
    if not isinstance(data, list):
        raise ProbeError(f"{path}: expected a YAML list of {{name, sql, expectIndex}} entries")
    return [_probe_entry(path, i, entry) for i, entry in enumerate(data)]


def _probe_entry(path: str | Path, index: int, entry: object) -> Probe:
    if not isinstance(entry, Mapping):
        raise ProbeError(f"{path}: entry {index} is not a mapping of name, sql, expectIndex")
    values = {key: entry.get(key) for key in ("name", "sql", "expectIndex")}
    missing = [key for key, value in values.items() if not isinstance(value, str) or not value]
    if missing:
        raise ProbeError(f"{path}: entry {index} lacks {', '.join(missing)} (all are strings)")
    return Probe(str(values["name"]), str(values["sql"]), str(values["expectIndex"]))


def select_problem(query: str) -> str | None:
    """Why the probe SQL is not a single SELECT, or None when it is one."""
    try:
        stmts = parse_sql(query)
    except ParseError as exc:
        return f"the probe SQL does not parse: {exc}"
    if len(stmts) != 1:
        return f"the probe SQL must be exactly one statement, found {len(stmts)}"
    if not isinstance(stmts[0].stmt, ast.SelectStmt):
        return "the probe SQL must be a SELECT (it is EXPLAINed, never allowed to change data)"
    return None


def walk_plan(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan tree, depth first."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from walk_plan(child)


def summarize_plan(
    explain: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[str], float | None, float | None]:
    """(node types, index names used, total cost, execution ms) of EXPLAIN JSON output."""
    top = explain[0]
    nodes = list(walk_plan(top["Plan"]))
    types = [str(n["Node Type"]) for n in nodes]
    used: list[str] = []
    for node in nodes:
        name = node.get("Index Name")
        if node["Node Type"] in INDEX_NODES and name and name not in used:
            used.append(str(name))
    cost = top["Plan"].get("Total Cost")
    execution = top.get("Execution Time")
    return types, used, cost, execution


def explain(
    conn: psycopg.Connection, query: str, analyze: bool, timeout_ms: int
) -> list[dict[str, Any]]:
    """EXPLAIN (FORMAT JSON) in a READ ONLY transaction with a statement_timeout."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{timeout_ms}ms",))
        options = sql.SQL("FORMAT JSON, ANALYZE TRUE") if analyze else sql.SQL("FORMAT JSON")
        row = conn.execute(sql.SQL("EXPLAIN ({}) {}").format(options, sql.SQL(query))).fetchone()
    assert row is not None
    data = row[0]
    return list(data)


def run_probe(
    conn: psycopg.Connection, probe: Probe, analyze: bool, timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> ProbeResult:
    """EXPLAIN the probe and judge whether its plan uses the expected index."""
    result = ProbeResult(name=probe.name, expected_index=probe.expect_index, passed=False)
    problem = select_problem(probe.sql)
    if problem:
        result.message = problem
        return result
    try:
        plan = explain(conn, probe.sql, analyze, timeout_ms)
    except psycopg.Error as exc:
        result.message = f"EXPLAIN failed: {exc.diag.message_primary or exc}"
        return result
    types, used, cost, execution = summarize_plan(plan)
    result.node_types, result.used_indexes = types, used
    result.estimated_cost, result.execution_ms = cost, execution
    result.passed = probe.expect_index in used
    if result.passed:
        result.message = f"the plan uses {probe.expect_index}"
    else:
        found = ", ".join(used) if used else "no index"
        result.message = (
            f"the plan does not use {probe.expect_index} (it uses {found}; nodes: "
            f"{', '.join(types)}); check the query matches the index (for a partial index, "
            "its predicate) and that the table was analysed"
        )
    return result


def attach_baseline(results: Sequence[ProbeResult], baseline: Sequence[ProbeResult]) -> None:
    """Copy the before-migration figures of each probe (matched by name) into its result."""
    before = {b.name: b for b in baseline}
    for result in results:
        old = before.get(result.name)
        if old is not None:
            result.baseline_used_indexes = old.used_indexes
            result.baseline_estimated_cost = old.estimated_cost
            result.baseline_execution_ms = old.execution_ms
