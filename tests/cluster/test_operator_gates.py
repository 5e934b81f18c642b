"""The gates end to end: manual approval bound to the plan hash (a stale approval is refused, the
command of ``status.approval.howToApprove`` approves), a maintenance window that is closed and then
opens, and two resources on one database serialised.
"""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    kube_for,
    migration_files,
    operator,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

APPROVE = "dbmigrate.io/approve"
STALE_HASH = "0" * 64


def _quick_spec(**overrides: Any) -> dict[str, Any]:
    """The sample without probes and without a backup, to keep the scenario short."""
    return sample_spec(verification={"analyze": False}, backup={"enabled": False}, **overrides)


def test_manual_approval_refuses_a_stale_hash_then_runs(
    testbed: Any, cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    ready_database(cluster, database_url, files=migration_files(2))
    cluster.migration("approve-me", _quick_spec(approval={"mode": "Manual"}))

    waiting = cluster.wait_phase("approve-me", "WaitingForApproval", timeout=90)
    plan_hash = waiting["plan"]["planHash"]
    assert waiting["approval"]["required"] is True
    assert waiting["approval"]["planHash"] == plan_hash
    assert plan_hash in waiting["approval"]["howToApprove"]
    assert condition(waiting, "Ready")["status"] == "False"
    assert history_versions(database_url) == {}

    cluster.annotate("approve-me", APPROVE, STALE_HASH)  # an approval of an older plan
    refused = cluster.wait(
        "approve-me",
        lambda s: "approval refused" in (s.get("message") or ""),
        "the stale approval to be refused",
        timeout=30,
    )
    assert refused["phase"] == "WaitingForApproval"
    assert STALE_HASH in refused["message"] and plan_hash in refused["message"]
    cluster.wait_event("approve-me", lambda e: e["reason"] == "ApprovalRefused")
    time.sleep(4)  # more than one resync: still nothing runs
    assert [j["metadata"]["name"] for j in cluster.jobs("approve-me")] == ["approve-me-plan-g1"]

    # WaitingForApproval's remedy: the command the status gives, run as a person pastes it
    command = shlex.split(waiting["approval"]["howToApprove"])
    assert command[0] == "kubectl" and plan_hash in waiting["approval"]["howToApprove"], command
    approved = testbed.kubectl(*command[1:])
    assert approved.returncode == 0, approved.stdout + approved.stderr
    done = cluster.wait_terminal("approve-me", timeout=120)
    assert done["phase"] == "Succeeded", done.get("message")
    assert done["approval"]["approvedHash"] == plan_hash and done["approval"]["approvedAt"]
    assert history_versions(database_url) == {1: "applied", 2: "applied"}

    print(f"manual approval scenario took {time.monotonic() - began:.1f}s")


def _window_opening(now: datetime, lead: float = 30.0) -> datetime:
    """The next minute boundary at least ``lead`` seconds away (the plan runs meanwhile)."""
    opening = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (opening - now).total_seconds() < lead:
        opening += timedelta(minutes=1)
    return opening


def test_maintenance_window_closed_then_open(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    opening = _window_opening(datetime.now(UTC))
    window = {
        "schedule": f"{opening.minute} {opening.hour} * * *",
        "duration": "10m",
        "timeZone": "UTC",
        "appliesTo": "Always",
    }
    ready_database(cluster, database_url, files=migration_files(2))
    cluster.migration("windowed", _quick_spec(maintenanceWindow=window))

    waiting = cluster.wait_phase("windowed", "WaitingForWindow", timeout=60)
    assert waiting["window"]["required"] is True and waiting["window"]["open"] is False
    next_open = datetime.fromisoformat(waiting["window"]["nextOpen"].replace("Z", "+00:00"))
    assert next_open == opening
    assert opening.isoformat()[:16] in waiting["message"]  # says when it opens
    assert history_versions(database_url) == {}

    done = cluster.wait_terminal("windowed", timeout=150)
    assert done["phase"] == "Succeeded", done.get("message")
    apply_job = next(j for j in done["jobs"] if j["step"] == "apply")
    created = datetime.fromisoformat(apply_job["createdAt"].replace("Z", "+00:00"))
    assert created >= opening  # nothing changed before the window opened
    assert history_versions(database_url) == {1: "applied", 2: "applied"}
    print(f"maintenance window scenario took {time.monotonic() - began:.1f}s")


def test_two_resources_on_one_database_are_serialised(
    testbed: Any, cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    other = Cluster(cluster.kube, f"{cluster.ns}-b")
    other.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other.ns}})
    proc = OperatorProcess(Path(testbed.kubeconfig), [cluster.ns, other.ns], tmp_path / "op.log")
    proc.start()
    cluster.watchdogs.append(proc.assert_alive)
    other.watchdogs.append(proc.assert_alive)
    try:
        seed_analytics(database_url, rows=50)
        ready_database(cluster, database_url, files=migration_files(5))
        ready_database(other, database_url, files=migration_files(5))
        cluster.migration("first", sample_spec(verification={"analyze": True}, targetVersion=3))
        cluster.wait_phase("first", "BackingUp", "Migrating", timeout=90)
        other.migration("second", sample_spec(verification={"analyze": True}))

        waiting = other.wait_phase("second", "WaitingForLock", timeout=90)
        assert waiting["waitingFor"] == f"{cluster.ns}/first"
        assert f"{cluster.ns}/first" in waiting["message"]
        assert not any(j["step"] in ("backup", "apply") for j in waiting["jobs"])

        first = cluster.wait_terminal("first", timeout=180)
        assert first["phase"] == "Succeeded", first.get("message")
        second = other.wait_terminal("second", timeout=180)
        first_done = datetime.fromisoformat(first["finishedAt"].replace("Z", "+00:00"))
        second_backup = next(j for j in second["jobs"] if j["step"] == "backup")
        started = datetime.fromisoformat(second_backup["createdAt"].replace("Z", "+00:00"))
        assert started >= first_done  # the second touched the database only after the first
        replans = [j["name"] for j in second["jobs"] if j["step"] == "plan"]
        assert len(replans) >= 2 and replans[1].endswith("-a2"), replans  # planned again
        assert second["phase"] == "Succeeded", second.get("message")
        assert history_versions(database_url) == dict.fromkeys(range(1, 6), "applied")
    finally:
        proc.stop()
        print(proc.log()[-20000:])
        kube_for(Path(testbed.kubeconfig)).request("DELETE", f"/api/v1/namespaces/{other.ns}")
    print(f"two resources on one database took {time.monotonic() - began:.1f}s")
