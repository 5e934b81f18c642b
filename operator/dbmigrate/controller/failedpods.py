"""What the pod of a failed step Job said when it ended, read from the API server.

A failed Job only carries the Job controller's reason ("BackoffLimitExceeded", "PodFailurePolicy");
why the step failed is in its pods: the step writes its error as its container's termination
message (``runner.termination``), and a container that crashed before it could has the end of
its log there instead (``terminationMessagePolicy: FallbackToLogsOnError``). ``with_pod_reports``
adds the exit code and that message of a failed Job's last failed pod to its ``JobObservation``,
so ``decide`` (pure) can say what went wrong in the step's own words. The pods are found by the
label the Job controller puts on them, and only for a failed Job of a run not yet ended.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.api.labels import JOB_NAME_LABEL
from dbmigrate.api.status import Step
from dbmigrate.controller.kube import Kube
from dbmigrate.decision.model import JobObservation
from dbmigrate.specs.jobs import CONTAINER

MAX_MESSAGE = 2048  # of a termination message, as the status shows it


@dataclass(frozen=True)
class PodEnd:
    """How a step pod's container ended: its exit code and termination message."""

    exit_code: int | None
    message: str
    finished_at: str


def container_end(pod: dict[str, Any]) -> PodEnd | None:
    """The step container's terminated state in ``pod`` (None while it has not ended)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER:
            continue
        ended = (status.get("state") or {}).get("terminated") or (
            (status.get("lastState") or {}).get("terminated")
        )
        if ended:
            code = ended.get("exitCode")
            message = (ended.get("message") or "").strip()[-MAX_MESSAGE:]
            return PodEnd(
                code if isinstance(code, int) else None, message, ended.get("finishedAt") or ""
            )
    return None


def last_failure(pods: Iterable[dict[str, Any]]) -> PodEnd | None:
    """The latest end of a step container that failed (a non-zero exit) among ``pods``."""
    ends = [end for end in (container_end(pod) for pod in pods) if end and end.exit_code != EXIT_OK]
    return max(ends, key=lambda end: end.finished_at, default=None)


def with_pod_reports(
    kube: Kube, namespace: str, jobs: dict[Step, JobObservation]
) -> dict[Step, JobObservation]:
    """``jobs`` with each failed Job's last failed pod's exit code and termination message."""
    out = dict(jobs)
    for step, job in jobs.items():
        if job.state != "Failed":
            continue
        end = last_failure(kube.list("Pod", namespace, f"{JOB_NAME_LABEL}={job.name}"))
        if end is not None:
            out[step] = replace(job, exit_code=end.exit_code, termination_message=end.message)
    return out
