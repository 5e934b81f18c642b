"""Building blocks the phase handlers share: prerequisites, starting a step, failing, reports.

A step Job is only created when its prerequisites hold: the spec passes the checks admission
could not make (``spec_checks``: the window's time zone, the probes), the Secret exists with
every key the spec names, the source ConfigMap exists, the backup PersistentVolumeClaim exists
(when a step mounts it). If one does not
hold, the run stays in its phase with Stalled=True and a message naming what is missing and how to
fix it, and is looked at again after ``STALLED_REQUEUE`` seconds: it heals by itself once the
Secret, ConfigMap or PersistentVolumeClaim appears (a bad window or probe needs a spec change,
which starts a new run).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dbmigrate.api.conditions import (
    MIGRATED,
    PERFORMANCE_VERIFIED,
    VERIFIED,
    ConditionType,
    Reason,
    find_condition,
    known_reason,
)
from dbmigrate.api.spec import WorkloadRef
from dbmigrate.api.status import Phase, Step
from dbmigrate.api.stepnames import (
    KEY_LINT,
    KEY_PROMOTION,
    LIVE_KEYS,
    REPORTS,
    STEP_APPLY,
    STEP_BACKUP,
    STEP_PLAN,
    STEP_ROLLBACK,
    STEP_VERIFY,
    STEP_WATCH,
)
from dbmigrate.decision.model import JobObservation, status_field
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition
from dbmigrate.decision.requested import requested_cause
from dbmigrate.decision.spec_checks import spec_problem
from dbmigrate.specs.commands import mounts_backups
from dbmigrate.specs.jobs import required_secret_keys

STALLED_REQUEUE = 30.0
REPORT_GRACE = timedelta(seconds=30)
REPORT_REQUEUE = 5.0
STEP_PHASES: dict[Step, Phase] = {
    STEP_PLAN: "Planning",
    STEP_BACKUP: "BackingUp",
    STEP_APPLY: "Migrating",
    STEP_VERIFY: "Verifying",
    STEP_ROLLBACK: "RollingBack",
    STEP_WATCH: "Succeeded",  # the performance watch runs after the run succeeded
}


def prerequisite_problem(ctx: Ctx, step: Step | None = None) -> tuple[Reason, str] | None:
    """(reason, message) of the first missing prerequisite of the Job of ``step`` (None: of the
    run's first Job), or None. The backup PVC is asked for before the plan, so a missing one is
    found before any Job, and for the steps that mount it; never for the apply, the verify or a
    rollback that does not restore (a PVC deleted meanwhile must not hold those up)."""
    observed, spec = ctx.observed, ctx.observed.spec
    invalid = spec_problem(spec)
    if invalid is not None:
        return invalid
    secret = spec.database.secret_ref.name
    where = f"namespace {observed.namespace}"
    if not observed.secret.exists:
        keys = ", ".join(required_secret_keys(spec))
        return Reason.SECRET_NOT_FOUND, (
            f"Secret {secret} (spec.database.secretRef.name) was not found in {where}: create it "
            f"with the keys {keys}; the migration goes on by itself once it exists"
        )
    if observed.secret.missing_keys:
        missing = ", ".join(observed.secret.missing_keys)
        return Reason.SECRET_KEY_MISSING, (
            f"Secret {secret} in {where} lacks the key(s) {missing} named in "
            "spec.database.secretRef: add them to the Secret (or fix the key names in the spec)"
        )
    staging = _staging_secret_problem(ctx)
    if staging is not None:
        return staging
    config_map = spec.source.config_map
    if config_map is not None and observed.config_map_ok is False:
        return Reason.CONFIG_MAP_NOT_FOUND, (
            f"ConfigMap {config_map.name} (spec.source.configMap.name) was not found in {where}: "
            f"create it from the migration files, e.g. kubectl create configmap {config_map.name} "
            f"-n {observed.namespace} --from-file=DIR"
        )
    claim = spec.backup.pvc_name
    mounted = step in (None, STEP_PLAN) or mounts_backups(step, spec)
    if claim is not None and mounted and observed.backup_volume_ok is False:
        return Reason.BACKUP_VOLUME_NOT_FOUND, (
            f"PersistentVolumeClaim {claim} (spec.backup.pvcName) was not found in {where}: "
            "create it (the backup is written there, a RestoreBackup rollback reads it); the "
            "migration goes on by itself once it exists"
        )
    return None


def _staging_secret_problem(ctx: Ctx) -> tuple[Reason, str] | None:
    """A Secret of spec.promotion.requireAppliedIn that is missing or lacks a key (the plan
    Job's pod could not start without it)."""
    observed = ctx.observed
    for name, seen in observed.staging_secrets.items():
        field = "spec.promotion.requireAppliedIn[].secretRef"
        if not seen.exists:
            return Reason.SECRET_NOT_FOUND, (
                f"Secret {name} ({field}) was not found in namespace {observed.namespace}: create "
                "it with a read-only connection to the staging database; the migration goes on "
                "by itself once it exists"
            )
        if seen.missing_keys:
            return Reason.SECRET_KEY_MISSING, (
                f"Secret {name} ({field}) lacks the key(s) {', '.join(seen.missing_keys)}: add "
                "them, or fix the key names in the spec"
            )
    return None


def stalled(
    ctx: Ctx, phase: Phase, reason: Reason, message: str, updates: dict[str, Any] | None = None
) -> Outcome:
    """Stay in ``phase`` with Stalled=True; look again later (it may heal)."""
    return Outcome.stalled(
        phase=phase, reason=reason, message=message, updates=updates,
        requeue_after=STALLED_REQUEUE,
    )  # fmt: skip


def start_step(
    ctx: Ctx,
    step: Step,
    message: str,
    *,
    conditions: tuple[StepCondition, ...] = (),
    scale_down: tuple[WorkloadRef, ...] = (),
    updates: dict[str, Any] | None = None,
) -> Outcome:
    """Enter the step's phase and create its Job, unless a prerequisite is missing."""
    phase, updates = STEP_PHASES[step], updates or {}
    if step == STEP_APPLY and ctx.base.plan is None:
        message = "status.plan is gone, so there is no approved plan hash to apply; nothing applied"
        return failed(ctx, STEP_APPLY, Reason.STEP_NOT_REPORTED, message, conditions=conditions)
    problem = prerequisite_problem(ctx, step)
    if problem is not None:
        reason, why = problem
        return Outcome.stalled(
            phase=phase, reason=reason, message=why, conditions=conditions, updates=updates,
            requeue_after=STALLED_REQUEUE, scale_down=scale_down,
        )  # fmt: skip
    job = ctx.job_name(step)
    return Outcome.working(
        phase=phase, message=f"{message}: Job {job}", create_job=step,
        conditions=conditions, updates=updates, scale_down=scale_down,
    )  # fmt: skip


def running(ctx: Ctx, step: Step, job: JobObservation) -> Outcome:
    """The step's Job is still running."""
    phase = STEP_PHASES[step]
    return Outcome.working(phase=phase, message=f"{step} Job {job.name} is running")


def failed(
    ctx: Ctx,
    step: Step,
    reason: Reason,
    message: str,
    *,
    phase: Phase = "Failed",
    conditions: tuple[StepCondition, ...] = (),
) -> Outcome:
    """End the run in a failed terminal phase (Failed, or RolledBack) with its cause."""
    return Outcome.failed(
        phase=phase, reason=reason, message=message, conditions=conditions,
        updates={"failed_step": step},
    )  # fmt: skip


def expected_reports(ctx: Ctx, step: Step) -> tuple[str, ...]:
    """The status keys (as on the wire) a successful step must have written: its reports but
    the live ones, lint only while the lint policy is not off, and promotion only with
    spec.promotion.requireAppliedIn."""
    spec = ctx.observed.spec
    skipped = {KEY_LINT} if spec.safety.lint_policy == "off" else set()
    if spec.promotion is None or not spec.promotion.require_applied_in:
        skipped.add(KEY_PROMOTION)
    return tuple(key for key in REPORTS[step] if key not in LIVE_KEYS and key not in skipped)


def missing_reports(ctx: Ctx, step: Step) -> list[str]:
    """The expected status keys this step has not written (yet)."""
    status = ctx.base
    return [
        key for key in expected_reports(ctx, step) if getattr(status, status_field(key)) is None
    ]


def not_reported(ctx: Ctx, step: Step, job: JobObservation, missing: list[str]) -> Outcome:
    """A Job succeeded without its report: wait a little for it, then stop (fail closed)."""
    keys = ", ".join(f"status.{key}" for key in missing)
    record = next((r for r in ctx.base.jobs if r.name == job.name), None)
    finished = job.finished_at or (record.finished_at if record else None)
    if finished is None or ctx.now - finished < REPORT_GRACE:
        phase = STEP_PHASES[step]
        message = f"{step} Job {job.name} finished; waiting for its report ({keys})"
        return Outcome.working(phase=phase, message=message, requeue_after=REPORT_REQUEUE)
    message = (
        f"the {step} Job {job.name} succeeded but did not write {keys}, so the operator cannot "
        "tell what it did and stops here. Check the Job's logs and that its service account may "
        "patch databasemigrations/status"
    )
    return failed(ctx, step, Reason.STEP_NOT_REPORTED, message)


def cause_of_failure(ctx: Ctx) -> tuple[Reason, str]:
    """(reason, message) that made the run roll back: the failed step's condition (StepFailed
    when it says nothing, or names a reason this operator does not know); RollbackRequested
    for a rollback on demand; a regression the performance watch found is
    PerformanceRegressed, with the watch's evidence."""
    asked = requested_cause(ctx.base)
    if asked is not None:
        return asked
    if ctx.base.failed_step == STEP_WATCH:
        verdict = find_condition(ctx.base.conditions, PERFORMANCE_VERIFIED)
        evidence = verdict.message if verdict is not None else "the performance watch regressed"
        return Reason.PERFORMANCE_REGRESSED, evidence
    type_: ConditionType = MIGRATED if ctx.base.failed_step == STEP_APPLY else VERIFIED
    condition = find_condition(ctx.base.conditions, type_)
    reason = None if condition is None else known_reason(condition.reason)
    if condition is None or condition.status == "True" or reason is None:
        return Reason.STEP_FAILED, f"the {ctx.base.failed_step} step failed"
    return reason, condition.message
