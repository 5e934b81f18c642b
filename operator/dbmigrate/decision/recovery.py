"""The emergency rollback after a failed apply or verify, and how such a run ends.

Order of a rollback: scale the workloads listed in spec.rollback.scaleDown to zero (the actuator
records their replicas in status.scaledWorkloads first, see ``model``), wait until none of their
pods is left (terminating ones included: an application still shutting down may still write), run
the rollback Job
(spec.rollback.strategy: drop what this run created, or restore the backup; it verifies the result
itself), scale the workloads back to the recorded replicas, and end in RolledBack with the cause
(ApplyFailed, VerificationFailed, ...) kept as the Stalled reason and in the Migrated/Verified
condition. A rollback that fails leaves the workloads scaled down on purpose: the database is in
a state nobody verified, and the status says how to bring them back by hand. With strategy None
nothing is rolled back and the run ends Failed, saying so.
"""

from __future__ import annotations

from dataclasses import replace

from dbmigrate.api.conditions import MIGRATED, ROLLED_BACK, VERIFIED, ConditionType, Reason
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseMigrationStatus, Step
from dbmigrate.api.stepnames import STEP_APPLY, STEP_ROLLBACK
from dbmigrate.decision.failure_text import step_words
from dbmigrate.decision.model import JobObservation
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition
from dbmigrate.decision.transitions import (
    cause_of_failure,
    failed,
    missing_reports,
    not_reported,
    running,
    start_step,
)

SCALE_REQUEUE = 2.0
# the reason of RolledBack=True, by status.rollback.strategy
ROLLED_BACK_BY: dict[str, Reason] = {
    "dropCreatedObjects": Reason.DROPPED_CREATED_OBJECTS,
    "restoreBackup": Reason.RESTORED_BACKUP,
}


def step_failure(step: Step, reason: Reason, message: str) -> StepCondition:
    """The Migrated or Verified condition saying why the step failed."""
    type_: ConditionType = MIGRATED if step == STEP_APPLY else VERIFIED
    return StepCondition(type=type_, status="False", reason=reason, message=message)


def begin_rollback(ctx: Ctx, step: Step, reason: Reason, message: str) -> Outcome:
    """The apply or verify step failed: roll back as the spec says (or say nothing was)."""
    condition = step_failure(step, reason, message)
    if ctx.observed.spec.rollback.strategy == "None":
        backup = ctx.base.backup
        kept = f"; the backup {backup.path} is kept" if backup is not None else ""
        text = (
            f"{message}. rollback.strategy is None, so nothing was rolled back: the database is "
            f"as the failed {step} step left it{kept}. Check status.apply and the history table"
        )
        return failed(ctx, step, reason, text, conditions=(condition,))
    outcome = rolling_back(ctx.with_failure(step)).with_conditions(condition)
    return replace(
        outcome,
        message=f"{message}; {outcome.message}",
        updates={**outcome.updates, "failed_step": step},
        warning=True,
    )


def _unrecorded(ctx: Ctx) -> list[str]:
    recorded = {(w.kind, w.name) for w in ctx.base.scaled_workloads}
    return [
        f"{ref.kind}/{ref.name}"
        for ref in ctx.observed.spec.rollback.scale_down
        if (ref.kind, ref.name) not in recorded
    ]


def needs_workload_pods(spec: DatabaseMigrationSpec, status: DatabaseMigrationStatus) -> bool:
    """Whether decide needs ``Observed.workload_pods``: a rollback that scales workloads down
    and has not started its Job yet (afterwards nobody waits for the pods)."""
    if status.phase != "RollingBack" or not spec.rollback.scale_down:
        return False
    run = status.observed_generation
    return not any(j.step == STEP_ROLLBACK and j.generation == run for j in status.jobs)


def _pods_left(ctx: Ctx) -> str:
    """The scaled-down workloads whose pods have not all ended yet, with (some of) their pods."""
    parts = []
    for workload, pods in sorted(ctx.observed.workload_pods.items()):
        if pods:
            shown = ", ".join(pods[:5]) + (f" and {len(pods) - 5} more" if len(pods) > 5 else "")
            parts.append(f"{workload} ({len(pods)} pod{'s' if len(pods) > 1 else ''}: {shown})")
    return "; ".join(parts)


