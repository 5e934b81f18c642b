"""The five composite step commands a Job runs: plan, backup, apply, verify, rollback.

Each calls the engine, prints a readable summary to the Job's log and reports its status keys:
``plan`` reports ``database`` (the identity the operator compares across resources), ``lint``,
``preflight`` and ``plan``; ``backup`` reports ``backup``; ``apply`` reports live ``progress`` and
``apply``; ``verify`` reports ``verification``; ``rollback`` reports ``rollback``. Verify and
rollback read the resource's status for context (the versions this run applied, the preflight's
probe baseline), so they check and undo exactly this run's work.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import psycopg

from dbmigrate.api.base import ApiModel
from dbmigrate.api.durations import duration_milliseconds
from dbmigrate.api.evidence import ProbeResult, RollbackRecord
from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.labels import PROBES_ENV
from dbmigrate.api.lint import LintReport
from dbmigrate.api.plan import ApplyProgress
from dbmigrate.api.status import DatabaseIdentity
from dbmigrate.engine import backup, history, lint, planning, preflight, probes, rollback, verify
from dbmigrate.engine.apply import ApplySettings, apply_migrations, made_moot_by_rewrite
from dbmigrate.engine.connect import connect
from dbmigrate.engine.errors import exit_code_for
from dbmigrate.engine.pgtools import StepError
from dbmigrate.engine.sources import Migration, MigrationSet, load_directory
from dbmigrate.runner import evidence_text as step_output
from dbmigrate.runner.engine_text import apply_text, plan_text
from dbmigrate.runner.job import StepContext, say

IDENTITY_SQL = """
SELECT current_database(), host(inet_server_addr()), inet_server_port(),
       current_setting('server_version')
"""


def _label(conn: psycopg.Connection) -> str:
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


def database_identity(conn: psycopg.Connection) -> DatabaseIdentity:
    """The server's system identifier and the database, compared across resources."""
    row = conn.execute(IDENTITY_SQL).fetchone()
    assert row is not None
    dbname, address, port, version = row
    try:
        ident = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
        system_id = str(ident[0]) if ident else ""
    except psycopg.errors.InsufficientPrivilege:
        system_id = ""
    if not system_id:  # without EXECUTE on pg_control_system: the address stands in for it
        system_id = f"addr:{address or conn.info.host}:{port or conn.info.port}"
    return DatabaseIdentity(
        system_identifier=system_id,
        database=str(dbname),
        server_address=address,
        server_port=port,
        server_version=str(version),
    )


def _probes() -> list[probes.Probe]:
    raw = os.environ.get(PROBES_ENV) or "[]"
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise StepError(f"env {PROBES_ENV} is not JSON: {exc}") from exc
    return [probes.Probe(e["name"], e["sql"], e["expectIndex"]) for e in entries]


def _lint(pending: list[Migration], policy: Any, auto_concurrently: bool) -> LintReport:
    report = lint.lint_migrations(pending, policy)
    if not auto_concurrently:
        return report
    kept = [f for f in report.findings if not made_moot_by_rewrite(f)]
    return lint.build_report(kept, policy, report.files)


def _lint_lines(report: LintReport) -> list[str]:
    verdict = "passed" if report.passed else "REFUSED"
    lines = [
        f"lint ({report.policy}): {report.error_count} error(s), {report.warning_count} "
        f"warning(s), {report.suppressed_count} suppressed; {verdict}"
    ]
    for f in report.findings:
        if not f.suppressed:
            lines.append(f"  {f.file}:{f.line}:{f.column} {f.severity} {f.rule}: {f.message}")
    return lines


def job_plan(ctx: StepContext) -> int:
    """Plan, lint and preflight; report database, lint, preflight and plan."""
    args = ctx.args
    migration_set: MigrationSet = load_directory(args.migrations)
    options = preflight.PreflightOptions(large_table_rows=args.large_table_rows, probes=_probes())
    with connect(ctx.conninfo, "plan", ctx.run_id) as conn:
        identity = database_identity(conn)
        plan, _ = planning.plan_on(conn, migration_set, args.target_version, _label(conn))
        pending = [m for m in migration_set if m.version in {p.version for p in plan.pending}]
        report = _lint(pending, args.lint_policy, args.auto_concurrently)
        checks = preflight.run_preflight(conn, pending, options)
    lint_part: dict[str, ApiModel] = {"lint": report} if args.lint_policy != "off" else {}
    ctx.report_all({"database": identity, **lint_part, "preflight": checks, "plan": plan})
    say(f"database {identity.database} (system {identity.system_identifier})")
    for line in [*plan_text(plan), *_lint_lines(report), step_output.render(checks)]:
        say(line)
    ok = not plan.drift_errors and report.passed and checks.passed
    return EXIT_OK if ok else EXIT_FAILED


