"""The gate sequence of a run, between a sound plan and its first change.

``through_gates`` asks the promotion gate (``promotion``: staging first, when spec.promotion is
set) and then the gates of ``gate_rules`` in order (approval, maintenance window, the
database lock) and turns the first closed one into its waiting phase; when all are open it starts
the first step that changes something: the backup, or the apply if the backup is done or switched
off. It runs after the plan, in every WaitingFor* phase, and again after the backup (the window
may have closed meanwhile; the run already holds its database then, so the lock is not asked).
An approval that arrives while the run waits for it first has the files read again (``replan``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dbmigrate.api.conditions import BACKED_UP, Reason
from dbmigrate.api.stepnames import STEP_PLAN
from dbmigrate.decision import promotion
from dbmigrate.decision.gate_rules import (
    InvalidMaintenanceWindow,
    evaluate_approval,
    evaluate_window,
)
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition
from dbmigrate.decision.replan import (
    approval_arrived,
    backup_current,
    plan_again,
    start_apply,
    start_backup,
)
from dbmigrate.decision.transitions import failed, stalled

LOCK_REQUEUE = 15.0


def through_gates(ctx: Ctx) -> Outcome:
    """Promotion, approval, then the maintenance window, then the database lock; then the next
    step."""
    if ctx.base.plan is None:
        message = "status.plan is gone, so the gates cannot be judged; apply a new generation"
        return failed(ctx, STEP_PLAN, Reason.STEP_NOT_REPORTED, message)
    if not promotion.applies(ctx):
        return _after_promotion(ctx)
    verdict = promotion.evaluate(ctx)
    if not verdict.passed:
        return promotion.waiting(ctx, verdict)
    outcome = _after_promotion(ctx)
    return replace(outcome, updates={"promotion_migrations": verdict.migrations, **outcome.updates})


def _after_promotion(ctx: Ctx) -> Outcome:
    """Approval, then the maintenance window, then the database lock; then the next step."""
    observed, status = ctx.observed, ctx.base
    assert status.plan is not None
    approval = evaluate_approval(
        observed.spec, status.plan.plan_hash, observed.annotations, status.approval,
        resource=observed.name, namespace=observed.namespace, now=ctx.now,
    )  # fmt: skip
    if not approval.passed:
        reason = Reason.APPROVAL_REFUSED if approval.refused else Reason.WAITING_FOR_APPROVAL
        return Outcome.waiting(
            phase="WaitingForApproval", reason=reason, message=approval.message,
            updates={"approval": approval.status}, warning=approval.refused,
        )  # fmt: skip
    if approval_arrived(ctx, approval.fresh):
        message = (
            f"{approval.message}; reading the migration files again before the backup, to check "
            "that they still hash to the approved plan"
        )
        return plan_again(ctx, message, updates={"approval": approval.status})
    try:
        window = evaluate_window(observed.spec, status.preflight, ctx.now)
    except InvalidMaintenanceWindow as exc:
        return stalled(ctx, "WaitingForWindow", Reason.INVALID_MAINTENANCE_WINDOW, str(exc),
                       {"approval": approval.status})  # fmt: skip
    gates: dict[str, Any] = {"approval": approval.status, "window": window.status}
    if not window.passed:
        return Outcome.waiting(
            phase="WaitingForWindow", reason=Reason.WAITING_FOR_WINDOW, message=window.message,
            updates=gates, requeue_after=window.requeue_after,
        )  # fmt: skip
    holder = observed.lock_holder
    if holder is not None and not backup_current(ctx):
        message = (
            f"waiting for {holder}, which is migrating the same database; this migration starts "
            "when that one ends"
        )
        gates["waiting_for"] = holder
        return Outcome.waiting(
            phase="WaitingForLock", reason=Reason.WAITING_FOR_LOCK, message=message,
            updates=gates, requeue_after=LOCK_REQUEUE,
        )  # fmt: skip
    return first_change(ctx, gates)


def first_change(ctx: Ctx, gates: dict[str, Any]) -> Outcome:
    """The gates are open: back up (unless done or disabled), else apply."""
    backup = ctx.observed.spec.backup
    if backup.enabled and not backup_current(ctx):
        return start_backup(ctx, "backing up before any change", gates)
    conditions: tuple[StepCondition, ...] = ()
    if not backup.enabled:
        text = "spec.backup.enabled is false: no backup was taken"
        disabled = StepCondition(
            type=BACKED_UP, status="False", reason=Reason.BACKUP_DISABLED, message=text
        )
        conditions = (disabled,)
    versions = ", ".join(str(v.version) for v in ctx.base.plan.pending) if ctx.base.plan else ""
    return start_apply(ctx, f"applying {versions}", conditions=conditions, updates=gates)
