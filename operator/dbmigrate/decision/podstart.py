"""A step pod that cannot start is reported, not waited on; a run whose pod never started has
changed nothing.

A step Job whose pod the scheduler cannot place (a ``spec.jobs.nodeSelector`` no node matches, a
PersistentVolumeClaim that does not bind) or whose container the kubelet cannot create (an image
it cannot pull, a missing Secret key in the pod's environment) stays Running until its deadline
(six hours by default) while nothing happens. So while a step's Job runs, ``decide`` looks at
what its pods say (``Observed.step_pods``, built by ``model.observe_step_pods``): a pod stuck for
one of those causes sets Stalled=True in the step's phase, with the scheduler's or kubelet's own
reason and message, and one Warning Event per distinct cause (the message stays the same while
the kubelet alternates between ErrImagePull and ImagePullBackOff, so no Event storm). The run
goes on by itself once the pod starts (a node gets the label, the image is pushed); a pod still
Pending without such a cause is looked at again every ``STARTING_REQUEUE`` seconds.

A run in Planning, BackingUp or Migrating whose step pod never started has changed nothing: a
new generation replaces it at once (``gives_way``), and its stuck Job is deleted
(``superseded_jobs``), instead of queueing behind it for the Job's deadline.
"""

from __future__ import annotations

from dbmigrate.api.conditions import READY, Reason, find_condition
from dbmigrate.api.status import Phase, Step
from dbmigrate.api.stepnames import STEP_APPLY, STEP_BACKUP, STEP_PLAN
from dbmigrate.decision.model import (
    CONTAINER_START_REASONS,
    IMAGE_PULL_REASONS,
    UNSCHEDULABLE,
    JobObservation,
    PodWaiting,
    StepPods,
)
from dbmigrate.decision.outcome import Ctx, Outcome
from dbmigrate.decision.transitions import STALLED_REQUEUE, STEP_PHASES

STARTING_REQUEUE = 10.0  # a step pod still Pending without a known cause: look again this soon
QUEUED_SUFFIX = " (generation "  # what ``outcome.render`` appends while a generation is queued
# the steps whose Job, if its pod never started, leaves the database as it was before the run
GIVES_WAY: dict[Phase, Step] = {
    "Planning": STEP_PLAN,
    "BackingUp": STEP_BACKUP,
    "Migrating": STEP_APPLY,
}


def stuck_pod(ctx: Ctx, step: Step, job: JobObservation) -> Outcome | None:
    """The outcome for a Running step Job whose pod has not started: Stalled with the pod's
    cause, or working with a short requeue while it is still starting; None once it started."""
    pods = ctx.observed.step_pods.get(job.name)
    if pods is None or pods.started:
        return None
    phase = STEP_PHASES[step]
    if pods.waiting is None:
        message = f"{step} Job {job.name} is running; its pod has not started yet"
        return Outcome.working(phase=phase, message=message, requeue_after=STARTING_REQUEUE)
    reason = _reason(pods.waiting)
    message = _sticky(ctx, reason, job, _message(ctx, step, job, pods.waiting))
    return Outcome.stalled(
        phase=phase, reason=reason, message=message, requeue_after=STALLED_REQUEUE
    )


def gives_way(ctx: Ctx) -> bool:
    """Whether the run's current step Job never started a pod, for a cause the pods name, in a
    phase where that means nothing was changed (so a new generation may replace the run)."""
    return _never_started(ctx) is not None


def superseded_jobs(ctx: Ctx) -> tuple[str, ...]:
    """The Job to delete when a new generation replaces a run whose pod never started."""
    job = _never_started(ctx)
    return () if job is None else (job.name,)


def _never_started(ctx: Ctx) -> JobObservation | None:
    step = GIVES_WAY.get(ctx.base.phase)
    job = None if step is None else ctx.job(step)
    if job is None or job.state != "Running":
        return None
    pods: StepPods | None = ctx.observed.step_pods.get(job.name)
    if pods is None or pods.started or pods.waiting is None:
        return None
    return job


def _reason(waiting: PodWaiting) -> Reason:
    if waiting.reason == UNSCHEDULABLE:
        return Reason.STEP_POD_UNSCHEDULABLE
    if waiting.reason in IMAGE_PULL_REASONS:
        return Reason.STEP_IMAGE_PULL_FAILED
    assert waiting.reason in CONTAINER_START_REASONS
    return Reason.STEP_POD_NOT_STARTING


def _message(ctx: Ctx, step: Step, job: JobObservation, waiting: PodWaiting) -> str:
    if waiting.reason == UNSCHEDULABLE:
        what, fix = "cannot be scheduled", "spec.jobs.nodeSelector and spec.jobs.tolerations"
    elif waiting.reason in IMAGE_PULL_REASONS:
        what = (
            f"cannot pull its image {waiting.image}" if waiting.image else "cannot pull its image"
        )
        fix = "spec.jobs.image (or the operator's --job-image)"
    else:
        what, fix = "cannot start its container", "the Secret, ConfigMap and volumes it uses"
    words = f"{waiting.reason}: {waiting.message}" if waiting.message else waiting.reason
    if GIVES_WAY.get(STEP_PHASES[step]) == step:
        then = "a fixed spec replaces this run at once, as nothing was changed yet"
    else:
        then = "a fixed spec starts when this run ends"
    return (
        f"the {step} Job {job.name} is not running: its pod {waiting.pod} {what} ({words}). "
        f"Check {fix}; the run goes on by itself once the pod starts, and {then}"
    )


def _sticky(ctx: Ctx, reason: Reason, job: JobObservation, message: str) -> str:
    """The message already shown for this cause and Job, if it is the same cause: the kubelet
    rewords it on every back-off, which would otherwise post an Event each time."""
    previous = find_condition(ctx.base.conditions, READY)
    if previous is None or previous.reason != reason or f" Job {job.name} " not in previous.message:
        return message
    return previous.message.split(QUEUED_SUFFIX)[0]
