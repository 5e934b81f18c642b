"""How long the probe queries take, measured the same way before and after a migration.

One EXPLAIN ANALYZE is noise on a busy server; the watch runs each probe several times (inside a
READ ONLY transaction with a statement_timeout, like ``probes``) and keeps the median. With
VERBOSE, PostgreSQL 14+ also names the query's ``Query Identifier`` when query ids are computed
(pg_stat_statements loaded), so a snapshot can keep the probe's own pg_stat_statements entry
even when it is not among the top-N by total time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbmigrate.api.watch import ProbeTimingSample
from dbmigrate.engine.after.probes import Probe, select_problem
from dbmigrate.engine.after.stat_queries import MARKER


@dataclass(frozen=True)
class TimedProbe:
    """A probe's timing sample, and its queryid when the server named one."""

    sample: ProbeTimingSample
    queryid: int | None


def _explain_analyze(conn: psycopg.Connection, query: str, timeout_ms: int) -> dict[str, Any]:
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{timeout_ms}ms",))
        statement = sql.SQL("EXPLAIN " + MARKER + " (ANALYZE TRUE, VERBOSE TRUE, FORMAT JSON) {}")
        row = conn.execute(statement.format(sql.SQL(query))).fetchone()
    assert row is not None
    return dict(row[0][0])


def time_probe(conn: psycopg.Connection, probe: Probe, runs: int, timeout_ms: int) -> TimedProbe:
    """Run ``probe`` ``runs`` times under EXPLAIN ANALYZE; the median execution time."""
    problem = select_problem(probe.sql)
    if problem:
        return TimedProbe(ProbeTimingSample(name=probe.name, message=problem), None)
    times: list[float] = []
    queryid: int | None = None
    for _ in range(runs):
        try:
            top = _explain_analyze(conn, probe.sql, timeout_ms)
        except psycopg.Error as exc:
            message = f"EXPLAIN ANALYZE failed: {exc.diag.message_primary or exc}"
            sample = ProbeTimingSample(
                name=probe.name,
                runs=len(times),
                median_ms=statistics.median(times) if times else None,
                message=message,
            )
            return TimedProbe(sample, queryid)
        times.append(float(top.get("Execution Time", 0.0)))
        if top.get("Query Identifier") is not None:
            queryid = int(top["Query Identifier"])
    sample = ProbeTimingSample(name=probe.name, runs=len(times), median_ms=statistics.median(times))
    return TimedProbe(sample, queryid)


def time_probes(
    conn: psycopg.Connection, probes: Sequence[Probe], runs: int, timeout_ms: int
) -> list[TimedProbe]:
    """Every probe timed, in order."""
    return [time_probe(conn, probe, runs, timeout_ms) for probe in probes]
