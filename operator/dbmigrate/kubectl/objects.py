"""One DatabaseMigration and what it made, read together: its Jobs, their pods and the Events.

``status``, ``tree``, ``logs`` and ``report`` all show the same family of objects; reading it
here once keeps them in agreement. Jobs are found by the labels every step Job carries
(``api/labels.py``), in run order (creation time, then step order), and each Job's pods by the
``job-name`` label the Job controller puts on them. The run a Job belongs to is its run-id
annotation; its step, generation and attempt are its labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbmigrate import KIND
from dbmigrate.api.labels import (
    LABEL_ATTEMPT,
    LABEL_GENERATION,
    LABEL_ROLLBACK_REQUEST,
    LABEL_STEP,
    RUN_ID_ANNOTATION,
)
from dbmigrate.api.stepnames import STEPS
from dbmigrate.kubectl.client import EVENTS, JOBS, MIGRATIONS, PODS, Client, Obj
from dbmigrate.specs.naming import job_selector

JOB_NAME_LABEL = "job-name"  # set on a Job's pods by the Job controller
ROLLBACK_CHECK = "rollback-check"  # what the check Job of a rollback on demand is shown as


def meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def status_of(obj: Obj) -> dict[str, Any]:
    return obj.get("status") or {}


@dataclass
class StepJob:
    """A step Job with its pods, as the plugin shows it."""

    job: Obj
    pods: list[Obj] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(meta(self.job).get("name", ""))

    @property
    def step(self) -> str:
        """The step the Job runs; a rollback on demand's check Job is ``rollback-check``."""
        labels = meta(self.job).get("labels") or {}
        if LABEL_STEP not in labels and LABEL_ROLLBACK_REQUEST in labels:
            return ROLLBACK_CHECK
        return str(labels.get(LABEL_STEP, "?"))

    @property
    def generation(self) -> str:
        return str((meta(self.job).get("labels") or {}).get(LABEL_GENERATION, "?"))

    @property
    def attempt(self) -> int:
        return int((meta(self.job).get("labels") or {}).get(LABEL_ATTEMPT, "1"))

    @property
    def run_id(self) -> str:
        """The run the Job belongs to (a check Job: the MigrationRollback it checks for)."""
        labels = meta(self.job).get("labels") or {}
        if self.step == ROLLBACK_CHECK:
            return f"migrationrollback/{labels.get(LABEL_ROLLBACK_REQUEST, '?')}"
        return str((meta(self.job).get("annotations") or {}).get(RUN_ID_ANNOTATION, "?"))

    @property
    def state(self) -> str:
        """Complete, Failed, Running (a pod is active) or Pending, from the Job's status."""
        status = status_of(self.job)
        for condition in status.get("conditions") or []:
            if condition.get("status") == "True" and condition.get("type") in (
                "Complete",
                "Failed",
            ):
                return str(condition["type"])
        return "Running" if status.get("active") else "Pending"


def pod_state(pod: Obj) -> str:
    """The pod's phase, or its container's waiting/terminated reason when that says more."""
    status = status_of(pod)
    phase = str(status.get("phase") or "Pending")
    if meta(pod).get("deletionTimestamp"):
        return "Terminating"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state:
            ended = state["terminated"]
            reason = ended.get("reason") or phase
            return f"{reason} (exit {ended.get('exitCode', '?')})"
    return phase


def _order(job: Obj) -> tuple[str, int, str]:
    labels = meta(job).get("labels") or {}
    step = labels.get(LABEL_STEP, "")
    rank = STEPS.index(step) if step in STEPS else len(STEPS)
    return (str(meta(job).get("creationTimestamp") or ""), rank, str(meta(job).get("name")))


def _event_time(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or meta(event).get("creationTimestamp")
        or ""
    )


@dataclass
class Snapshot:
    """The migration, its step Jobs in run order (each with its pods) and the Events about any
    of them, oldest first."""

    migration: Obj
    jobs: list[StepJob]
    events: list[Obj]

    @property
    def name(self) -> str:
        return str(meta(self.migration).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(meta(self.migration).get("namespace", ""))

    @property
    def status(self) -> dict[str, Any]:
        return status_of(self.migration)

    def pods(self) -> list[tuple[StepJob, Obj]]:
        """Every step pod with its Job, in run order (a Job's pods by creation)."""
        return [(job, pod) for job in self.jobs for pod in job.pods]


def read_jobs(kube: Client, name: str) -> list[StepJob]:
    """The step Jobs of migration ``name`` in run order, each with its pods."""
    jobs = sorted(kube.items(JOBS, job_selector(name)), key=_order)
    pods = kube.items(PODS, job_selector(name)) if jobs else []  # pods carry the Job's labels
    by_job: dict[str, list[Obj]] = {}
    for pod in pods:
        owner = (meta(pod).get("labels") or {}).get(JOB_NAME_LABEL, "")
        by_job.setdefault(owner, []).append(pod)
    return [
        StepJob(
            job,
            sorted(
                by_job.get(str(meta(job).get("name")), []),
                key=lambda p: str(meta(p).get("creationTimestamp") or ""),
            ),
        )
        for job in jobs
    ]


def read_events(kube: Client, migration: Obj, jobs: list[StepJob]) -> list[Obj]:
    """Events about the migration, its Jobs and their pods, oldest first."""
    name = str(meta(migration).get("name"))
    found = kube.items(EVENTS, fields=f"involvedObject.kind={KIND},involvedObject.name={name}")
    related = {job.name for job in jobs} | {str(meta(p).get("name")) for j in jobs for p in j.pods}
    if related:
        for event in kube.items(EVENTS):
            involved = event.get("involvedObject") or {}
            if involved.get("kind") in ("Job", "Pod") and involved.get("name") in related:
                found.append(event)
    return sorted(found, key=_event_time)


def snapshot(kube: Client, name: str) -> Snapshot:
    """Read the migration ``name`` (exit 2 when missing) and everything it made."""
    migration = kube.must_get(MIGRATIONS, name)
    jobs = read_jobs(kube, name)
    return Snapshot(migration, jobs, read_events(kube, migration, jobs))
