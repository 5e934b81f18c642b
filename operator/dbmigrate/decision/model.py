"""What the pure state machine reads (``Observed``) and what it returns (``Decision``).

``controller.reconcile`` gathers an ``Observed`` from the API server (the resource, its Jobs,
whether the Secret and ConfigMap exist, which other migration holds the database, the time) and
carries out a ``Decision``. Both are frozen: ``decide`` is a function of its input and nothing else,
so the same observation always gives the same decision, and a restarted operator picks up where it
left off.

``controller.actuator`` carries out a Decision in this order (restart safety depends on it):

1. patch the status with ``status_patch(decision)`` (operator-owned fields only, plus the step
   keys of the previous run cleared when a new run starts);
2. scale down ``scale_down`` (see below), scale up ``scale_up``;
3. create the Job of ``create_job`` (built by ``jobs.build_step_job``; AlreadyExists is success)
   after ensuring its service account, Role, RoleBinding and inline ConfigMap;
4. emit ``events``; delete ``delete_jobs``; reconcile again after ``requeue_after`` seconds.

Scale-down handshake: for each WorkloadRef in ``scale_down`` not yet in
``status.scaledWorkloads``, the actuator reads the workload's current ``spec.replicas`` and
appends ``{kind, name, replicas, restored: false}`` to status.scaledWorkloads *before* scaling it
to 0 (a missing workload is recorded with replicas 0 and a Warning Event). It scales every listed
workload to 0 even when already recorded (idempotent). ``decide`` creates the rollback Job only
once every listed workload is recorded and none of their pods is left (``workload_pods``). For
each ScaledWorkload in ``scale_up`` the actuator sets the workload's replicas back to ``replicas``
and then marks the entry ``restored: true``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.api.labels import LABEL_ATTEMPT, LABEL_GENERATION, LABEL_STEP
from dbmigrate.api.spec import DatabaseMigrationSpec, WorkloadRef
from dbmigrate.api.status import (
    ConditionReason,
    DatabaseMigrationStatus,
    ScaledWorkload,
    Step,
    StepExit,
)
from dbmigrate.api.stepnames import KEY_STEP_EXIT, STEPS
from dbmigrate.api.stepnames import STEP_KEYS as STEP_WIRE_KEYS

JobState = Literal["Running", "Succeeded", "Failed"]
EventType = Literal["Normal", "Warning"]


def status_field(key: str) -> str:
    """The status model's field of a status key as on the wire (``stepExit``: ``step_exit``)."""
    fields = DatabaseMigrationStatus.model_fields
    return next(name for name, info in fields.items() if (info.alias or name) == key)


# the status fields the step Jobs write (api.stepnames), cleared when a new run starts
STEP_KEYS = tuple(status_field(key) for key in (*STEP_WIRE_KEYS, KEY_STEP_EXIT))
OPERATOR_FIELDS = (
    "phase",
    "observed_generation",
    "conditions",
    "message",
    "run_id",
    "target_version",
    "current_version",
    "started_at",
    "finished_at",
    "failed_step",
    "waiting_for",
    "approval",
    "window",
    "jobs",
    "scaled_workloads",
    "notifications",
)


@dataclass(frozen=True)
class JobObservation:
    """A Job of this resource as the Job controller reports it (``attempt``: see ``job_name``)."""

    step: Step
    name: str
    generation: int
    state: JobState
    message: str = ""
    finished_at: datetime | None = None
    attempt: int = 1


@dataclass(frozen=True)
class SecretObservation:
    """Whether the referenced Secret exists and which required keys it lacks (names only)."""

    exists: bool
    missing_keys: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Observed:
    """Everything ``decide`` may look at.

    ``jobs`` holds, per step, the newest-generation (then newest-attempt) Job of this resource
    (``index_jobs`` builds it from a list). ``config_map_ok`` is None unless the source is
    spec.source.configMap. ``lock_holder`` is namespace/name of another migration holding the same
    database (see ``gates.lock_holder``). ``workload_pods``: while a rollback waits to start, the
    pods not yet ended of each workload in spec.rollback.scaleDown, by ``Kind/name``
    (``recovery.needs_workload_pods``). ``run_spec``: the spec kept for the run under way while
    a newer generation waits for it (``pinning``). ``operator_paused``: the operator runs with
    ``--paused`` (``pause``). ``now`` is the only clock decide reads.
    """

    name: str
    namespace: str
    uid: str
    generation: int
    spec: DatabaseMigrationSpec
    status: DatabaseMigrationStatus
    now: datetime
    annotations: dict[str, str] = field(default_factory=dict)
    jobs: dict[Step, JobObservation] = field(default_factory=dict)
    secret: SecretObservation = SecretObservation(exists=True)
    config_map_ok: bool | None = None
    lock_holder: str | None = None
    workload_pods: dict[str, tuple[str, ...]] = field(default_factory=dict)
    run_spec: DatabaseMigrationSpec | None = None
    operator_paused: bool = False  # the operator-wide pause (``pause``)


