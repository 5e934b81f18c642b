"""The pure state machine: ``decide(observed) -> Decision``, no I/O and no clock but
``observed.now``, so the same observation always gives the same decision.

Flow of one run: Pending → Planning → (WaitingForApproval | WaitingForWindow | WaitingForLock)
→ BackingUp → Migrating → Verifying → Succeeded. A run leaving WaitingForLock plans again first
(Planning, a new attempt of the plan Job): the migration that held the database may have changed
it, so the plan from before the wait is stale. Before the backup nothing in the database
changes: a failed plan, lint errors under the strict policy, a failed preflight or backup end in
Failed. A failed apply or verify rolls back (``recovery.py``) and ends RolledBack, or Failed when
rollback.strategy is None. With backup disabled BackingUp is skipped. A plan with nothing
pending ends Succeeded at once. Each phase is level-based: if its Job is missing (the operator
stopped between the status patch and the create) it is created again under the same name.

Spec changes while a run is going on (the run's generation is status.observedGeneration):

* A run that has changed nothing yet gives way to the new generation at once: Pending,
  WaitingFor* (even after the backup), and Planning as soon as its plan Job has finished.
* From BackingUp on, the run finishes for the generation it started with; the new generation is
  queued (the Ready message says so, and kstatus sees observedGeneration < generation) and starts
  as soon as the run reaches Succeeded, Failed or RolledBack.
* A terminal phase never changes without a new generation.

The migration set itself cannot change under a running run: the apply Job gets the plan's hash
and refuses files that do not match it. A new run clears the step keys of the previous run, and
asks the actuator to delete the Jobs of runs older than the last ``KEEP_RUNS`` (Jobs have no TTL:
they are the evidence of recent runs; all of them go with the resource).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from dbmigrate.api.conditions import (
    BACKED_UP,
    MIGRATED,
    READY,
    RECONCILING,
    STALLED,
    VERIFIED,
    Reason,
)
from dbmigrate.api.status import TERMINAL_PHASES, DatabaseMigrationStatus, Phase, Step
from dbmigrate.api.stepnames import (
    REPORTS,
    STEP_APPLY,
    STEP_BACKUP,
    STEP_PLAN,
    STEP_VERIFY,
)
from dbmigrate.decision import pause
from dbmigrate.decision.gate_sequence import through_gates
from dbmigrate.decision.model import STEP_KEYS, Decision, JobObservation, Observed, status_field
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition, render
from dbmigrate.decision.recovery import begin_rollback, rolling_back
from dbmigrate.decision.requested import REQUEST_KEYS
from dbmigrate.decision.transitions import (
    failed,
    missing_reports,
    not_reported,
    prerequisite_problem,
    running,
    stalled,
    start_step,
)
from dbmigrate.specs.naming import run_id

KEEP_RUNS = 3  # the Jobs of the current run and of the two runs before it are kept as evidence
WAITING_PHASES = ("WaitingForApproval", "WaitingForWindow", "WaitingForLock")
CLEARED_KEYS = (*STEP_KEYS, *REQUEST_KEYS)  # a new run forgets the last rollback on demand
PLAN_KEYS = tuple(status_field(key) for key in REPORTS[STEP_PLAN])  # what a plan Job reports


def decide(observed: Observed) -> Decision:
    """The next step of the DatabaseMigration in ``observed`` (nothing new while paused)."""
    held = pause.hold(observed)
    return held if held is not None else pause.lift(observed, _decide(observed))


def _decide(observed: Observed) -> Decision:
    ctx = Ctx(observed, observed.status)
    if _starts_new_run(ctx):
        fresh, outcome, expired = _new_run(ctx)
        return replace(render(fresh, outcome), delete_jobs=expired)
    phase = observed.status.phase
    if phase in TERMINAL_PHASES:
        return Decision(status=observed.status)
    if phase == "WaitingForLock":
        return render(*_waiting_for_lock(ctx))
    return render(ctx, PHASE_HANDLERS[phase](ctx))


def starts_new_run(observed: Observed) -> bool:
    """Whether decide starts a new run for the current generation now."""
    return _starts_new_run(Ctx(observed, observed.status))


def _starts_new_run(ctx: Ctx) -> bool:
    status, generation = ctx.observed.status, ctx.observed.generation
    if status.observed_generation is None:
        return True
    if status.observed_generation >= generation:
        return False
    if status.phase in (*TERMINAL_PHASES, "Pending", *WAITING_PHASES):
        return True
    plan = ctx.job(STEP_PLAN)
    return status.phase == "Planning" and (plan is None or plan.state != "Running")


def _new_run(ctx: Ctx) -> tuple[Ctx, Outcome, tuple[str, ...]]:
    """A fresh run for the current generation; Jobs of runs older than the kept ones expire."""
    observed, old = ctx.observed, ctx.observed.status
    kept_generations = sorted({r.generation for r in old.jobs})[-(KEEP_RUNS - 1) :]
    kept = [r for r in old.jobs if r.generation in kept_generations]
    expired = tuple(r.name for r in old.jobs if r.generation not in kept_generations)
    base = DatabaseMigrationStatus(
        phase=old.phase,
        observed_generation=observed.generation,
        conditions=[c for c in old.conditions if c.type in (READY, RECONCILING, STALLED)],
        run_id=run_id(observed.name, observed.uid, observed.generation),
        started_at=observed.now,
        current_version=old.current_version,
        jobs=kept,
    )
    fresh = Ctx(observed, base, clear_step_keys=CLEARED_KEYS)
    return fresh, _pending(fresh), expired


def _pending(ctx: Ctx) -> Outcome:
    problem = prerequisite_problem(ctx)
    if problem is not None:
        return stalled(ctx, "Pending", *problem)
    run = ctx.base.run_id
    return start_step(ctx, STEP_PLAN, f"planning generation {ctx.run_generation} (run {run})")


def _step_phase(
    step: Step,
    on_success: Callable[[Ctx, JobObservation], Outcome],
    on_failure: Callable[[Ctx, JobObservation], Outcome],
) -> Callable[[Ctx], Outcome]:
    """A handler for a phase that runs one step Job: (re)create it, wait, then judge it."""

    def handle(ctx: Ctx) -> Outcome:
        job = ctx.job(step)
        if job is None:
            return start_step(ctx, step, f"{step} step started again")
        if job.state == "Running":
            return running(ctx, step, job)
        if job.state == "Failed":
            return on_failure(ctx, job)
        missing = missing_reports(ctx, step)
        return not_reported(ctx, step, job, missing) if missing else on_success(ctx, job)

    return handle


def _plan_findings(ctx: Ctx) -> tuple[Reason, str] | None:
    """(reason, message) of what in the plan's reports stops the run before any change."""
    status, policy = ctx.base, ctx.observed.spec.safety.lint_policy
    if status.plan is not None and status.plan.drift_errors:
        first = status.plan.drift_errors[0].message
        return Reason.DRIFT_DETECTED, f"the migration set disagrees with the history table: {first}"
    lint = status.lint
    if lint is not None and policy == "strict" and not lint.passed:
        return Reason.LINT_FAILED, (
            f"lint found {lint.error_count} error(s) under policy strict (see status.lint); fix "
            "the SQL or waive a finding with '-- dbmigrate:ignore RULE reason: ...'. Nothing "
            "was changed"
        )
    preflight = status.preflight
    if preflight is not None and not preflight.passed:
        checks = [f"{c.name}: {c.message}" for c in preflight.checks if c.status == "fail"]
        return Reason.PREFLIGHT_FAILED, "preflight failed: " + (
            "; ".join(checks) or "see status.preflight"
        )
    return None


