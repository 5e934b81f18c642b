"""Reading the pods of a migration's step Jobs, for what they say about starting.

The Job controller reports a Job whose pod cannot be scheduled, or whose image cannot be pulled,
as simply active until the Job's deadline; only the pod says why. So the reconcile lists the pods
of this migration's unfinished step Jobs (one list call, by the Jobs' labels, only while such a
Job exists) and hands each Job with its pods to the pure ``decision.model.observe_step_pods``.
"""

from __future__ import annotations

from collections.abc import Iterable

from dbmigrate.controller.kube import Kube, Obj
from dbmigrate.decision.model import JobObservation, StepPods, observe_step_pods
from dbmigrate.specs.naming import job_selector


def observe_unfinished_step_pods(
    kube: Kube, namespace: str, name: str, owned: Iterable[Obj], current: Iterable[JobObservation]
) -> dict[str, StepPods]:
    """By Job name, ``StepPods`` of each of the ``current`` Jobs (the newest per step) that
    has not succeeded; ``owned`` are the Job objects themselves."""
    wanted = {job.name for job in current if job.state != "Succeeded"}
    jobs = [job for job in owned if job["metadata"]["name"] in wanted]
    if not jobs:
        return {}
    by_job: dict[str, list[Obj]] = {}
    for pod in kube.list("Pod", namespace, job_selector(name)):
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Job" and ref.get("name") in wanted:
                by_job.setdefault(ref["name"], []).append(pod)
    return {
        job["metadata"]["name"]: observe_step_pods(job, by_job.get(job["metadata"]["name"], []))
        for job in jobs
    }
