"""How a step's result is printed: readable text for a person (or a Job's log), or JSON.

The JSON form (``--output json``) is the result model itself, as the status holds it; the text is
the short summary a person reads: here for the preflight, backup, verify and rollback results and
the lint report (``migration_text`` draws the plan, the apply and the history).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from dbmigrate.api.base import ApiModel
from dbmigrate.api.evidence import (
    BackupEvidence,
    PreflightResult,
    ProbeResult,
    RollbackRecord,
    VerificationResult,
)

if TYPE_CHECKING:
    from dbmigrate.api.lint import LintReport
    from dbmigrate.runner.context import StepContext

MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1048576:.1f} MiB"


def preflight_text(r: PreflightResult) -> list[str]:
    lines = [
        f"preflight {'PASSED' if r.passed else 'FAILED'}: role {r.role}, PostgreSQL "
        f"{r.server_version}, database {_mib(r.database_size_bytes)}, pending versions "
        f"{', '.join(r.pending_versions) or 'none'}"
    ]
    lines += [f"  [{MARK[c.status]}] {c.name}: {c.message}" for c in r.checks]
    for t in r.tables:
        big = " LARGE" if t.large else ""
        lines.append(
            f"  table {t.schema_name}.{t.name}: ~{t.estimated_rows:,} rows "
            f"({t.row_estimate_source}), {_mib(t.size_bytes)}{big}"
            + ("" if t.exists else " (created by the SQL)")
        )
    for i in r.new_indexes:
        lines.append(
            f"  index {i.name} on {i.table}: ~{_mib(i.estimated_size_bytes)}, "
            f"~{i.estimated_build_seconds:.1f}s to build ({i.estimate_basis})"
        )
    lines += [f"  blocker pid {b.pid} ({b.state}): {b.reason}" for b in r.blockers]
    return lines


def backup_text(e: BackupEvidence) -> list[str]:
    lines = [
        f"backup {e.path}: {e.format}, {_mib(e.size_bytes)}, {e.duration_seconds:.2f}s, "
        f"{e.restore_list_entries} entries read back by pg_restore {e.pg_restore_version}",
        f"  sha256 {e.sha256}; pg_dump {e.pg_dump_version}, server {e.server_version}",
    ]
    if e.retention:
        lines.append(
            f"  retention keep {e.retention.keep}: deleted {len(e.retention.deleted)}, "
            f"protected {', '.join(e.retention.protected) or 'none'}"
        )
    return lines


def _probe_line(p: ProbeResult) -> str:
    cost = f"cost {p.estimated_cost}" if p.estimated_cost is not None else ""
    before = f" (before: {p.baseline_estimated_cost})" if p.baseline_estimated_cost else ""
    ms = f", {p.execution_ms:.2f} ms" if p.execution_ms is not None else ""
    return f"  [{'ok  ' if p.passed else 'FAIL'}] probe {p.name}: {p.message}; {cost}{before}{ms}"


def verify_text(r: VerificationResult) -> list[str]:
    lines = [f"verification {'PASSED' if r.passed else 'FAILED'}: {r.message}"]
    for i in r.indexes:
        size = f", {_mib(i.size_bytes)}" if i.size_bytes is not None else ""
        lines.append(f"  [{'ok  ' if i.passed else 'FAIL'}] index {i.name}: {i.message}{size}")
    lines += [_probe_line(p) for p in r.probes]
    if r.analyzed_tables:
        lines.append(f"  analysed: {', '.join(r.analyzed_tables)}")
    lines.append(
        f"  database size: before {_mib(r.database_size_before)}, after "
        f"{_mib(r.database_size_after)}"
    )
    return lines


def rollback_text(r: RollbackRecord) -> list[str]:
    lines = [f"rollback ({r.strategy}) {'VERIFIED' if r.verified else 'NOT VERIFIED'}: {r.message}"]
    lines += [
        f"  {'dropped' if d.existed else 'absent '} {d.kind} {d.schema_name}.{d.name}"
        for d in r.dropped_objects
    ]
    lines.append(f"  took {r.duration_seconds:.2f}s; database {r.target_database}")
    return lines


def render(model: ApiModel) -> str:
    """The text summary of any of the four results."""
    if isinstance(model, PreflightResult):
        return "\n".join(preflight_text(model))
    if isinstance(model, BackupEvidence):
        return "\n".join(backup_text(model))
    if isinstance(model, VerificationResult):
        return "\n".join(verify_text(model))
    if isinstance(model, RollbackRecord):
        return "\n".join(rollback_text(model))
    return str(model.to_wire())


def lint_text(report: LintReport) -> list[str]:
    """The lint verdict and each finding that is not waived."""
    verdict = "passed" if report.passed else "REFUSED"
    lines = [
        f"lint ({report.policy}): {report.error_count} error(s), {report.warning_count} "
        f"warning(s), {report.suppressed_count} suppressed; {verdict}"
    ]
    for f in report.findings:
        if not f.suppressed:
            lines.append(f"  {f.file}:{f.line}:{f.column} {f.severity} {f.rule}: {f.message}")
    return lines


def print_json(data: object) -> None:
    """One JSON document on stdout."""
    print(json.dumps(data, indent=2, default=str), flush=True)


def finish(ctx: StepContext, model: ApiModel) -> None:
    """Print a step's result as ``--output`` asks: the model as JSON, or its text summary."""
    if ctx.args.output == "json":
        print_json(model.to_wire())
    else:
        print(render(model), flush=True)
