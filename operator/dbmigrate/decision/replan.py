"""Reading the migration files again before the first change, so what runs is what was approved.

The plan Job reads the files, reports the plan and its hash, and with ``approval.mode: Manual`` a
person approves that hash. The files may change afterwards (a ConfigMap edited after the review),
so they are read again by a new attempt of the plan Job (``orders-plan-g3-a2``) whenever time has
passed since they were read and before anything changes:

* the database lock was released: the holder may have changed the database (``decide``);
* an approval arrives for a plan shown earlier (``approval_arrived``): the approved hash is checked
  against the files as they are now before the backup; a different hash goes back to
  WaitingForApproval (ApprovalRefused) with the new hash and the command that approves it;
* the apply Job refused the files because they no longer hash to the approved plan
  (``EXIT_PLAN_CHANGED``: it ran nothing; ``refused_unchanged``): the run plans again as above
  instead of rolling back. A refusal never scales a workload down nor runs a rollback.

A step started again is a new attempt of its Job (``start_again``): its status keys are cleared
and the attempt number goes up, so the Job of the earlier attempt stays as evidence. A backup is
only good for the plan it was taken after (``backup_current``): a plan made again after a backup
is backed up again before it is applied, so a later RestoreBackup loses nothing written meanwhile.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dbmigrate.api.exitcodes import EXIT_PLAN_CHANGED
from dbmigrate.api.status import JobRecord, Phase, Step
from dbmigrate.api.stepnames import REPORTS, STEP_APPLY, STEP_BACKUP, STEP_PLAN
from dbmigrate.decision.model import JobObservation, status_field
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition
from dbmigrate.decision.transitions import prerequisite_problem, stalled, start_step

PLAN_KEYS = tuple(status_field(key) for key in REPORTS[STEP_PLAN])  # what a plan Job reports
APPLY_KEYS = tuple(status_field(key) for key in REPORTS[STEP_APPLY])
BACKUP_KEYS = tuple(status_field(key) for key in REPORTS[STEP_BACKUP])


def start_again(
    ctx: Ctx,
    step: Step,
    message: str,
    clear: tuple[str, ...] = (),
    *,
    updates: dict[str, Any] | None = None,
    conditions: tuple[StepCondition, ...] = (),
    warning: bool = False,
) -> Outcome:
    """Start a new attempt of ``step`` in this run, clearing the status fields ``clear``.

    A missing prerequisite stalls the run in its current phase instead, recording nothing, so the
    next reconcile asks again from the same place.
    """
    problem = prerequisite_problem(ctx, step)
    if problem is not None:
        phase: Phase = ctx.base.phase
        return stalled(ctx, phase, *problem)
    again = replace(
        ctx,
        base=ctx.base.model_copy(update=dict.fromkeys(clear)),
        clear_step_keys=(*dict.fromkeys((*ctx.clear_step_keys, *clear)),),
        new_attempt=step,
    )
    out = start_step(again, step, message, updates=updates, conditions=conditions)
    return replace(out, again=step, clear_keys=clear, warning=warning or out.warning)


def plan_again(
    ctx: Ctx, message: str, *, updates: dict[str, Any] | None = None, warning: bool = False
) -> Outcome:
    """A new attempt of the plan Job; its reports replace the old ones, the gates follow it."""
    return start_again(ctx, STEP_PLAN, message, PLAN_KEYS, updates=updates, warning=warning)


def approval_arrived(ctx: Ctx, fresh: bool) -> bool:
    """Whether an approval given just now is for a plan shown earlier (the run waited for it),
    so the files must be read again before the backup. A plan approved as it is reported (the
    annotation was there already) was read a moment ago."""
    return fresh and ctx.base.phase == "WaitingForApproval"


def refused_unchanged(ctx: Ctx, job: JobObservation) -> bool:
    """Whether the apply Job refused to run because the plan changed (nothing ran): its own
    ``status.stepExit``, or its pod's exit code, is ``EXIT_PLAN_CHANGED``."""
    said = ctx.base.step_exit
    if said is not None and said.job == job.name and said.exit_code == EXIT_PLAN_CHANGED:
        return True
    return job.exit_code == EXIT_PLAN_CHANGED


def after_refusal(ctx: Ctx, job: JobObservation) -> Outcome:
    """The apply refused a changed plan: nothing changed, so plan again (no rollback)."""
    apply = ctx.base.apply
    why = apply.error if apply is not None and apply.error else job.termination_message
    detail = f": {why}" if why else ""
    message = (
        f"the apply Job {job.name} refused to run because the migration files changed since "
        f"the plan was approved{detail}. Nothing was changed (no rollback, no workload scaled); "
        "planning again"
    )
    return plan_again(ctx, message, warning=True)


def _record(ctx: Ctx, step: Step) -> JobRecord | None:
    name = ctx.job_name(step)
    return next((r for r in ctx.base.jobs if r.name == name), None)


def backup_current(ctx: Ctx) -> bool:
    """Whether this run's backup succeeded after the plan that is about to be applied."""
    if not ctx.succeeded(STEP_BACKUP):
        return False
    plan, backup = _record(ctx, STEP_PLAN), _record(ctx, STEP_BACKUP)
    return plan is None or backup is None or backup.created_at >= plan.created_at


def start_apply(
    ctx: Ctx, message: str, *, updates: dict[str, Any], conditions: tuple[StepCondition, ...]
) -> Outcome:
    """Start the apply Job: its first attempt, or a new one after a refused attempt."""
    if ctx.job(STEP_APPLY) is None:
        return start_step(ctx, STEP_APPLY, message, updates=updates, conditions=conditions)
    return start_again(ctx, STEP_APPLY, message, APPLY_KEYS, updates=updates, conditions=conditions)


def start_backup(ctx: Ctx, message: str, updates: dict[str, Any]) -> Outcome:
    """Start the backup Job: its first attempt, or a new one when the plan was made again."""
    if ctx.job(STEP_BACKUP) is None:
        return start_step(ctx, STEP_BACKUP, message, updates=updates)
    text = f"{message} (again: the plan was made again after the last backup)"
    return start_again(ctx, STEP_BACKUP, text, BACKUP_KEYS, updates=updates)
