"""``kubectl dbmigrate logs -f`` against a scripted series of snapshots: the run may end before
the kubelet reports its last pod as started, and the follower must still print that pod."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import pytest

from dbmigrate.api.labels import LABEL_STEP
from dbmigrate.kubectl import logs
from dbmigrate.kubectl.objects import Snapshot, StepJob

pytestmark = pytest.mark.unit


def _pod(name: str, phase: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": phase, **status}}


def _snapshot(phase: str, pods: dict[str, dict[str, Any]]) -> Snapshot:
    jobs = [
        StepJob({"metadata": {"name": f"shop-{step}-g1", "labels": {LABEL_STEP: step}}}, [pod])
        for step, pod in pods.items()
    ]
    migration = {
        "metadata": {"name": "shop", "generation": 1},
        "status": {"phase": phase, "observedGeneration": 1},
    }
    return Snapshot(migration, jobs, [])


class FakeKube:
    """Serves each pod's log; records which were read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def pod_log(self, name: str, container: str) -> str:
        self.read.append(name)
        return f"log of {name}\n"

    def follow_log(self, name: str, container: str) -> Iterator[str]:
        self.read.append(name)
        yield f"log of {name}\n"

    def close(self) -> None:
        pass


def _follow(monkeypatch: pytest.MonkeyPatch, snaps: list[Snapshot]) -> tuple[int, FakeKube]:
    kube = FakeKube()
    series = iter(snaps)
    monkeypatch.setattr(logs, "connect", lambda args: kube)
    monkeypatch.setattr(logs, "snapshot", lambda client, name: next(series))
    monkeypatch.setattr(logs.time, "sleep", lambda seconds: None)
    args = argparse.Namespace(name="shop", step=None, follow=True)
    return logs.run(args), kube


def test_a_run_that_ended_before_its_last_pod_was_reported_started_still_prints_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    done = {"plan": _pod("p", "Succeeded"), "apply": _pod("a", "Succeeded")}
    snaps = [
        _snapshot("Succeeded", {**done, "verify": _pod("v", "Pending")}),
        _snapshot("Succeeded", {**done, "verify": _pod("v", "Succeeded")}),
    ]
    code, kube = _follow(monkeypatch, snaps)
    assert code == 0
    assert kube.read == ["p", "a", "v"]
    assert "==> step verify: pod v" in capsys.readouterr().out


def test_a_pod_that_cannot_start_in_an_ended_run_is_named_without_waiting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pulling = {"containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    snaps = [
        _snapshot(
            "Failed", {"plan": _pod("p", "Succeeded"), "apply": _pod("a", "Pending", **pulling)}
        )
    ]
    code, kube = _follow(monkeypatch, snaps)
    assert code == 0
    assert kube.read == ["p"]
    out = capsys.readouterr().out
    assert "==> step apply: pod a" in out and "never started" in out


def test_a_pod_still_being_created_in_an_ended_run_is_waited_for_then_given_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    creating = {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}
    snap = _snapshot("Succeeded", {"verify": _pod("v", "Pending", **creating)})
    clock = iter(range(0, 1000, 20))
    monkeypatch.setattr(logs.time, "monotonic", lambda: float(next(clock)))
    code, kube = _follow(monkeypatch, [snap] * 10)
    assert code == 0 and kube.read == []
    assert "never started" in capsys.readouterr().out