@dataclass(frozen=True)
class EventSpec:
    """A Kubernetes Event to emit on the resource."""

    type: EventType
    reason: ConditionReason
    message: str


@dataclass(frozen=True)
class Decision:
    """What the operator must do now (see the module docstring for the order)."""

    status: DatabaseMigrationStatus
    create_job: Step | None = None
    scale_down: tuple[WorkloadRef, ...] = ()
    scale_up: tuple[ScaledWorkload, ...] = ()
    events: tuple[EventSpec, ...] = ()
    requeue_after: float | None = None
    delete_jobs: tuple[str, ...] = ()
    clear_step_keys: tuple[str, ...] = ()


def index_jobs(observations: Iterable[JobObservation]) -> dict[Step, JobObservation]:
    """Per step, the Job of the highest generation, then attempt (``Observed.jobs``)."""
    newest: dict[Step, JobObservation] = {}
    for job in observations:
        current = newest.get(job.step)
        if current is None or (job.generation, job.attempt) > (current.generation, current.attempt):
            newest[job.step] = job
    return newest


def observe_job(job: dict[str, Any]) -> JobObservation | None:
    """A JobObservation from a Job object (None when it is not one of our step Jobs)."""
    metadata = job.get("metadata", {})
    labels = metadata.get("labels") or {}
    step, generation = labels.get(LABEL_STEP), labels.get(LABEL_GENERATION)
    if step not in STEPS or generation is None:
        return None
    state, message, finished = job_outcome(job)
    return JobObservation(
        step=step,
        name=metadata.get("name", ""),
        generation=int(generation),
        state=state,
        message=message,
        finished_at=finished,
        attempt=int(labels.get(LABEL_ATTEMPT) or 1),
    )


def job_outcome(job: dict[str, Any]) -> tuple[JobState, str, datetime | None]:
    """(state, message, finished_at) of a Job, from its Complete or Failed condition."""
    state: JobState = "Running"
    message, finished = "", None
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "Failed"):
            state = "Succeeded" if condition["type"] == "Complete" else "Failed"
            reason, text = condition.get("reason") or "", condition.get("message") or ""
            message = f"{reason}: {text}" if reason and text else reason or text
            stamp = condition.get("lastTransitionTime")
            finished = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    return state, message, finished


def settle_with_step_exit(
    jobs: dict[Step, JobObservation], step_exit: StepExit | None
) -> dict[Step, JobObservation]:
    """``jobs``, with a still-Running Job marked Succeeded when its step said it exited 0.

    The Job controller marks a Job Complete a second or more after its pod ends; the step's own
    ``status.stepExit`` (written as its last act, naming its Job) is taken at its word for
    success only. A non-zero exit waits for the Job, whose pod failure policy may retry it.
    """
    if step_exit is None or step_exit.exit_code != EXIT_OK:
        return jobs
    job = jobs.get(step_exit.step)
    if job is None or job.name != step_exit.job or job.state != "Running":
        return jobs
    settled = replace(job, state="Succeeded", finished_at=step_exit.finished_at)
    return {**jobs, step_exit.step: settled}


def status_patch(decision: Decision) -> dict[str, Any]:
    """The merge-patch body of ``/status``: operator-owned fields, and nulls for cleared keys.

    Unset optional fields are sent as null so a value of the previous run is removed; the step
    keys are never sent except as null when ``decision.clear_step_keys`` lists them.
    """
    wire = decision.status.model_dump(
        mode="json", by_alias=True, include=set(OPERATOR_FIELDS), exclude_none=True
    )
    for key in (*OPERATOR_FIELDS, *decision.clear_step_keys):
        wire.setdefault(_alias(key), None)
    return {"status": wire}


def _alias(key: str) -> str:
    return DatabaseMigrationStatus.model_fields[key].alias or key
