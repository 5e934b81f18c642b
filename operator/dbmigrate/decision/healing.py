"""Runs of the same generation again: by themselves when the cause was outside the migration,
or when a person asks (the ``dbmigrate.io/retry`` annotation).

A run that failed before changing anything, because its plan or backup step could not reach the
database (the step exited 3, "unavailable, may heal": the server refused or was unreachable, the
password was wrong), is not a verdict on the migration: it heals when the cause is fixed. (A pod
that cannot start is reported while its Job runs, and the run goes on once it starts:
``podstart``; if the Job's deadline passes first, that is a cause outside the migration too.)
Such a run ends Failed as before, with ``status.retry`` saying when it tries
again: after ``backoff(n)`` (30 s, doubling, at most 10 minutes), at most ``AUTO_RETRY_LIMIT``
times per generation, and at once when the database Secret changes (its resourceVersion differs
from the one seen at the failure; the reconcile reads the Secret's key names anyway, never its
values). Nothing is watched beyond that Secret, so the operator needs no list or watch of
Secrets. While a retry is scheduled the resource is looked at every ``WATCH_INTERVAL`` seconds.

Failures after the database changed (apply, verify, rollback) and failures that are the
migration's own (drift, lint, preflight, a failing statement) keep their end state; retrying
them needs a person: a new generation, or the retry annotation. Any new value of
``dbmigrate.io/retry`` (``kubectl dbmigrate retry NAME`` writes a timestamp) on a resource whose
run has ended starts a new run of the same generation, and the value is echoed in
``status.lastHandledRetry`` (Flux's ``requestedAt`` pattern); arriving while a run is under way,
it is echoed with a ``RetryIgnored`` Event and does nothing.

A new run of the same generation is numbered (``status.retry.run``): its run id gets ``-r<run>``
and each of its step Jobs the next attempt number (``Ctx.attempt``), so no Job of the earlier run
is taken for its own.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from dbmigrate.api.conditions import STALLED, Reason, find_condition
from dbmigrate.api.exitcodes import EXIT_UNAVAILABLE
from dbmigrate.api.labels import RETRY_ANNOTATION
from dbmigrate.api.status import TERMINAL_PHASES, RetryStatus
from dbmigrate.api.stepnames import STEP_BACKUP, STEP_PLAN
from dbmigrate.decision.model import Decision, EventSpec, Observed
from dbmigrate.decision.outcome import Ctx, Outcome

AUTO_RETRY_LIMIT = 5
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=10)
WATCH_INTERVAL = 10.0  # while a retry is scheduled: how often the Secret is looked at
BEFORE_ANY_CHANGE = (STEP_PLAN, STEP_BACKUP)
CAUSE_LENGTH = 2048  # status.retry.cause's limit
POD_CAUSES = (
    Reason.STEP_POD_UNSCHEDULABLE,
    Reason.STEP_IMAGE_PULL_FAILED,
    Reason.STEP_POD_NOT_STARTING,
)

Trigger = Literal["requested", "automatic"]


def backoff(retries_made: int) -> timedelta:
    """The wait before automatic retry ``retries_made + 1``: 30 s, 60 s, 120 s, ... 10 min."""
    return min(BACKOFF_FIRST * (2**retries_made), BACKOFF_MAX)


def requested_retry(observed: Observed) -> str | None:
    """The retry annotation's value when the operator has not acted on it yet."""
    token = observed.annotations.get(RETRY_ANNOTATION)
    if not token or token == observed.status.last_handled_retry:
        return None
    return token


def retry_trigger(observed: Observed) -> Trigger | None:
    """Whether the ended run starts again now, and why (None: it stays as it is)."""
    status = observed.status
    if status.phase not in TERMINAL_PHASES:
        return None
    if requested_retry(observed) is not None:
        return "requested"
    retry = status.retry
    if status.phase != "Failed" or retry is None or retry.next_attempt_at is None:
        return None
    if observed.now >= retry.next_attempt_at or _secret_changed(observed, retry):
        return "automatic"
    return None


def next_run(observed: Observed, trigger: Trigger) -> RetryStatus:
    """``status.retry`` of the new run of the same generation that ``trigger`` starts."""
    previous = observed.status.retry or RetryStatus(limit=AUTO_RETRY_LIMIT)
    automatic = previous.automatic + (trigger == "automatic")
    if trigger == "requested":
        automatic = 0  # a person looked at it: the automatic retries start over
    return RetryStatus(run=previous.run + 1, automatic=automatic, limit=previous.limit)