def _plan_failed(ctx: Ctx, job: JobObservation) -> Outcome:
    finding = _plan_findings(ctx)
    if finding is not None:
        return failed(ctx, STEP_PLAN, *finding)
    message = (
        f"the plan Job {job.name} failed: {job.message or 'see its logs'}. Nothing was changed"
    )
    return failed(ctx, STEP_PLAN, Reason.PLAN_FAILED, message)


def _plan_done(ctx: Ctx, job: JobObservation) -> Outcome:
    finding = _plan_findings(ctx)
    if finding is not None:
        return failed(ctx, STEP_PLAN, *finding)
    plan = ctx.base.plan
    assert plan is not None  # missing_reports checked it
    if not plan.pending:
        message = "nothing to apply: every version of the migration set is already applied"
        return Outcome.succeeded(message=message)
    return through_gates(ctx)


def _backup_done(ctx: Ctx, job: JobObservation) -> Outcome:
    backup = ctx.base.backup
    assert backup is not None
    if not backup.verified:
        message = (
            f"the backup {backup.path} could not be read back by pg_restore --list, so nothing "
            "is migrated (no backup, no migration). Nothing was changed"
        )
        condition = StepCondition(
            type=BACKED_UP, status="False", reason=Reason.BACKUP_NOT_VERIFIED, message=message
        )
        return failed(
            ctx, STEP_BACKUP, Reason.BACKUP_NOT_VERIFIED, message, conditions=(condition,)
        )
    text = f"{backup.path} ({backup.size_bytes} bytes, sha256 {backup.sha256}) verified"
    condition = StepCondition(
        type=BACKED_UP, status="True", reason=Reason.BACKUP_VERIFIED, message=text
    )
    return through_gates(ctx).with_conditions(condition)


