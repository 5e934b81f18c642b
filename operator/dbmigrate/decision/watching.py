"""The performance watch after Succeeded: start it, read its verdict, act on a regression.

The guide ends a migration with "check query execution times before and after" and "emergency
rollback if a migration causes issues". With ``spec.watch`` set, a run that applied something
reaches Succeeded as usual (Ready=True: nothing waits for the watch), and then:

1. the watch Job starts (``STEP_WATCH``, in the application's namespace like every step); it
   samples the database's counters every ``interval`` for ``duration`` and writes
   ``status.watch`` (its samples, then the report with the verdict, state Done);
2. once it ends, the verdict becomes the ``PerformanceVerified`` condition: True with
   NoRegression, False with Inconclusive or Unavailable (a failed watch Job, a missing report),
   an Event each; none of these touches Ready or the phase;
3. a Regressed verdict sets PerformanceVerified=False and makes the regression visible to every
   health reader: Ready=False and Stalled=True, reason Regressed, the phase staying Succeeded
   (the schema is applied), a Warning Event and a Regressed notification;
4. with ``onRegression: Rollback`` and ``rollback.strategy: DropCreatedObjects`` the next
   reconcile starts the emergency rollback of the run (``recovery.rolling_back``: scale
   spec.rollback.scaleDown, drop what the run created, scale back), which ends RolledBack with
   reason PerformanceRegressed and the offenders in the message. With RestoreBackup the watch
   only notifies: restoring the backup would lose every write made since it was taken.

The verdict comes first and the rollback after it, in two reconciles, so a Regressed
notification and Event are sent in both cases. ``after_success`` is the only entry point:
``decide`` calls it for a terminal phase and it returns None when there is nothing to do.
"""

from __future__ import annotations

from dataclasses import replace

from dbmigrate.api.conditions import (
    PERFORMANCE_VERIFIED,
    ConditionStatus,
    Reason,
    find_condition,
)
from dbmigrate.api.spec import WatchSpec
from dbmigrate.api.stepnames import STEP_WATCH
from dbmigrate.api.watch import QueryComparison, WatchReport
from dbmigrate.decision.model import Decision, EventSpec, EventType, JobObservation
from dbmigrate.decision.outcome import Ctx, Outcome, StepCondition, render
from dbmigrate.decision.recovery import rolling_back
from dbmigrate.decision.transitions import REPORT_GRACE, REPORT_REQUEUE, prerequisite_problem

MAX_SHOWN = 3  # offenders or improved queries named in a message
TEXT_SHOWN = 80  # characters of a query's text in a message
VERDICT_REASONS: dict[str, Reason] = {
    "NoRegression": Reason.NO_REGRESSION,
    "Regressed": Reason.REGRESSED,
    "Inconclusive": Reason.INCONCLUSIVE,
    "Unavailable": Reason.UNAVAILABLE,
}


def after_success(ctx: Ctx) -> Decision | None:
    """What the watch asks for in a terminal phase, or None when there is nothing to do."""
    watch, status = ctx.observed.spec.watch, ctx.base
    if watch is None or status.phase != "Succeeded" or status.apply is None:
        return None
    verdict = find_condition(status.conditions, PERFORMANCE_VERIFIED)
    if verdict is not None:
        if verdict.reason == Reason.REGRESSED and rollback_refusal(ctx, watch) is None:
            return render(*_begin_rollback(ctx, verdict.message))
        return None
    job = ctx.job(STEP_WATCH)
    if job is None:
        return _start(ctx, watch)
    if job.state == "Running":
        return None
    return _judge(ctx, watch, job)


def rollback_refusal(ctx: Ctx, watch: WatchSpec) -> str | None:
    """Why a regression does not roll back (None: it does)."""
    strategy = ctx.observed.spec.rollback.strategy
    if watch.on_regression == "Notify":
        return "spec.watch.onRegression is Notify: fix forward or revert with a new generation"
    if strategy == "RestoreBackup":
        return (
            "spec.watch.onRegression is Rollback, but rollback.strategy is RestoreBackup: "
            "restoring the backup would lose every write made since it was taken, so the watch "
            "only notifies; revert with a new generation (or roll back by hand)"
        )
    if strategy == "None":
        return "spec.watch.onRegression is Rollback, but rollback.strategy is None"
    return None


