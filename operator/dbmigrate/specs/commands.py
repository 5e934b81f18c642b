"""The command line of each step Job: the contract between the operator and ``dbmigrate <step>``.

Every step Job runs ``dbmigrate <step> --report-to NAMESPACE/NAME --run-id RUN_ID [--migrations
DIR] STEP-OPTIONS``: the same command a person runs by hand (``dbmigrate.runner.<step>``), plus
``--report-to`` (the resource whose status receives the step's keys, ``api.stepnames.REPORTS``,
and whose status gives the step its context: this run's versions, the probe baseline, the
backup's sha256) and ``--run-id`` (this run's identity: history rows, what verify checks and
rollback undoes). The step connects with ``DATABASE_URL`` when set, else with an empty conninfo
so that libpq reads the Job's ``PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSSLMODE`` (from the
Secret). No secret is ever on the command line.

COMMON (every step)::

    --report-to NAMESPACE/NAME   the resource whose status receives the reports
    --run-id RUN_ID              identity of this run (history table, backup name)
    --migrations DIR             plan, apply, verify: /migrations (ConfigMap volume) or
                                 spec.source.image.path

Per step (values from the spec unless noted; ``[...]`` only when set):

=========  ==================================================================================
plan       --preflight  --lint-policy strict|warn|off  --auto-concurrently |
           --no-auto-concurrently (lint as the apply will run)  --large-table-rows N
           [--target V]; env DBMIGRATE_PROBES (probe baseline). Reports: plan, lint (unless
           policy off), preflight, and the database identity (read whenever it reports).
backup     --dir /backups/NAMESPACE/NAME  --create-dir (on the volume mounted at /backups)
           --format custom|directory  --jobs N  --keep N (PVC spec.backup.pvcName mounted at
           /backups). Reports: backup.
apply      --plan-hash HASH (status.plan's hash: refuse to apply a different migration set)
           --lock-timeout D  --statement-timeout D  --lock-retries N  --retry-backoff D
           --auto-concurrently | --no-auto-concurrently  --lint-policy warn (the plan step
           gated on the spec's policy)  [--target V]. Reports: apply, progress.
verify     --analyze | --no-analyze  [--explain-analyze]  --statement-timeout D  [--target V];
           env DBMIGRATE_PROBES. Reports: verification.
rollback   --strategy DropCreatedObjects|RestoreBackup  --lock-timeout D; with RestoreBackup
           also --backup P (status.backup.path, PVC mounted read-only at /backups) and
           --jobs N. Reports: rollback.
watch      --duration D  --interval D  and each of spec.watch.thresholds as its flag
           (--min-calls N --ratio X --min-delta-ms MS --min-share-percent P
           --min-extra-ms-per-hour MS --min-baseline-seconds S --top-n N --statement-timeout
           Nms --probe-runs N); env DBMIGRATE_PROBES. No --baseline: the run's own,
           status.watch.runStart and .beforeApply. Reports: watch (every sample, then the
           verdict; exit 0 with any verdict).
=========  ==================================================================================

With ``spec.watch`` set, plan and apply also get ``--watch-baseline`` and env DBMIGRATE_WATCH
(spec.watch as JSON: how big a sample may be, ``waitForBaseline``):
the plan samples the counters at the start of the run (``status.watch.runStart``), the apply
just before its first statement (``status.watch.beforeApply``; with ``waitForBaseline`` it first
waits, at most ``thresholds.minBaselineSeconds``, for the window to be long enough), and the
apply gets DBMIGRATE_PROBES too, to time the probes before it changes anything.

``D`` is a Go-like duration exactly as written in the spec (the step parses it with
``dbmigrate.api.durations``; it also takes plain milliseconds, and 0 turns a timeout off).
``DBMIGRATE_PROBES`` is the JSON list of ``spec.verification.probes`` in wire form:
``[{"name": ..., "sql": ..., "expectIndex": ...}]``. Every step ends by writing
``status.stepExit`` (its exit code). Exit codes (``api.exitcodes``): 0 reported, 1 the step ran
and found a failure, 2 bad input, 3 unavailable (may heal). The Job fails at once on 1 and 2
(podFailurePolicy) and retries 3 up to ``spec.jobs.backoffLimit``.

``dbmigrate job <step>``, the command line of earlier versions, stays accepted as an alias with
its old defaults and spellings (``dbmigrate.cli.job``).
"""

