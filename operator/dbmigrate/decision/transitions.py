"""Building blocks the phase handlers share: prerequisites, starting a step, failing, reports.

A step Job is only created when its prerequisites hold: the Secret exists with every key the
spec names, the source ConfigMap exists, the maintenance window can be evaluated. If one does not
hold, the run stays in its phase with Stalled=True and a message naming what is missing and how to
fix it, and is looked at again after ``STALLED_REQUEUE`` seconds: it heals by itself once the
Secret or ConfigMap appears (a bad window needs a spec change, which starts a new run).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dbmigrate.api.conditions import (
    MIGRATED,
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
    LIVE_KEYS,
    REPORTS,
    STEP_APPLY,
    STEP_BACKUP,
    STEP_PLAN,
    STEP_ROLLBACK,
    STEP_VERIFY,
)
from dbmigrate.decision.gate_rules import InvalidMaintenanceWindow, validate_window
from dbmigrate.decision.model import JobObservation, status_field
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition
from dbmigrate.decision.requested import requested_cause
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
}


def prerequisite_problem(ctx: Ctx) -> tuple[Reason, str] | None:
    """(reason, message) of the first missing prerequisite of a step Job, or None."""
    observed, spec = ctx.observed, ctx.observed.spec
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
    config_map = spec.source.config_map
    if config_map is not None and observed.config_map_ok is False:
        return Reason.CONFIG_MAP_NOT_FOUND, (
            f"ConfigMap {config_map.name} (spec.source.configMap.name) was not found in {where}: "
            f"create it from the migration files, e.g. kubectl create configmap {config_map.name} "
            f"-n {observed.namespace} --from-file=DIR"
        )
    if spec.maintenance_window is not None:
        try:
            validate_window(spec.maintenance_window)
        except InvalidMaintenanceWindow as exc:
            return Reason.INVALID_MAINTENANCE_WINDOW, f"{exc}; fix spec.maintenanceWindow"
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
    problem = prerequisite_problem(ctx)
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
    the live ones, and lint only while the lint policy is not off."""
    lint_off = ctx.observed.spec.safety.lint_policy == "off"
    return tuple(
        key for key in REPORTS[step] if key not in LIVE_KEYS and not (lint_off and key == KEY_LINT)
    )


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
    for a rollback on demand."""
    asked = requested_cause(ctx.base)
    if asked is not None:
        return asked
    type_: ConditionType = MIGRATED if ctx.base.failed_step == STEP_APPLY else VERIFIED
    condition = find_condition(ctx.base.conditions, type_)
    reason = None if condition is None else known_reason(condition.reason)
    if condition is None or condition.status == "True" or reason is None:
        return Reason.STEP_FAILED, f"the {ctx.base.failed_step} step failed"
    return reason, condition.message