def _start(ctx: Ctx, watch: WatchSpec) -> Decision:
    problem = prerequisite_problem(ctx)
    if problem is not None:
        reason, why = problem
        return _concluded(
            ctx, Reason.UNAVAILABLE, f"the watch Job could not start ({reason}): {why}"
        )
    job = ctx.job_name(STEP_WATCH)
    message = (
        f"migrated and verified; watching the workload's performance for {watch.duration} "
        f"(every {watch.interval}, Job {job})"
    )
    outcome = Outcome(
        phase="Succeeded",
        health="succeeded",
        reason="Succeeded",
        message=message,
        create_job=STEP_WATCH,
    )
    decision = render(ctx, outcome)
    event = EventSpec("Normal", Reason.WATCH_STARTED, message)
    return replace(decision, events=(*decision.events, event))


def _judge(ctx: Ctx, watch: WatchSpec, job: JobObservation) -> Decision | None:
    record = ctx.base.watch
    report = record.report if record is not None and record.state == "Done" else None
    if report is None and job.state == "Failed":
        detail = job.message or "see its logs"
        return _concluded(ctx, Reason.UNAVAILABLE, f"the watch Job {job.name} failed: {detail}")
    if report is None:
        finished = job.finished_at
        if finished is None or ctx.now - finished < REPORT_GRACE:
            return replace(Decision(status=ctx.base), requeue_after=REPORT_REQUEUE)
        message = f"the watch Job {job.name} succeeded without reporting its verdict"
        return _concluded(ctx, Reason.UNAVAILABLE, message)
    reason = VERDICT_REASONS[report.verdict]
    if reason != Reason.REGRESSED:
        return _concluded(ctx, reason, describe(report))
    return _regressed(ctx, watch, report)


def _concluded(ctx: Ctx, reason: Reason, message: str) -> Decision:
    """A verdict that leaves the run as it is: the condition and an Event."""
    status: ConditionStatus = "True" if reason == Reason.NO_REGRESSION else "False"
    condition = StepCondition(
        type=PERFORMANCE_VERIFIED, status=status, reason=reason, message=message
    )
    text = f"migrated and verified; performance watch: {reason}: {message}"
    outcome = Outcome.succeeded(message=text, conditions=(condition,))
    decision = render(ctx, outcome)
    kind: EventType = "Warning" if reason == Reason.UNAVAILABLE else "Normal"
    return replace(decision, events=(*decision.events, EventSpec(kind, reason, message)))


def _regressed(ctx: Ctx, watch: WatchSpec, report: WatchReport) -> Decision:
    """Regressed: visible to every health reader; the rollback (if any) starts next time."""
    refusal = rollback_refusal(ctx, watch)
    then = "rolling back (spec.watch.onRegression: Rollback)" if refusal is None else refusal
    evidence = describe(report)
    condition = StepCondition(
        type=PERFORMANCE_VERIFIED, status="False", reason=Reason.REGRESSED, message=evidence
    )
    outcome = Outcome.stalled(
        phase="Succeeded",
        reason=Reason.REGRESSED,
        message=f"the performance watch found a regression: {evidence}; {then}",
        conditions=(condition,),
        requeue_after=1.0 if refusal is None else None,
    )
    return render(ctx, outcome)


def _begin_rollback(ctx: Ctx, offenders: str) -> tuple[Ctx, Outcome]:
    """The emergency rollback of the run, as after a failed step (``recovery``)."""
    failing = ctx.with_failure(STEP_WATCH)
    outcome = rolling_back(failing)
    return failing, replace(
        outcome,
        message=f"performance regressed ({offenders}); {outcome.message}",
        updates={**outcome.updates, "failed_step": STEP_WATCH},
        warning=True,
    )


def _query(comparison: QueryComparison) -> str:
    text = " ".join(comparison.query.split())
    return text if len(text) <= TEXT_SHOWN else text[: TEXT_SHOWN - 3] + "..."


def _timing(comparison: QueryComparison) -> str:
    return (
        f"{_query(comparison)}: {comparison.mean_before_ms:.2f} ms -> "
        f"{comparison.mean_after_ms:.2f} ms per call (x{comparison.ratio:.1f}, "
        f"{comparison.calls_before}/{comparison.calls_after} calls)"
    )


def describe(report: WatchReport) -> str:
    """The verdict's evidence in a sentence or two: the reason, then the worst offenders (or
    the most improved queries), the unused new indexes and what was missing."""
    parts = [report.reason.rstrip(".")]
    if report.offenders:
        shown = "; ".join(_timing(c) for c in report.offenders[:MAX_SHOWN])
        parts.append(f"slower: {shown}")
    elif report.improved:
        shown = "; ".join(_timing(c) for c in report.improved[:MAX_SHOWN])
        parts.append(f"faster: {shown}")
    if report.unused_new_indexes:
        parts.append(f"new indexes not scanned: {', '.join(report.unused_new_indexes)}")
    if report.missing:
        parts.append(f"missing: {report.missing[0]}")
    return ". ".join(parts)
