"""Argo CD's and Flux's view of live resources: objects captured from the API server while the
operator drives them on the test bed (running, waiting for a manual approval, succeeded, stopped
by the lint policy) are fed to the real Lua health script and to the kstatus program, so a status
the operator actually writes, not only a hand-written one in tests/data/statuses, is judged right.
Captured objects go to the test's temporary folder only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator_harness import (
    TERMINAL,
    Cluster,
    OperatorProcess,
    cluster,
    crd,
    migration_files,
    operator,
    pod_url,
    ready_database,
    sample_spec,
)
from tests.health_checks import (
    SUSPENDED,
    argocd_health,
    build_kstatus,
    expected_argocd_health,
    expected_kstatus,
    kstatus_of_objects,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

Obj = dict[str, Any]
UNSAFE_INLINE = [
    {"name": "001_accounts.sql", "sql": "CREATE TABLE IF NOT EXISTS accounts (id bigint);"},
    {"name": "002_drop_accounts.sql", "sql": "DROP TABLE accounts;"},
]


@pytest.fixture(scope="module")
def kstatus_bin() -> Path:
    binary = build_kstatus()
    if binary is None:
        pytest.skip("Go is not installed: the kstatus check needs it (as the test bed does)")
    return binary


def capture(cluster: Cluster, name: str, check: Callable[[Obj], bool], what: str) -> Obj:
    """The whole live object (as ``kubectl get -o json`` shows it) once ``check`` holds."""
    deadline = time.monotonic() + 90
    last: Obj = {}
    while time.monotonic() < deadline:
        last = cluster.get(name) or {}
        if last and check(last):
            return last
        time.sleep(0.2)
    pytest.fail(f"{cluster.ns}/{name}: no {what} within 90s; last status {last.get('status')}")


def phase_in(*phases: str) -> Callable[[Obj], bool]:
    return lambda obj: (obj.get("status") or {}).get("phase") in phases


def running(obj: Obj) -> bool:
    phase = (obj.get("status") or {}).get("phase")
    return phase is not None and phase not in SUSPENDED and phase not in TERMINAL


def judge(
    captured: dict[str, Obj], kstatus_bin: Path, folder: Path
) -> dict[str, tuple[str, str, str]]:
    """{moment: (Argo CD health, kstatus status, Argo CD message)}, each checked against the rule
    of tests/health_checks.py and every message non-empty."""
    flux = kstatus_of_objects(kstatus_bin, captured, folder)
    assert set(flux) == set(captured)
    out = {}
    for moment, obj in captured.items():
        health, message = argocd_health(obj)
        phase = obj["status"]["phase"]
        assert health == expected_argocd_health(obj), (moment, phase, message)
        assert flux[moment][0] == expected_kstatus(obj), (moment, phase, flux[moment])
        assert message and flux[moment][1] is not None
        out[moment] = (health, flux[moment][0], message)
        print(f"{moment}: phase {phase} -> Argo CD {health}, kstatus {flux[moment][0]}")
    return out


def test_live_statuses_running_approval_success(
    cluster: Cluster,
    operator: OperatorProcess,
    database_url: str,
    kstatus_bin: Path,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    ready_database(cluster, database_url, files=migration_files(1))
    spec = sample_spec(
        verification={"analyze": False}, backup={"enabled": False}, approval={"mode": "Manual"}
    )
    cluster.migration("gated", spec)

    captured = {"running": capture(cluster, "gated", running, "running phase")}
    waiting = capture(cluster, "gated", phase_in("WaitingForApproval"), "approval wait")
    captured["waiting-for-approval"] = waiting
    cluster.annotate("gated", "dbmigrate.io/approve", waiting["status"]["plan"]["planHash"])
    captured["succeeded"] = capture(cluster, "gated", phase_in(*TERMINAL), "terminal phase")
    assert captured["succeeded"]["status"]["phase"] == "Succeeded"

    verdicts = judge(captured, kstatus_bin, tmp_path)
    assert verdicts["running"][:2] == ("Progressing", "InProgress")
    assert verdicts["waiting-for-approval"][:2] == ("Suspended", "InProgress")
    assert verdicts["succeeded"][:2] == ("Healthy", "Current")
    how = waiting["status"]["approval"]["howToApprove"]
    assert how in verdicts["waiting-for-approval"][2]  # Argo CD tells how to approve
    print(f"live health (approval) took {time.monotonic() - began:.1f}s")


def test_live_status_of_a_lint_failure(
    cluster: Cluster,
    operator: OperatorProcess,
    database_url: str,
    kstatus_bin: Path,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    cluster.secret("analytics-db", {"uri": pod_url(database_url)})
    spec = sample_spec(
        source={"inline": UNSAFE_INLINE}, verification={"analyze": False}, backup={"enabled": False}
    )
    cluster.migration("unsafe", spec)

    failed = capture(cluster, "unsafe", phase_in(*TERMINAL), "terminal phase")
    assert failed["status"]["phase"] == "Failed"
    assert failed["status"]["lint"]["passed"] is False

    verdicts = judge({"failed-lint": failed}, kstatus_bin, tmp_path)
    health, flux, message = verdicts["failed-lint"]
    assert (health, flux) == ("Degraded", "Failed")
    assert message.startswith("Failed: ") and "lint" in message.lower()
    print(f"live health (lint failure) took {time.monotonic() - began:.1f}s")
