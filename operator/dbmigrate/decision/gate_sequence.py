"""The gate sequence of a run, between a sound plan and its first change.

``through_gates`` asks the gates of ``gates.py`` in order (approval, maintenance window, the
database lock) and turns the first closed one into its waiting phase; when all are open it starts
the first step that changes something: the backup, or the apply if the backup is done or switched
off. It runs after the plan, in every WaitingFor* phase, and again after the backup (the window
may have closed meanwhile; the run already holds its database then, so the lock is not asked).
"""

from __future__ import annotations

from typing import Any

from dbmigrate.api.conditions import BACKED_UP
from dbmigrate.decision.gate_rules import (
    InvalidMaintenanceWindow,
    evaluate_approval,
    evaluate_window,
)
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition
from dbmigrate.decision.transitions import failed, stalled, start_step

LOCK_REQUEUE = 15.0


def through_gates(ctx: Ctx) -> Outcome:
    """Approval, then the maintenance window, then the database lock; then the next step."""
    observed, status = ctx.observed, ctx.base
    if status.plan is None:
        message = "status.plan is gone, so the gates cannot be judged; apply a new generation"
        return failed(ctx, "plan", "StepNotReported", message)
    approval = evaluate_approval(
        observed.spec, status.plan.plan_hash, observed.annotations, status.approval,
        resource=observed.name, namespace=observed.namespace, now=ctx.now,
    )  # fmt: skip
    if not approval.passed:
        reason = "ApprovalRefused" if approval.refused else "WaitingForApproval"
        return Outcome("WaitingForApproval", "waiting", reason, approval.message,
                       updates={"approval": approval.status}, warning=approval.refused)  # fmt: skip
    try:
        window = evaluate_window(observed.spec, status.preflight, ctx.now)
    except InvalidMaintenanceWindow as exc:
        return stalled(ctx, "WaitingForWindow", "InvalidMaintenanceWindow", str(exc),
                       {"approval": approval.status})  # fmt: skip
    gates: dict[str, Any] = {"approval": approval.status, "window": window.status}
    if not window.passed:
        return Outcome("WaitingForWindow", "waiting", "WaitingForWindow", window.message,
                       updates=gates, requeue_after=window.requeue_after)  # fmt: skip
    holder = observed.lock_holder
    if holder is not None and not ctx.succeeded("backup"):
        message = (
            f"waiting for {holder}, which is migrating the same database; this migration starts "
            "when that one ends"
        )
        gates["waiting_for"] = holder
        return Outcome("WaitingForLock", "waiting", "WaitingForLock", message,
                       updates=gates, requeue_after=LOCK_REQUEUE)  # fmt: skip
    return first_change(ctx, gates)


def first_change(ctx: Ctx, gates: dict[str, Any]) -> Outcome:
    """The gates are open: back up (unless done or disabled), else apply."""
    backup = ctx.observed.spec.backup
    if backup.enabled and not ctx.succeeded("backup"):
        return start_step(ctx, "backup", "backing up before any change", updates=gates)
    conditions: tuple[StepCondition, ...] = ()
    if not backup.enabled:
        text = "spec.backup.enabled is false: no backup was taken"
        conditions = (StepCondition(BACKED_UP, "False", "BackupDisabled", text),)
    versions = ", ".join(str(v.version) for v in ctx.base.plan.pending) if ctx.base.plan else ""
    return start_step(ctx, "apply", f"applying {versions}", conditions=conditions, updates=gates)
