"""A step pod that cannot start is reported, not waited on (``decision.podstart``), and a run
whose step pod never started gives way to a new generation at once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dbmigrate.api.conditions import find_condition
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import (
    Observed,
    PodWaiting,
    StepPods,
    observe_pod_waiting,
    observe_step_pods,
)
from tests.unit.test_decide import obs

pytestmark = pytest.mark.unit

SCHEDULER = (
    "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/"
    "control-plane: }, 2 node(s) didn't match Pod's node affinity/selector."
)


def pod(name: str = "orders-plan-g1-x", **status: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "step", "image": "dbmigrate:nope"}]}
    return {
        "metadata": {"name": name, "creationTimestamp": "2024-06-01T11:59:00Z"},
        "spec": spec,
        "status": {"phase": "Pending", **status},
    }


def unschedulable() -> dict[str, Any]:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": SCHEDULER,
    }
    return pod(conditions=[condition])


def waiting(reason: str, message: str) -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}}
    return pod(containerStatuses=[{"name": "step", "state": state, "restartCount": 0}])


def job(name: str = "orders-plan-g1", **counts: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"active": 1, **counts}}


def test_the_scheduler_and_the_kubelet_are_quoted() -> None:
    assert observe_pod_waiting(unschedulable()) == PodWaiting(
        "orders-plan-g1-x", "Unschedulable", SCHEDULER
    )
    pulled = observe_pod_waiting(waiting("ImagePullBackOff", 'Back-off pulling image "x"'))
    assert pulled == PodWaiting(
        "orders-plan-g1-x", "ImagePullBackOff", 'Back-off pulling image "x"', "dbmigrate:nope"
    )
    config = observe_pod_waiting(waiting("CreateContainerConfigError", 'secret "db" not found'))
    assert config is not None and config.reason == "CreateContainerConfigError"
    assert config.image is None
    # starting normally is no cause
    assert observe_pod_waiting(waiting("ContainerCreating", "")) is None
    assert observe_pod_waiting(pod()) is None


def test_a_pod_that_ran_or_a_job_that_counts_an_ended_pod_has_started() -> None:
    stuck = observe_step_pods(job(), [unschedulable()])
    assert stuck == StepPods(
        "orders-plan-g1", started=False, waiting=observe_pod_waiting(unschedulable())
    )
    running = pod(phase="Running")
    assert observe_step_pods(job(), [running]).started
    restarted = waiting("ImagePullBackOff", "x")
    restarted["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 3}}
    assert observe_step_pods(job(), [restarted]).started
    # a failed pod may be gone: the Job's count says one ended
    assert observe_step_pods(job(failed=1), [unschedulable()]).started
    assert observe_step_pods(job(failed=1), [unschedulable()]).waiting is None


def with_pods(observed: Observed, job_name: str, *pods: dict[str, Any]) -> Observed:
    pods_seen = observe_step_pods(job(job_name), list(pods))
    return replace(observed, step_pods={job_name: pods_seen})


def test_an_unschedulable_plan_pod_stalls_the_run_with_the_schedulers_words() -> None:
    observed = with_pods(
        obs("Planning", jobs={"plan": "Running"}), "orders-plan-g1", unschedulable()
    )
    decision = decide(observed)
    status = decision.status
    assert status.phase == "Planning"
    stalled = find_condition(status.conditions, "Stalled")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == "StepPodUnschedulable"
    assert SCHEDULER in stalled.message and "orders-plan-g1-x" in stalled.message
    assert "spec.jobs.nodeSelector" in (status.message or "")
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "StepPodUnschedulable")]
    assert decision.requeue_after == 30.0 and decision.create_job is None


def test_image_pull_back_off_posts_one_event_per_cause_not_per_back_off() -> None:
    first = with_pods(
        obs("Migrating", jobs={"apply": "Running"}),
        "orders-apply-g1",
        waiting("ErrImagePull", 'failed to pull image "dbmigrate:nope": not found'),
    )
    decided = decide(first)
    assert [e.reason for e in decided.events] == ["StepImagePullFailed"]
    assert "dbmigrate:nope" in (decided.status.message or "")
    assert "ErrImagePull" in (decided.status.message or "")
    # the kubelet backs off and rewords: the same cause, no new Event, the same message
    again = with_pods(
        replace(first, status=decided.status),
        "orders-apply-g1",
        waiting("ImagePullBackOff", 'Back-off pulling image "dbmigrate:nope"'),
    )
    later = decide(again)
    assert later.events == ()
    assert later.status.message == decided.status.message
    # once the image is there, the pod runs and the run is working again
    started = with_pods(
        replace(first, status=later.status), "orders-apply-g1", pod(phase="Running")
    )
    healed = decide(started)
    healed_stall = find_condition(healed.status.conditions, "Stalled")
    assert healed_stall is not None and healed_stall.status == "False"
    assert healed.status.phase == "Migrating"


def test_a_pod_still_pending_without_a_cause_is_looked_at_again_soon() -> None:
    observed = with_pods(obs("Planning", jobs={"plan": "Running"}), "orders-plan-g1", pod())
    decision = decide(observed)
    assert decision.requeue_after == 10.0
    stalled = find_condition(decision.status.conditions, "Stalled")
    assert stalled is not None and stalled.status == "False"


@pytest.mark.parametrize(
    ("phase", "step"), [("Planning", "plan"), ("BackingUp", "backup"), ("Migrating", "apply")]
)
def test_a_new_generation_replaces_a_run_whose_pod_never_started(phase: str, step: str) -> None:
    name = f"orders-{step}-g1"
    observed = with_pods(obs(phase, jobs={step: "Running"}, generation=2), name, unschedulable())
    decision = decide(observed)
    assert decision.status.phase == "Planning"
    assert decision.status.observed_generation == 2
    assert decision.create_job == "plan"
    assert name in decision.delete_jobs


@pytest.mark.parametrize(
    ("phase", "step", "pods"),
    [
        ("Migrating", "apply", [pod(phase="Running")]),  # it runs: it may change the database
        ("Migrating", "apply", [pod()]),  # no cause yet: it may start any moment
        ("Verifying", "verify", [unschedulable()]),  # the apply before it changed the database
    ],
)
def test_a_run_that_may_have_changed_something_queues_the_new_generation(
    phase: str, step: str, pods: list[dict[str, Any]]
) -> None:
    name = f"orders-{step}-g1"
    observed = with_pods(obs(phase, jobs={step: "Running"}, generation=2), name, *pods)
    decision = decide(observed)
    assert decision.status.observed_generation == 1
    assert decision.status.phase == phase
    assert decision.delete_jobs == ()
    assert "generation 2 is queued" in (decision.status.message or "")