def retry_event(observed: Observed, trigger: Trigger, retry: RetryStatus) -> EventSpec:
    """The Event announcing the new run."""
    if trigger == "requested":
        token = requested_retry(observed)
        message = f"retry {token!r} asked for (annotation {RETRY_ANNOTATION}): run {retry.run}"
        return EventSpec("Normal", Reason.RETRY_REQUESTED, message + " of this generation starts")
    previous = observed.status.retry
    changed = previous is not None and _secret_changed(observed, previous)
    why = "the Secret changed" if changed else "its back-off has passed"
    message = (
        f"automatic retry {retry.automatic} of {retry.limit} ({why}): run {retry.run} of this "
        "generation starts"
    )
    return EventSpec("Normal", Reason.AUTOMATIC_RETRY, message)


def waiting_to_retry(observed: Observed) -> Decision:
    """An ended run as it is, looked at again while an automatic retry is scheduled."""
    retry = observed.status.retry
    if observed.status.phase != "Failed" or retry is None or retry.next_attempt_at is None:
        return Decision(status=observed.status)
    due = (retry.next_attempt_at - observed.now).total_seconds()
    return Decision(status=observed.status, requeue_after=max(1.0, min(WATCH_INTERVAL, due)))


def ignore_request(observed: Observed, decision: Decision) -> Decision:
    """``decision`` with a retry asked for during a run echoed as handled (it does nothing)."""
    token = requested_retry(observed)
    if token is None or observed.status.phase in TERMINAL_PHASES:
        return decision
    message = (
        f"retry {token!r} ignored: a run is under way ({observed.status.phase}); retry once it "
        "has ended"
    )
    event = EventSpec("Normal", Reason.RETRY_IGNORED, message)
    status = decision.status.model_copy(update={"last_handled_retry": token})
    return replace(decision, status=status, events=(*decision.events, event))


def schedule_retry(ctx: Ctx, out: Outcome) -> Outcome:
    """``out``, with an automatic retry scheduled when it ends the run Failed before any change
    for a cause outside the migration (``cause_outside``)."""
    if out.phase != "Failed" or not cause_outside(ctx, out):
        return out
    observed = ctx.observed
    previous = ctx.base.retry or RetryStatus(limit=AUTO_RETRY_LIMIT)
    secret = observed.spec.database.secret_ref.name
    if previous.automatic >= previous.limit:
        text = (
            f"; no automatic retry is left ({previous.limit} made): fix the cause, then retry: "
            f"kubectl annotate dbm {observed.name} -n {observed.namespace} "
            f"{RETRY_ANNOTATION}=<a new value, e.g. the time> --overwrite"
        )
        retry = previous.model_copy(
            update={"next_attempt_at": None, "cause": out.message[:CAUSE_LENGTH]}
        )
        return replace(out, message=out.message + text, updates={**out.updates, "retry": retry})
    at: datetime = observed.now + backoff(previous.automatic)
    retry = previous.model_copy(
        update={
            "next_attempt_at": at,
            "secret_version": observed.secret.version,
            "cause": out.message[:CAUSE_LENGTH],
        }
    )
    text = (
        f"; this cause is outside the migration, so the run starts again by itself at "
        f"{at:%Y-%m-%dT%H:%M:%SZ} (automatic retry {previous.automatic + 1} of {previous.limit}), "
        f"or at once when Secret {secret} changes"
    )
    requeue = min(WATCH_INTERVAL, backoff(previous.automatic).total_seconds())
    return replace(
        out,
        message=out.message + text,
        updates={**out.updates, "retry": retry},
        requeue_after=requeue,
    )


def cause_outside(ctx: Ctx, out: Outcome) -> bool:
    """Whether the failure in ``out`` happened before any change, for a cause outside the
    migration: its plan or backup step's last pod exited 3 (unavailable: cannot connect,
    authentication failed), as its ``status.stepExit`` says; or its Job reached its deadline
    while its pod could not start (the run was stalled by ``podstart`` for that Job)."""
    step = out.updates.get("failed_step")
    if step not in BEFORE_ANY_CHANGE:
        return False
    job = ctx.job(step)
    if job is None or job.state != "Failed":
        return False
    ended = ctx.base.step_exit
    if ended is not None and ended.job == job.name:
        return ended.exit_code == EXIT_UNAVAILABLE
    stalled = find_condition(ctx.base.conditions, STALLED)
    return (
        stalled is not None
        and stalled.status == "True"
        and stalled.reason in POD_CAUSES
        and f" Job {job.name} " in stalled.message
    )


def _secret_changed(observed: Observed, retry: RetryStatus) -> bool:
    version = observed.secret.version
    return (
        version is not None and retry.secret_version is not None and version != retry.secret_version
    )
