"""A step pod that cannot start, under a real scheduler and kubelet (the kind tier): a
``spec.jobs.nodeSelector`` no node matches and a ``spec.jobs.image`` that does not exist are
reported within a minute in the scheduler's and the kubelet's own words (status, Stalled=True,
one Warning Event per cause), and fixing the spec replaces the stuck run at once, since a run
whose pod never started has changed nothing. A pod the kubelet cannot build (its Secret gone:
CreateContainerConfigError) is named the same way, and starts when what the kubelet names is
fixed, as docs/conditions.md tells (``StepPodNotStarting``).

On the local test bed these are skipped (``real_kubelet``): it has no scheduler and pulls no
images.
"""

from __future__ import annotations

import time

import pytest

from dbmigrate.controller.kube import path_of
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    operator,
    pod_url,
    sample_spec,
    stalled_by,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

pytestmark = [pytest.mark.real_kubelet, pytest.mark.timeout(300)]

INLINE = [
    {"name": "001_notes.sql", "sql": "CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY);"},
]
NO_SUCH_IMAGE = "dbmigrate-e2e.invalid/no-such-image:0"


def test_unschedulable_and_unpullable_step_pods_are_reported_and_a_fixed_spec_replaces_the_run(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    cluster.secret("pods-db", {"uri": pod_url(database_url)})
    spec = sample_spec(
        database={"secretRef": {"name": "pods-db", "uriKey": "uri"}},
        source={"inline": INLINE},
        backup={"enabled": False},
        verification={"analyze": False, "probes": []},
        jobs={"nodeSelector": {"dbmigrate.io/no-such-node": "true"}},
    )
    cluster.migration("pods", spec)

    # 1. no node matches: the scheduler's words, within a minute, not "plan Job ... is running"
    status = cluster.wait("pods", stalled_by("StepPodUnschedulable"), "Unschedulable", timeout=60)
    stalled = condition(status, "Stalled")["message"]
    assert "nodes are available" in stalled, stalled
    assert "pods-plan-g1" in stalled and "spec.jobs.nodeSelector" in stalled
    assert status["phase"] == "Planning"
    assert condition(status, "Ready")["status"] == "False"
    cluster.wait_event(
        "pods", lambda e: e["type"] == "Warning" and e["reason"] == "StepPodUnschedulable"
    )
    print(f"unschedulable reported after {time.monotonic() - began:.1f}s")

    # 2. the node selector fixed, but an image that does not exist: generation 2 replaces the
    # stuck run at once (its Job is deleted), and the kubelet's pull failure is reported
    cluster.patch("pods", {"spec": {"jobs": {"nodeSelector": None, "image": NO_SUCH_IMAGE}}})
    status = cluster.wait("pods", stalled_by("StepImagePullFailed"), "ImagePull", timeout=60)
    assert status["observedGeneration"] == 2
    pulled = condition(status, "Stalled")["message"]
    assert NO_SUCH_IMAGE in pulled and "pods-plan-g2" in pulled, pulled
    assert "ErrImagePull" in pulled or "ImagePullBackOff" in pulled
    assert "queued" not in status["message"]
    print(f"image pull failure reported after {time.monotonic() - began:.1f}s")

    # 3. the image fixed: generation 3 replaces that run too and goes to the end
    cluster.patch("pods", {"spec": {"jobs": {"image": None}}})
    done = cluster.wait(
        "pods",
        lambda s: s.get("observedGeneration") == 3 and s.get("phase") == "Succeeded",
        "generation 3 Succeeded",
        timeout=120,
    )
    assert condition(done, "Ready")["status"] == "True"
    assert history_versions(database_url) == {1: "applied"}
    names = {j["metadata"]["name"] for j in cluster.jobs("pods")}
    assert "pods-plan-g1" not in names and "pods-plan-g2" not in names  # the stuck Jobs went
    # no Event storm: one Warning per cause, however often the kubelet backed off
    reasons = cluster.wait_event_reasons("pods", {"StepPodUnschedulable", "StepImagePullFailed"})
    assert reasons.count("StepPodUnschedulable") == 1, reasons
    assert reasons.count("StepImagePullFailed") == 1, reasons
    print(f"both fixes took {time.monotonic() - began:.1f}s")


def _label_node(cluster: Cluster, node: str, label: str, value: str | None) -> None:
    body = {"metadata": {"labels": {label: value}}}
    path = f"/api/v1/nodes/{node}"
    cluster.kube.request("PATCH", path, body, content_type="application/merge-patch+json")


def test_a_step_pod_the_kubelet_cannot_build_is_named_and_starts_once_its_cause_is_fixed(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    """The Secret passes the operator's check, then is deleted while the plan pod waits for a
    node; the kubelet that gets the pod cannot build its environment. Creating the Secret again
    (the remedy: "fix what the kubelet's message names") lets the same pod start."""
    began = time.monotonic()
    label = f"dbmigrate.io/podstart-{cluster.ns}"
    uri = {"uri": pod_url(database_url)}
    cluster.secret("start-db", uri)
    spec = sample_spec(
        database={"secretRef": {"name": "start-db", "uriKey": "uri"}},
        source={"inline": INLINE},
        backup={"enabled": False},
        verification={"analyze": False, "probes": []},
        jobs={"nodeSelector": {label: "true"}},
    )
    cluster.migration("start", spec)
    cluster.wait("start", stalled_by("StepPodUnschedulable"), "Unschedulable", timeout=60)
    cluster.kube.request("DELETE", path_of("Secret", cluster.ns, "start-db"))
    nodes = cluster.kube.request("GET", "/api/v1/nodes")["items"]
    workers = [
        n["metadata"]["name"]
        for n in nodes
        if "node-role.kubernetes.io/control-plane" not in n["metadata"].get("labels", {})
    ]
    assert workers, [n["metadata"]["name"] for n in nodes]
    _label_node(cluster, workers[0], label, "true")
    try:
        status = cluster.wait(
            "start", stalled_by("StepPodNotStarting"), "CreateContainerConfigError", timeout=90
        )
        stalled = condition(status, "Stalled")["message"]
        assert "CreateContainerConfigError" in stalled and "start-db" in stalled, stalled
        assert "start-plan-g1" in stalled and status["phase"] == "Planning"
        cluster.wait_event(
            "start", lambda e: e["type"] == "Warning" and e["reason"] == "StepPodNotStarting"
        )
        print(f"the kubelet's config error reported after {time.monotonic() - began:.1f}s")

        cluster.secret("start-db", uri)  # the remedy: what the kubelet's message names
        done = cluster.wait(
            "start", lambda s: s.get("phase") == "Succeeded", "Succeeded", timeout=180
        )
        assert done["observedGeneration"] == 1  # the same run healed: no new generation needed
        assert condition(done, "Stalled")["status"] == "False"
        assert history_versions(database_url) == {1: "applied"}
        print(f"healed after {time.monotonic() - began:.1f}s")
    finally:
        _label_node(cluster, workers[0], label, None)
