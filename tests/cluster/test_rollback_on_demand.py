"""Rollback on demand and pause/resume, end to end on the test bed: a migration paused and
resumed at a step boundary (by the command docs/conditions.md gives), then rolled back on demand
after it succeeded: a request made while the run was under way is refused, and a new one once it
ended runs; the dry run first, refused without confirmation when rows were written since the
backup, run once confirmed (the command of ``status.howToConfirm``; the application scaled down
and back), the data proven identical to before the migration, and the request kept as the audit
record. Refusals name their cause. A new generation then applies the migration again.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

import psycopg
import pytest

from dbmigrate import API_GROUP, API_VERSION
from dbmigrate.api.labels import PAUSE_ANNOTATION, ROLLBACK_ANNOTATION
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    deployment,
    fingerprint,
    history_versions,
    indexes,
    migration_files,
    operator,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name


def _request(cluster: Cluster, name: str, **spec: Any) -> None:
    cluster.create(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "MigrationRollback",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def _request_status(cluster: Cluster, name: str) -> dict[str, Any]:
    found = cluster.kube.get("MigrationRollback", cluster.ns, name) or {}
    return found.get("status") or {}


def _wait_request(cluster: Cluster, name: str, *phases: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = _request_status(cluster, name)
        if status.get("phase") in phases:
            return status
        time.sleep(0.5)
    raise AssertionError(f"request {name} never reached {phases}: {status}")


def _kubectl(testbed: Any, command: str) -> None:
    """A ``kubectl ...`` command line run as a person pastes it (the test bed's kubeconfig)."""
    argv = shlex.split(command)
    assert argv[0] == "kubectl", command
    done = testbed.kubectl(*argv[1:])
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


def _paused_and_resumed(testbed: Any, cluster: Cluster, name: str) -> None:
    """Pause the run once its first step Job exists: nothing new starts while paused (the running
    step finishes), then resume it as docs/conditions.md says (PauseAnnotation's remedy)."""
    cluster.wait(name, lambda s: bool(s.get("jobs")), "the first step Job", timeout=60)
    cluster.annotate(name, PAUSE_ANNOTATION, "incident-42")
    held = cluster.wait(
        name,
        lambda s: condition(s, "ReconciliationPaused").get("status") == "True",
        "ReconciliationPaused=True",
        timeout=30,
    )
    assert condition(held, "ReconciliationPaused")["reason"] == "PauseAnnotation"
    jobs = {j["metadata"]["name"] for j in cluster.jobs(name)}
    time.sleep(7)  # two resyncs (3 s) and the running step's end
    assert cluster.status(name)["phase"] == held["phase"]
    assert {j["metadata"]["name"] for j in cluster.jobs(name)} == jobs, "a step started paused"
    _kubectl(testbed, f"kubectl annotate dbm/{name} {PAUSE_ANNOTATION}- -n {cluster.ns}")
    assert PAUSE_ANNOTATION not in ((cluster.get(name) or {})["metadata"].get("annotations") or {})
    cluster.wait(
        name,
        lambda s: condition(s, "ReconciliationPaused").get("status") == "False",
        "ReconciliationPaused=False (Resumed)",
        timeout=30,
    )
    # each Event is posted just after the status patch that flipped the condition: wait for it
    cluster.wait_event(name, lambda e: e["reason"] == "PauseAnnotation")
    cluster.wait_event(name, lambda e: e["reason"] == "Resumed")


NOTES = "CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY, body text);"


@pytest.mark.local_testbed(
    reason="its web Deployment has no runnable image; on kind, "
    "test_rollback_on_demand_scales_a_real_deployment_down_and_back runs a real one"
)
def test_pause_then_rollback_on_demand(
    testbed: Any, cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    seed_analytics(database_url, rows=60)
    before = fingerprint(database_url)
    indexes_before = indexes(database_url)
    files = {**migration_files(1), "002_notes.sql": NOTES}
    ready_database(cluster, database_url, files=files)
    web = deployment("web", 2, {"containers": [{"name": "web", "image": "example/web:1"}]})
    cluster.create(web)
    spec = sample_spec(
        verification={"analyze": True},
        rollback={
            "strategy": "DropCreatedObjects",
            "scaleDown": [{"kind": "Deployment", "name": "web"}],
        },
    )
    cluster.migration("orders", spec)
    _paused_and_resumed(testbed, cluster, "orders")
    # a request while the run is under way: refused, by name (RollbackRefused)
    _request(cluster, "too-early", migration="orders")
    early = _wait_request(cluster, "too-early", "Refused", "Planned", "Running", "Failed")
    assert early["phase"] == "Refused", early
    assert "has not finished" in early["message"] and "then ask again" in early["message"]
    assert condition(early, "Stalled")["reason"] == "RollbackRefused"
    done = cluster.wait_terminal("orders", timeout=180)
    assert done["phase"] == "Succeeded", done.get("message")
    # its remedy: the cause fixed (the run ended), a new request: the ones below run
    assert done["backup"]["walLsn"] and done["backup"]["tableCounters"]

    # refusals that need no database: a migration that does not exist
    _request(cluster, "nowhere", migration="no-such-migration")
    refused = _wait_request(cluster, "nowhere", "Refused", timeout=30)
    assert "DatabaseMigration no-such-migration was not found" in refused["message"]

    # dry run first (of a restore): the plan and the data-loss check, nothing changed
    _request(cluster, "look", migration="orders", strategy="RestoreBackup", dryRun=True)
    planned = _wait_request(cluster, "look", "Planned", "Refused", "Failed")
    assert planned["phase"] == "Planned", planned.get("message")
    plan = planned["plan"]
    assert plan["strategy"] == "RestoreBackup" and plan["versions"] == ["1", "2"]
    assert plan["restore"]["sha256"] == done["backup"]["sha256"]
    assert plan["workloads"] == [{"kind": "Deployment", "name": "web", "from": 2, "to": 0}]
    assert planned["dataLoss"]["checked"] is True and planned["dataLoss"]["lossFound"] is False
    assert condition(planned, "Ready")["reason"] == "RollbackPlanned"
    assert cluster.status("orders")["phase"] == "Succeeded"

    # the application writes into the table the run created: dropping it would lose that
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO notes VALUES (1, 'kept?'), (2, 'kept?')")
    _request(cluster, "undo", migration="orders", reason="p99 latency doubled", requestedBy="alice")
    waiting = _wait_request(cluster, "undo", "AwaitingConfirmation", "Running", "Refused")
    assert waiting["phase"] == "AwaitingConfirmation", waiting.get("message")
    assert waiting["confirmRequired"] is True and waiting["dataLoss"]["lossFound"] is True
    assert waiting["dataLoss"]["tables"] == [{"table": "public.notes", "rows": 2}]
    assert waiting["howToConfirm"].startswith("kubectl patch migrationrollbacks undo")
    assert condition(waiting, "Stalled")["reason"] == "ConfirmationRequired"
    time.sleep(4)
    assert cluster.status("orders")["phase"] == "Succeeded"  # nothing ran

    _kubectl(testbed, waiting["howToConfirm"])  # ConfirmationRequired's remedy, as given
    ended = _wait_request(cluster, "undo", "Succeeded", "Failed", "Refused", timeout=120)
    assert ended["phase"] == "Succeeded", ended.get("message")
    assert condition(ended, "Ready")["reason"] == "RollbackSucceeded"
    # the request's way there, each step an Event (RollbackPlanning, RollbackRunning: wait)
    told = {"RollbackPlanning", "ConfirmationRequired", "RollbackRunning", "RollbackSucceeded"}
    cluster.wait_event_reasons("undo", told)
    rolled = cluster.status("orders")
    assert rolled["phase"] == "RolledBack" and rolled["rollbackRequest"] == "undo"
    assert condition(rolled, "Stalled")["reason"] == "RollbackRequested"
    assert condition(rolled, "RolledBack")["reason"] == "DropCreatedObjects"
    assert fingerprint(database_url) == before  # notes (and its rows, as confirmed) are gone
    assert indexes(database_url) == indexes_before
    assert history_versions(database_url)[2] == "rolled_back"
    assert cluster.kube.replicas("Deployment", cluster.ns, "web") == 2  # scaled back

    # the audit record: who, when, why, what was done, the evidence
    assert ended["requestedBy"] == "alice" and ended["requestedAt"] and ended["finishedAt"]
    evidence = ended["evidence"]
    assert evidence["verified"] is True and evidence["rollback"]["strategy"] == "dropCreatedObjects"
    assert evidence["workloadsRestored"] == [
        {"kind": "Deployment", "name": "web", "replicas": 2, "restored": True}
    ]
    time.sleep(4)  # it stays rolled back: the same generation does not run again by itself
    assert cluster.status("orders")["phase"] == "RolledBack"

    # nothing left to roll back: the annotation alias makes a request, which is refused by name
    cluster.annotate("orders", ROLLBACK_ANNOTATION, "again-1")
    echoed = cluster.wait(
        "orders", lambda s: s.get("lastHandledRollback") == "again-1", "the token echoed", 30
    )
    assert echoed["phase"] == "RolledBack"
    items = cluster.kube.list("MigrationRollback", cluster.ns)
    alias = [i for i in items if i["metadata"]["name"].startswith("orders-rollback-")]
    assert len(alias) == 1
    again = _wait_request(cluster, alias[0]["metadata"]["name"], "Refused", timeout=30)
    assert "ended RolledBack" in again["message"]

    # RollbackRequested's remedy: the cause fixed, a new generation applies the migration again
    quick = {"backup": {"enabled": False}, "verification": {"analyze": False}}
    cluster.patch("orders", {"spec": quick})
    generation = (cluster.get("orders") or {})["metadata"]["generation"]
    redone = cluster.wait(
        "orders",
        lambda s: (
            s.get("observedGeneration") == generation
            and s.get("phase") in ("Succeeded", "Failed", "RolledBack")
        ),
        "the new generation's run to end",
        timeout=120,
    )
    assert redone["phase"] == "Succeeded", redone.get("message")
    assert condition(redone, "Ready")["status"] == "True"
    assert history_versions(database_url)[2] == "applied" and "notes" in fingerprint(database_url)
    print(f"pause and rollback on demand took {time.monotonic() - began:.1f}s")