from __future__ import annotations

import json

from dbmigrate.api.labels import BACKUP_MOUNT, MIGRATIONS_MOUNT
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.api.stepnames import (
    STEP_APPLY,
    STEP_BACKUP,
    STEP_PLAN,
    STEP_ROLLBACK,
    STEP_VERIFY,
    STEP_WATCH,
    STEPS,
)


def migrations_dir(spec: DatabaseMigrationSpec) -> str:
    """Where the step finds the migration files: the image folder or the mounted ConfigMap."""
    if spec.source.image is not None:
        return spec.source.image.path
    return MIGRATIONS_MOUNT


def backup_dir(namespace: str, resource: str) -> str:
    """The folder of this resource's backups on the PVC (retention counts per resource)."""
    return f"{BACKUP_MOUNT}/{namespace}/{resource}"


def probes_json(spec: DatabaseMigrationSpec) -> str:
    """spec.verification.probes as the JSON the plan and verify steps read from the env."""
    probes = [probe.to_wire() for probe in spec.verification.probes]
    return json.dumps(probes, sort_keys=True, separators=(",", ":"))


def uses_probes(step: str, spec: DatabaseMigrationSpec | None = None) -> bool:
    """Whether the step reads DBMIGRATE_PROBES (the apply and the watch time them when the
    performance watch is on)."""
    if spec is not None and uses_watch(step, spec):
        return True
    return step in (STEP_PLAN, STEP_VERIFY)


def uses_watch(step: str, spec: DatabaseMigrationSpec) -> bool:
    """Whether the step samples for the performance watch."""
    return spec.watch is not None and step in (STEP_PLAN, STEP_APPLY, STEP_WATCH)


def takes_baseline(step: str, spec: DatabaseMigrationSpec) -> bool:
    """Whether the step samples the watch's before window (``--watch-baseline``, env
    DBMIGRATE_WATCH): the plan and the apply."""
    return spec.watch is not None and step in (STEP_PLAN, STEP_APPLY)


def watch_json(spec: DatabaseMigrationSpec) -> str:
    """spec.watch as the JSON the plan, apply and watch steps read from the env."""
    if spec.watch is None:
        raise ValueError("spec.watch is not set: there is no performance watch")
    return json.dumps(spec.watch.to_wire(), sort_keys=True, separators=(",", ":"))


def reads_migrations(step: str) -> bool:
    """Whether the step reads the migration files (backup and rollback do not)."""
    return step in (STEP_PLAN, STEP_APPLY, STEP_VERIFY)


def mounts_backups(step: str, spec: DatabaseMigrationSpec) -> bool:
    """Whether the step needs the backup PVC: the backup itself, and a restoring rollback."""
    if spec.backup.pvc_name is None:
        return False
    if step == STEP_BACKUP:
        return spec.backup.enabled
    return step == STEP_ROLLBACK and spec.rollback.strategy == "RestoreBackup"