def job_backup(ctx: StepContext) -> int:
    """pg_dump into the resource's folder on the backup volume; report backup."""
    args = ctx.args
    folder = Path(args.backup_dir)
    mount = folder.parent.parent  # /backups/NAMESPACE/NAME: the volume is /backups
    if not mount.is_dir():
        raise StepError(f"backup volume {mount} is not mounted; check spec.backup.pvcName")
    folder.mkdir(parents=True, exist_ok=True)
    target = ctx.resource
    options = backup.BackupOptions(
        folder=str(folder),
        identity=f"{target[0]}/{target[1]}" if target else args.backup_name,
        format=args.backup_format,
        jobs=args.backup_jobs,
        keep=args.keep,
        pg_bin=args.pg_bin,
    )
    evidence = backup.take_backup(ctx.conninfo, options)
    ctx.report("backup", evidence)
    say(step_output.render(evidence))
    return EXIT_OK if evidence.verified else EXIT_FAILED


def job_apply(ctx: StepContext) -> int:
    """Apply the approved plan; report progress (throttled) and apply."""
    args = ctx.args
    settings = ApplySettings(
        target=args.target_version,
        lock_timeout_ms=duration_milliseconds(args.lock_timeout),
        statement_timeout_ms=duration_milliseconds(args.statement_timeout),
        max_retries=args.lock_retries,
        retry_backoff_seconds=duration_milliseconds(args.retry_backoff) / 1000,
        auto_concurrently=args.auto_concurrently,
        lint_policy=args.lint_policy,
        expected_plan_hash=args.plan_hash,
    )
    last_line = [0.0]

    def on_progress(progress: ApplyProgress) -> None:
        ctx.progress("progress", progress)
        if time.monotonic() - last_line[0] >= 5:
            last_line[0] = time.monotonic()
            done = f" {progress.percent:.0f}%" if progress.percent is not None else ""
            say(
                f"  {progress.version}_{progress.name} statement {progress.statement_index}/"
                f"{progress.statements_total}{done} {progress.phase or ''}".rstrip()
            )

    result = apply_migrations(
        ctx.conninfo, load_directory(args.migrations), settings, ctx.run_id, on_progress
    )
    ctx.report("apply", result)
    for line in apply_text(result):
        say(line)
    return exit_code_for(result.error_code) if result.status == "failed" else EXIT_OK


def _run_versions(status: dict[str, Any], conn: psycopg.Connection, run_id: str) -> list[int]:
    """The versions this run applied: from status.apply, else the history rows it wrote."""
    records = (status.get("apply") or {}).get("versions") or []
    versions = [int(r["version"]) for r in records if r.get("status") == "applied"]
    if versions:
        return versions
    return [r.version for r in history.read_history(conn) if r.applied_by == run_id]


def job_verify(ctx: StepContext) -> int:
    """Verify this run's versions against the catalog and the probes; report verification."""
    args = ctx.args
    migration_set = load_directory(args.migrations).up_to(args.target_version)
    status = ctx.resource_status()
    checks = status.get("preflight") or {}
    baseline = [ProbeResult.model_validate(p) for p in checks.get("probeBaseline") or []]
    with connect(ctx.conninfo, "verify", ctx.run_id) as conn:
        timeout = f"{duration_milliseconds(args.statement_timeout)}ms"
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout,))
        wanted = set(_run_versions(status, conn, ctx.run_id))
        selected = [m for m in migration_set if m.version in wanted]
        result = verify.verify(
            conn,
            selected,
            _probes(),
            args.analyze,
            args.explain_analyze,
            baseline,
            checks.get("databaseSizeBytes"),
        )
    ctx.report("verification", result)
    say(step_output.render(result))
    return EXIT_OK if result.passed else EXIT_FAILED


def job_rollback(ctx: StepContext) -> int:
    """Undo exactly this run's versions; report rollback."""
    args = ctx.args
    strategy: rollback.Strategy = (
        "restoreBackup" if args.strategy == "RestoreBackup" else "dropCreatedObjects"
    )
    status = ctx.resource_status()
    with connect(ctx.conninfo, "rollback", ctx.run_id) as conn:
        rows = history.read_history(conn) if history.history_exists(conn) else []
        versions = [
            r.version
            for r in rows
            if r.applied_by == ctx.run_id and r.status in rollback.ROLLABLE_STATUSES
        ]
        dbname = str(conn.info.dbname)
    if not versions:
        record = _nothing_to_roll_back(strategy, dbname)
    else:
        record = rollback.rollback(
            ctx.conninfo,
            strategy,
            run_id=ctx.run_id,
            versions=versions,
            backup_path=args.backup_path,
            jobs=args.restore_jobs,
            pg_bin=args.pg_bin,
            expected_sha256=(status.get("backup") or {}).get("sha256"),
            lock_timeout=f"{duration_milliseconds(args.lock_timeout)}ms",
        )
    ctx.report("rollback", record)
    say(step_output.render(record))
    return EXIT_OK if record.verified else EXIT_FAILED


def _nothing_to_roll_back(strategy: rollback.Strategy, dbname: str) -> RollbackRecord:
    return RollbackRecord(
        strategy=strategy,
        target_database=dbname,
        duration_seconds=0.0,
        verified=True,
        message="nothing to roll back: this run applied no version (the history table has no "
        "row written by it)",
    )