def rolling_back(ctx: Ctx) -> Outcome:
    """The RollingBack phase: scale down, run the rollback Job, scale back up, finish."""
    refs = tuple(ctx.observed.spec.rollback.scale_down)
    job = ctx.job(STEP_ROLLBACK)
    if job is None:
        waiting = _unrecorded(ctx)
        if waiting:
            message = f"scaling down {', '.join(waiting)} before the rollback"
            return Outcome.working(
                phase="RollingBack", message=message, scale_down=refs,
                requeue_after=SCALE_REQUEUE, warning=True,
            )  # fmt: skip
        left = _pods_left(ctx)
        if left:
            message = (
                f"waiting for the application to stop before the rollback: {left}. The workloads "
                "are scaled to 0; the rollback starts once their pods are gone (a pod stuck "
                "terminating on a lost node needs kubectl delete pod --force)"
            )
            return Outcome.working(
                phase="RollingBack", message=message, scale_down=refs,
                requeue_after=SCALE_REQUEUE, warning=True,
            )  # fmt: skip
        impossible = _cannot_roll_back(ctx)
        if impossible is not None:
            return impossible
        strategy = ctx.observed.spec.rollback.strategy
        return start_step(ctx, STEP_ROLLBACK, f"rolling back ({strategy})", scale_down=refs)
    if job.state == "Running":
        return running(ctx, STEP_ROLLBACK, job)
    return _rollback_finished(ctx, job)


def _cannot_roll_back(ctx: Ctx) -> Outcome | None:
    """The spec changed under a rollback so that no rollback Job can be built (fail closed)."""
    strategy = ctx.observed.spec.rollback.strategy
    if strategy == "RestoreBackup" and ctx.base.backup is None:
        why = "rollback.strategy is RestoreBackup but this run recorded no backup to restore"
    elif strategy == "None":
        why = "rollback.strategy was changed to None while the rollback was starting"
    else:
        return None
    reason, cause = cause_of_failure(ctx)
    message = (
        f"cannot roll back after {reason} ({cause}): {why}. Check the database: dbmigrate "
        f"history lists each version's state.{_scaled_down(ctx)} Then fix the migration and "
        "apply a new generation"
    )
    condition = StepCondition(
        type=ROLLED_BACK, status="False", reason=Reason.ROLLBACK_IMPOSSIBLE, message=message
    )
    return failed(ctx, STEP_ROLLBACK, Reason.ROLLBACK_IMPOSSIBLE, message, conditions=(condition,))


def _rollback_finished(ctx: Ctx, job: JobObservation) -> Outcome:
    record = ctx.base.rollback
    if job.state == "Succeeded" and record is None:
        missing = missing_reports(ctx, STEP_ROLLBACK)
        return not_reported(ctx, STEP_ROLLBACK, job, missing)
    if job.state == "Failed" or record is None or not record.verified:
        return _rollback_failed(ctx, job)
    done = StepCondition(
        type=ROLLED_BACK,
        status="True",
        reason=ROLLED_BACK_BY[record.strategy],
        message=record.message,
    )
    unrestored = tuple(w for w in ctx.base.scaled_workloads if not w.restored)
    if unrestored:
        names = ", ".join(f"{w.kind}/{w.name} to {w.replicas}" for w in unrestored)
        return Outcome.working(
            phase="RollingBack", message=f"rolled back; scaling back {names}",
            conditions=(done,), scale_up=unrestored, requeue_after=SCALE_REQUEUE,
        )  # fmt: skip
    reason, cause = cause_of_failure(ctx)
    message = f"rolled back after {reason}: {cause}. {record.message}"
    step = ctx.base.failed_step or STEP_APPLY
    return failed(ctx, step, reason, message, phase="RolledBack", conditions=(done,))


def _rollback_failed(ctx: Ctx, job: JobObservation) -> Outcome:
    record = ctx.base.rollback
    detail = record.message if record is not None else step_words(job) or job.message
    detail = detail or "no details reported"
    backup = ctx.base.backup
    kept = f"; the backup {backup.path} is kept" if backup is not None else ""
    reason, cause = cause_of_failure(ctx)
    message = (
        f"the rollback Job {job.name} did not restore a verified state after {reason} "
        f"({cause}): {detail}. Check the database: dbmigrate history lists each version's "
        f"state; remove what stopped the rollback{kept}.{_scaled_down(ctx)} Then fix the "
        "migration and apply a new generation"
    )
    condition = StepCondition(
        type=ROLLED_BACK, status="False", reason=Reason.ROLLBACK_FAILED, message=message
    )
    return failed(ctx, STEP_ROLLBACK, Reason.ROLLBACK_FAILED, message, conditions=(condition,))


def _scaled_down(ctx: Ctx) -> str:
    """The workloads a failed rollback leaves scaled down, with the commands that bring each
    back to its recorded replicas."""
    workloads = ctx.base.scaled_workloads
    if not workloads:
        return ""
    down = ", ".join(f"{w.kind}/{w.name} (was {w.replicas})" for w in workloads)
    namespace = ctx.observed.namespace
    commands = "; ".join(
        f"kubectl scale -n {namespace} {w.kind.lower()}/{w.name} --replicas={w.replicas}"
        for w in workloads
    )
    return (
        f" The workloads stay scaled down until the database is checked: {down}; then scale "
        f"them back: {commands}."
    )
