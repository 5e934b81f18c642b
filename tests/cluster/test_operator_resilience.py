"""The cluster's own rules: step pods are admitted in a namespace enforcing Pod Security
"restricted"; deleting a resource mid-run lets the garbage collector remove its Jobs and keeps the
backup. (The operator killed at every write it makes: test_kill_points.py.)
"""

from __future__ import annotations

import time
from typing import Any

from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    crd,
    migration_files,
    on_backup_volume,
    operator,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name


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
