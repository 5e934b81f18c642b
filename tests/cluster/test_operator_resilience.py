"""Restart safety and the cluster's own rules: the operator killed (SIGKILL) in every phase and
started again converges with no duplicate Job and no migration applied twice; step pods are
admitted in a namespace enforcing Pod Security "restricted"; deleting a resource mid-run lets
the garbage collector remove its Jobs and keeps the backup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    migration_files,
    on_backup_volume,
    operator,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

PHASES = ("Planning", "BackingUp", "Migrating", "Verifying")


def _applied_by(url: str) -> dict[int, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, applied_by FROM dbmigrate.schema_migrations")
        return {int(v): str(by) for v, by in rows}


def _at_or_after(phase: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a status is at PHASE, at a later one, or Succeeded."""
    later = (phase, *PHASES[PHASES.index(phase) + 1 :], "Succeeded")
    return lambda s: s.get("phase") in later


def test_operator_killed_in_every_phase_converges(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    seed_analytics(database_url, rows=400)
    ready_database(cluster, database_url, files=None)
    cluster.migration("restarts", sample_spec())

    killed_in = []
    for phase in PHASES:
        status = cluster.wait(
            "restarts",
            _at_or_after(phase),
            f"phase {phase} or later",
            timeout=120,
        )
        if status.get("phase") != phase:
            continue  # the phase went by too fast to catch; the next one is tried
        operator.kill()
        killed_in.append(phase)
        time.sleep(2)  # the step's Job goes on without the operator
        operator.start()

    status = cluster.wait_terminal("restarts", timeout=240)
    assert status["phase"] == "Succeeded", status.get("message")
    assert len(killed_in) >= 3, f"killed only in {killed_in}"
    assert operator.starts == 1 + len(killed_in)

    jobs = cluster.finished_jobs("restarts")
    names = sorted(j["metadata"]["name"] for j in jobs)
    assert names == sorted(f"restarts-{s}-g1" for s in ("plan", "backup", "apply", "verify"))
    for job in jobs:  # each step ran exactly once: one pod, no retry
        assert job["status"].get("succeeded") == 1 and not job["status"].get("failed")
    pods = cluster.kube.list("Pod", cluster.ns, "job-name=restarts-apply-g1")
    assert len(pods) == 1
    assert len(status["jobs"]) == 4
    run_id = status["runId"]
    assert set(_applied_by(database_url).values()) == {run_id}  # one run applied everything
    assert history_versions(database_url) == dict.fromkeys(range(1, 6), "applied")
    assert condition(status, "Ready")["status"] == "True"
    print(f"killed in {killed_in}; restart scenario took {time.monotonic() - began:.1f}s")


def test_step_pods_are_admitted_under_pod_security_restricted(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    cluster.kube.patch_metadata(
        "Namespace",
        "",
        cluster.ns,
        {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    )
    seed_analytics(database_url, rows=50)
    ready_database(cluster, database_url, files=migration_files(2))
    spec = sample_spec(verification={"analyze": True})
    cluster.migration("restricted", spec)

    status = cluster.wait_terminal("restricted", timeout=180)
    assert status["phase"] == "Succeeded", status.get("message")
    pods = cluster.kube.list("Pod", cluster.ns, "dbmigrate.io/migration=restricted")
    assert len(pods) == 4
    for pod in pods:
        context = pod["spec"]["containers"][0]["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
    warnings = [
        e
        for e in cluster.kube.list("Event", cluster.ns)
        if e["reason"] == "FailedCreate" and "violates PodSecurity" in e.get("message", "")
    ]
    assert warnings == []
    print(f"pod security restricted scenario took {time.monotonic() - began:.1f}s")


def test_deleting_the_resource_mid_run_removes_jobs_and_keeps_the_backup(
    cluster: Cluster, operator: OperatorProcess, database_url: str, testbed: Any
) -> None:
    began = time.monotonic()
    seed_analytics(database_url, rows=400)
    ready_database(cluster, database_url, files=None)
    cluster.migration("deleted", sample_spec())
    status = cluster.wait_phase("deleted", "Migrating", "Verifying", "Succeeded", timeout=120)
    backup = status["backup"]["path"]

    def backup_exists() -> bool:
        listing = on_backup_volume(testbed, cluster, "dbmigrate-backups", ["ls", "-1", backup])
        return listing.strip() == backup

    assert backup_exists()
    assert cluster.jobs("deleted")

    cluster.delete("deleted")
    selector = "dbmigrate.io/migration=deleted"

    def leftovers() -> list[str]:
        found = ["DatabaseMigration/deleted"] if cluster.get("deleted") else []
        for kind in ("Job", "Role", "RoleBinding", "ServiceAccount"):
            found += [
                f"{kind}/{o['metadata']['name']}"
                for o in cluster.kube.list(kind, cluster.ns, selector)
            ]
        return found

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and leftovers():
        time.sleep(0.5)
    assert leftovers() == [], "the resource or objects it owns were not removed"
    assert backup_exists(), "deleting the resource must never delete its backup"
    assert cluster.kube.get("PersistentVolumeClaim", cluster.ns, "dbmigrate-backups")
    print(f"deletion mid-run took {time.monotonic() - began:.1f}s")
