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

from dbmigrate.api.labels import LABEL_DATABASE
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.controller.reconcile import Reconciler
from dbmigrate.decision.gate_rules import lock_candidate, lock_holder
from dbmigrate.decision.lock_scope import UNPLANNED, database_label
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


def database_label_of(where: Cluster, name: str) -> str | None:
    found = where.get(name) or {}
    return ((found.get("metadata") or {}).get("labels") or {}).get(LABEL_DATABASE)


def wait_database_label(where: Cluster, name: str, expected: str, timeout: float = 30) -> None:
    """Until the operator has labelled ``name`` with ``expected`` (a resource that ended while
    the operator was down is labelled by the reconcile of its resume, which may come after the
    test sees it ended)."""
    deadline = time.monotonic() + timeout
    while (found := database_label_of(where, name)) != expected:
        assert time.monotonic() < deadline, f"{name} labelled {found!r}, not {expected!r}"
        time.sleep(0.5)


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
    """The holder is labelled with its database by the operator; then, as a resource from before
    the label existed, it loses the label while the operator is down: the lock still holds
    whether the waiter's gate or the holder's relabelling comes first after the restart (the gate
    reads the unlabelled too; ``test_lock_gate_reads_the_unlabelled`` forces that order)."""
    began = time.monotonic()
    other = Cluster(cluster.kube, f"{cluster.ns}-b")  # the holder's, listed after the waiter's
    other.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other.ns}})
    proc = OperatorProcess(Path(testbed.kubeconfig), [cluster.ns, other.ns], tmp_path / "op.log")
    proc.start()
    cluster.watchdogs.append(proc.assert_alive)
    other.watchdogs.append(proc.assert_alive)
    holder = f"{other.ns}/first"
    try:
        seed_analytics(database_url, rows=50)
        ready_database(cluster, database_url, files=migration_files(5))
        ready_database(other, database_url, files=migration_files(5))
        other.migration("first", sample_spec(verification={"analyze": True}, targetVersion=3))
        holding = other.wait_phase("first", "BackingUp", "Migrating", timeout=90)
        expected = database_label(DatabaseMigrationStatus.model_validate(holding))
        assert database_label_of(other, "first") == expected != UNPLANNED
        cluster.migration("second", sample_spec(verification={"analyze": True}))
        waiting = cluster.wait_phase("second", "WaitingForLock", timeout=90)
        assert waiting["waitingFor"] == holder
        assert holder in waiting["message"]

        # an upgrade from before the label: the holder has none when the operator starts
        proc.stop()  # the step Jobs go on; the status keeps the holding phase meanwhile
        other.kube.patch_metadata(
            "DatabaseMigration", other.ns, "first", {"labels": {LABEL_DATABASE: None}}
        )
        assert database_label_of(other, "first") is None
        proc.start()

        first = other.wait_terminal("first", timeout=180)
        assert first["phase"] == "Succeeded", first.get("message")
        wait_database_label(other, "first", expected)  # labelled again on its reconcile
        second = cluster.wait_terminal("second", timeout=180)
        first_done = datetime.fromisoformat(first["finishedAt"].replace("Z", "+00:00"))
        second_backup = next(j for j in second["jobs"] if j["step"] == "backup")
        started = datetime.fromisoformat(second_backup["createdAt"].replace("Z", "+00:00"))
        assert started >= first_done  # the second touched the database only after the first
        assert not any(j["step"] in ("backup", "apply") for j in waiting["jobs"])
        replans = [j["name"] for j in second["jobs"] if j["step"] == "plan"]
        assert len(replans) >= 2 and replans[1].endswith("-a2"), replans  # planned again
        assert second["phase"] == "Succeeded", second.get("message")
        assert database_label_of(cluster, "second") == expected
        assert history_versions(database_url) == dict.fromkeys(range(1, 6), "applied")
        found = "found among the unlabelled" in proc.log()
        print(f"the waiter's gate met the holder {'un' if found else ''}labelled")
    finally:
        proc.stop()
        print(proc.log()[-20000:])
        kube_for(Path(testbed.kubeconfig)).request("DELETE", f"/api/v1/namespaces/{other.ns}")
    print(f"two resources on one database took {time.monotonic() - began:.1f}s")


def test_lock_gate_reads_the_unlabelled_and_its_own_database_only(cluster: Cluster) -> None:
    """The gate's two label-selected lists, served by the real API server: a holder from before
    the label (none), one labelled with the same database, one with another; no operator runs
    in the namespace, so nothing relabels them meanwhile."""
    shop = {"systemIdentifier": "7301234567890123456", "database": "shop"}
    crm = {**shop, "database": "crm"}
    rows = {  # name: (phase, database, label)
        "legacy": ("Migrating", shop, None),
        "done": ("Succeeded", shop, "same"),
        "elsewhere": ("Migrating", crm, "own"),
        "me": ("WaitingForLock", shop, "same"),
    }
    statuses = {}
    for name, (phase, database, label) in rows.items():
        status = DatabaseMigrationStatus.model_validate({"phase": phase, "database": database})
        statuses[name] = status
        cluster.migration(name, _quick_spec())
        if label is not None:
            cluster.patch(name, {"metadata": {"labels": {LABEL_DATABASE: database_label(status)}}})
        cluster.kube.patch_status(cluster.ns, name, {"phase": phase, "database": database})
    gate = Reconciler(cluster.kube, namespaces=[cluster.ns])
    peers = gate.database_peers(statuses["me"])
    assert sorted(p["metadata"]["name"] for p in peers) == ["done", "legacy", "me"]
    me = lock_candidate(cluster.ns, "me", statuses["me"])
    assert me is not None
    others = [
        c
        for p in peers
        if p["metadata"]["name"] != "me"
        and (
            c := lock_candidate(cluster.ns, p["metadata"]["name"], statuses[p["metadata"]["name"]])
        )
    ]
    assert lock_holder(me, others) == f"{cluster.ns}/legacy"