def _backup_failed(ctx: Ctx, job: JobObservation) -> Outcome:
    message = (
        f"the backup Job {job.name} failed: {job.message or 'see its logs'}. Nothing was changed"
    )
    condition = StepCondition(
        type=BACKED_UP, status="False", reason=Reason.BACKUP_FAILED, message=message
    )
    return failed(ctx, STEP_BACKUP, Reason.BACKUP_FAILED, message, conditions=(condition,))


def _apply_done(ctx: Ctx, job: JobObservation) -> Outcome:
    apply = ctx.base.apply
    assert apply is not None
    if apply.status == "failed":
        return begin_rollback(ctx, STEP_APPLY, Reason.APPLY_FAILED, f"apply failed: {apply.error}")
    versions = [str(v.version) for v in apply.versions if v.status == "applied"]
    text = f"applied versions {', '.join(versions)}" if versions else "nothing left to apply"
    condition = StepCondition(type=MIGRATED, status="True", reason=Reason.APPLIED, message=text)
    return start_step(ctx, STEP_VERIFY, f"{text}; verifying", conditions=(condition,))


def _apply_failed(ctx: Ctx, job: JobObservation) -> Outcome:
    apply = ctx.base.apply
    detail = apply.error if apply is not None and apply.error else job.message or "see its logs"
    message = f"the apply Job {job.name} failed: {detail}"
    return begin_rollback(ctx, STEP_APPLY, Reason.APPLY_FAILED, message)


def _verify_done(ctx: Ctx, job: JobObservation) -> Outcome:
    result = ctx.base.verification
    assert result is not None
    if not result.passed:
        return begin_rollback(
            ctx, STEP_VERIFY, Reason.VERIFICATION_FAILED, f"verification failed: {result.message}"
        )
    text = result.message or "every index is valid and every probe uses its index"
    condition = StepCondition(type=VERIFIED, status="True", reason=Reason.VERIFIED, message=text)
    return Outcome.succeeded(message=f"migrated and verified: {text}", conditions=(condition,))


def _verify_failed(ctx: Ctx, job: JobObservation) -> Outcome:
    message = f"the verify Job {job.name} failed: {job.message or 'see its logs'}"
    return begin_rollback(ctx, STEP_VERIFY, Reason.VERIFICATION_FAILED, message)


def _backing_up(ctx: Ctx) -> Outcome:
    """BackingUp; if the backup was switched off before its Job was created, skip it."""
    if not ctx.observed.spec.backup.enabled and ctx.job(STEP_BACKUP) is None:
        return through_gates(ctx)
    return _backup_phase(ctx)


_backup_phase = _step_phase(STEP_BACKUP, _backup_done, _backup_failed)


def _waiting(ctx: Ctx) -> Outcome:
    """WaitingFor*: look at every gate again (the plan stays as reported)."""
    return through_gates(ctx)


def _waiting_for_lock(ctx: Ctx) -> tuple[Ctx, Outcome]:
    """WaitingForLock: once the holder is gone, plan again before any change.

    The holder may have changed the database (applied versions this run had pending), so the
    plan reported before the wait is stale and its hash would be refused by the apply. The new
    plan Job is the next attempt of this run's plan (``orders-plan-g3-a2``); its reports replace
    the old ones, and the gates (approval of the new hash included) are asked again after it.
    """
    if ctx.observed.lock_holder is not None or ctx.succeeded(STEP_BACKUP):
        return ctx, through_gates(ctx)
    problem = prerequisite_problem(ctx)
    if problem is not None:
        return ctx, stalled(ctx, "WaitingForLock", *problem)
    cleared = ctx.base.model_copy(update=dict.fromkeys(PLAN_KEYS))
    again = replace(ctx, base=cleared, clear_step_keys=PLAN_KEYS, new_attempt=STEP_PLAN)
    message = "the database lock is free; planning again, as the holder may have changed it"
    return again, start_step(again, STEP_PLAN, message)


PHASE_HANDLERS: dict[Phase, Callable[[Ctx], Outcome]] = {
    "Pending": _pending,
    "Planning": _step_phase(STEP_PLAN, _plan_done, _plan_failed),
    "WaitingForApproval": _waiting,
    "WaitingForWindow": _waiting,
    # WaitingForLock: _waiting_for_lock, called by decide (it may start a new plan attempt)
    "BackingUp": _backing_up,
    "Migrating": _step_phase(STEP_APPLY, _apply_done, _apply_failed),
    "Verifying": _step_phase(STEP_VERIFY, _verify_done, _verify_failed),
    "RollingBack": rolling_back,
}