def step_command(
    step: str,
    *,
    resource: str,
    namespace: str,
    run_id: str,
    spec: DatabaseMigrationSpec,
    status: DatabaseMigrationStatus | None = None,
) -> list[str]:
    """The full command of the step's container: ``dbmigrate <step> ...``."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    common = ["--report-to", f"{namespace}/{resource}", "--run-id", run_id]
    if reads_migrations(step):
        common += ["--migrations", migrations_dir(spec)]
    return ["dbmigrate", step, *common, *_step_options(step, resource, namespace, spec, status)]


def _step_options(
    step: str,
    resource: str,
    namespace: str,
    spec: DatabaseMigrationSpec,
    status: DatabaseMigrationStatus | None,
) -> list[str]:
    baseline = ["--watch-baseline"] if takes_baseline(step, spec) else []
    if step == STEP_PLAN:
        return _plan_options(spec) + baseline
    if step == STEP_BACKUP:
        return _backup_options(spec, resource, namespace)
    if step == STEP_APPLY:
        return _apply_options(spec, status) + baseline
    if step == STEP_VERIFY:
        return _verify_options(spec)
    if step == STEP_WATCH:
        return _watch_options(spec)
    return _rollback_options(spec, status)


def _target(spec: DatabaseMigrationSpec) -> list[str]:
    return [] if spec.target_version is None else ["--target", str(spec.target_version)]


def _timeouts(spec: DatabaseMigrationSpec) -> list[str]:
    safety = spec.safety
    return ["--lock-timeout", safety.lock_timeout, "--statement-timeout", safety.statement_timeout]


def _concurrently(spec: DatabaseMigrationSpec) -> str:
    return "--auto-concurrently" if spec.safety.auto_concurrently else "--no-auto-concurrently"


def _plan_options(spec: DatabaseMigrationSpec) -> list[str]:
    options = ["--preflight", "--lint-policy", spec.safety.lint_policy, _concurrently(spec)]
    return [*options, "--large-table-rows", str(spec.preflight.large_table_rows), *_target(spec)]


def _backup_options(spec: DatabaseMigrationSpec, resource: str, namespace: str) -> list[str]:
    if not spec.backup.enabled or spec.backup.pvc_name is None:
        raise ValueError("a backup Job needs spec.backup.enabled and spec.backup.pvcName")
    return [
        "--dir",
        backup_dir(namespace, resource),
        "--create-dir",
        "--format",
        spec.backup.format,
        "--jobs",
        str(spec.backup.jobs),
        "--keep",
        str(spec.backup.retention),
    ]


def _apply_options(
    spec: DatabaseMigrationSpec, status: DatabaseMigrationStatus | None
) -> list[str]:
    plan_hash = plan_hash_of(status)
    if plan_hash is None:
        raise ValueError("an apply Job needs the plan hash from status.plan (run the plan first)")
    safety = spec.safety
    return [
        "--plan-hash",
        plan_hash,
        *_timeouts(spec),
        "--lock-retries",
        str(safety.lock_retries),
        "--retry-backoff",
        safety.retry_backoff,
        _concurrently(spec),
        "--lint-policy",
        "warn",  # the plan step already gated on the spec's policy: the apply only prints
        *_target(spec),
    ]


def _verify_options(spec: DatabaseMigrationSpec) -> list[str]:
    verification = spec.verification
    options = ["--analyze" if verification.analyze else "--no-analyze"]
    if verification.explain_analyze:
        options.append("--explain-analyze")
    options += ["--statement-timeout", spec.safety.statement_timeout]
    return options + _target(spec)


def _rollback_options(
    spec: DatabaseMigrationSpec, status: DatabaseMigrationStatus | None
) -> list[str]:
    strategy = spec.rollback.strategy
    if strategy == "None":
        raise ValueError("rollback.strategy is None: there is no rollback Job to build")
    options = ["--strategy", strategy, "--lock-timeout", spec.safety.lock_timeout]
    if strategy == "RestoreBackup":
        backup = status.backup if status is not None else None
        if backup is None:
            raise ValueError("a RestoreBackup rollback needs status.backup.path (no backup taken)")
        options += ["--backup", backup.path, "--jobs", str(spec.backup.jobs)]
    return options


def _watch_options(spec: DatabaseMigrationSpec) -> list[str]:
    if spec.watch is None:
        raise ValueError("a watch Job needs spec.watch")
    thresholds = spec.watch.thresholds
    options = ["--duration", spec.watch.duration, "--interval", spec.watch.interval]
    for field in type(thresholds).model_fields:
        value = getattr(thresholds, field)
        if field == "statement_timeout_ms":
            options += ["--statement-timeout", f"{value}ms"]
        else:
            options += [f"--{field.replace('_', '-')}", str(value)]
    return options


def plan_hash_of(status: DatabaseMigrationStatus | None) -> str | None:
    """The hash of the plan the plan step reported, if any."""
    if status is None or status.plan is None:
        return None
    return status.plan.plan_hash
