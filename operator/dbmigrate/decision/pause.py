"""Pause and resume: while paused, the operator starts no new step for the resource.

A person pauses one resource with the annotation ``dbmigrate.io/pause`` (any non-empty value), or
every resource at once with the operator's ``--paused`` (the chart's ``operator.paused``, for
incident work). A step Job already running finishes: it is not stopped, but what it reported is
not acted on until the pause is lifted, so nothing new starts, not even the next step of a
rollback. The resource says so with the condition ``ReconciliationPaused`` (True, reason
``PauseAnnotation`` or ``OperatorPaused``) and an Event; lifting the pause sets it False
(``Resumed``) with an Event, and the run goes on from where it stood.
"""

from __future__ import annotations

from dbmigrate.api.conditions import RECONCILIATION_PAUSED, Reason, find_condition, set_condition
from dbmigrate.api.labels import PAUSE_ANNOTATION
from dbmigrate.decision.model import Decision, EventSpec, Observed

PAUSED_MESSAGE = {
    Reason.PAUSE_ANNOTATION: f"paused by the annotation {PAUSE_ANNOTATION}: no new step starts "
    "(a running step finishes); remove the annotation to resume",
    Reason.OPERATOR_PAUSED: "the operator runs paused (operator.paused / --paused): no new step "
    "starts anywhere (a running step finishes); unset it to resume",
}
RESUMED_MESSAGE = "resumed: the pause was lifted, the operator goes on"


def pause_reason(annotations: dict[str, str], operator_paused: bool) -> Reason | None:
    """Why the resource is paused (the operator-wide switch first), or None."""
    if operator_paused:
        return Reason.OPERATOR_PAUSED
    if (annotations.get(PAUSE_ANNOTATION) or "").strip():
        return Reason.PAUSE_ANNOTATION
    return None


def hold(observed: Observed) -> Decision | None:
    """The Decision while paused (nothing but the condition), or None when not paused."""
    reason = pause_reason(observed.annotations, observed.operator_paused)
    if reason is None:
        return None
    status, message = observed.status, PAUSED_MESSAGE[reason]
    previous = find_condition(status.conditions, RECONCILIATION_PAUSED)
    if previous is not None and (previous.status, previous.reason) == ("True", reason):
        return Decision(status=status)
    conditions = set_condition(
        status.conditions, RECONCILIATION_PAUSED, "True", reason, message,
        now=observed.now, generation=status.observed_generation,
    )  # fmt: skip
    return Decision(
        status=status.model_copy(update={"conditions": conditions}),
        events=(EventSpec("Normal", reason, message),),
    )


def lift(observed: Observed, decision: Decision) -> Decision:
    """``decision``, plus ReconciliationPaused=False and an Event if a pause was just lifted."""
    previous = find_condition(observed.status.conditions, RECONCILIATION_PAUSED)
    if previous is None or previous.status != "True":
        return decision
    status = decision.status
    conditions = set_condition(
        status.conditions, RECONCILIATION_PAUSED, "False", Reason.RESUMED, RESUMED_MESSAGE,
        now=observed.now, generation=status.observed_generation,
    )  # fmt: skip
    return Decision(
        status=status.model_copy(update={"conditions": conditions}),
        create_job=decision.create_job,
        scale_down=decision.scale_down,
        scale_up=decision.scale_up,
        events=(EventSpec("Normal", Reason.RESUMED, RESUMED_MESSAGE), *decision.events),
        requeue_after=decision.requeue_after,
        delete_jobs=decision.delete_jobs,
        clear_step_keys=decision.clear_step_keys,
    )
