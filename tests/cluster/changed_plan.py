"""Never make it worse, as a scenario the remedies test runs beside its others (one operator):
migration files changed after the review are found before anything changes, and an apply that
refuses a changed plan never scales the application down nor rolls back; approving the hash the
message names then finishes the run. The ConfigMap is really edited, the Jobs really run, the
database is real.
"""

from __future__ import annotations

import time
from typing import Any

from dbmigrate.api.exitcodes import EXIT_PLAN_CHANGED
from dbmigrate.api.labels import LABEL_STEP
from dbmigrate.controller.kube import path_of
from tests.cluster.operator_harness import (
    Cluster,
    app_image,
    condition,
    deployment,
    history_versions,
    pod_url,
    sample_spec,
)

APPROVE = "dbmigrate.io/approve"
FILES = {
    "001_notes.sql": "CREATE TABLE notes (id bigint PRIMARY KEY, body text);",
    "002_notes_body_index.sql": "CREATE INDEX CONCURRENTLY idx_notes_body ON notes (body);",
}
ADDED_AFTER_REVIEW = {"003_notes_author.sql": "ALTER TABLE notes ADD COLUMN author text;"}
ADDED_DURING_BACKUP = {"004_notes_tag.sql": "ALTER TABLE notes ADD COLUMN tag text;"}


def _edit_files(cluster: Cluster, files: dict[str, str]) -> None:
    path = path_of("ConfigMap", cluster.ns, "notes-migrations")
    cluster.kube.request(
        "PATCH", path, {"data": files}, content_type="application/merge-patch+json"
    )


def _steps(cluster: Cluster, name: str) -> list[str]:
    jobs = sorted(cluster.jobs(name), key=lambda j: j["metadata"]["creationTimestamp"])
    return [j["metadata"]["name"] for j in jobs]


def _refused_hash(status: dict[str, Any], old: str) -> bool:
    approval = status.get("approval") or {}
    return (
        status.get("phase") == "WaitingForApproval"
        and approval.get("planHash") not in (None, old)
        and condition(status, "Ready").get("reason") == "ApprovalRefused"
    )


def _untouched(cluster: Cluster, name: str) -> None:
    """The application was never scaled and no rollback ran."""
    status = cluster.status(name)
    assert cluster.kube.replicas("Deployment", cluster.ns, "app") == 2
    assert not status.get("scaledWorkloads"), status.get("scaledWorkloads")
    assert status.get("rollback") is None
    jobs = cluster.jobs(name)
    assert not any(j["metadata"]["labels"].get(LABEL_STEP) == "rollback" for j in jobs)
    reasons = cluster.event_reasons(name)
    assert "RollingBack" not in reasons and "WorkloadScaledDown" not in reasons


def files_changed_after_the_review_are_found_before_any_change(
    cluster: Cluster, database_url: str
) -> None:
    """The scenario (the operator serves ``cluster``'s namespace)."""
    began = time.monotonic()
    cluster.secret("analytics-db", {"uri": pod_url(database_url)})
    cluster.config_map("notes-migrations", FILES)
    cluster.pvc("dbmigrate-backups")
    web = {"containers": [{"name": "web", "image": app_image(), "command": ["sleep", "3600"]}]}
    cluster.create(deployment("app", 2, web))  # the test bed runs no pods for it: replicas only
    spec = sample_spec(
        source={"configMap": {"name": "notes-migrations"}},
        approval={"mode": "Manual"},
        verification={"analyze": False},
        rollback={
            "strategy": "DropCreatedObjects",
            "scaleDown": [{"kind": "Deployment", "name": "app"}],
        },
    )
    cluster.migration("notes", spec)
    reviewed = cluster.wait_phase("notes", "WaitingForApproval", timeout=60)["plan"]["planHash"]

    # 1. the ConfigMap is edited after the review, then the reviewed hash is approved: the files
    # are read again before the backup, and the run waits for the approval of the new hash
    _edit_files(cluster, ADDED_AFTER_REVIEW)
    cluster.annotate("notes", APPROVE, reviewed)
    waiting = cluster.wait("notes", lambda s: _refused_hash(s, reviewed), "a new hash", 60)
    second = waiting["approval"]["planHash"]
    assert [v["version"] for v in waiting["plan"]["pending"]] == [1, 2, 3]
    command = f"kubectl annotate databasemigration notes -n {cluster.ns} {APPROVE}={second}"
    assert command in waiting["message"] and command in waiting["approval"]["howToApprove"]
    assert _steps(cluster, "notes") == ["notes-plan-g1", "notes-plan-g1-a2"]  # no backup
    assert history_versions(database_url) == {}
    _untouched(cluster, "notes")

    # 2. approved again; the files change once more while the backup runs: the apply refuses
    # before running anything (exit 4), and the run plans again instead of rolling back
    cluster.annotate("notes", APPROVE, second)
    deadline = time.monotonic() + 60
    while cluster.status("notes").get("phase") != "BackingUp":
        assert time.monotonic() < deadline, cluster.status("notes").get("message")
        time.sleep(0.05)
    _edit_files(cluster, ADDED_DURING_BACKUP)
    waiting = cluster.wait("notes", lambda s: _refused_hash(s, second), "a third hash", 90)
    third = waiting["approval"]["planHash"]
    apply = next(j for j in waiting["jobs"] if j["name"] == "notes-apply-g1")
    assert apply["outcome"] == "Failed"
    pods = cluster.kube.list("Pod", cluster.ns, "batch.kubernetes.io/job-name=notes-apply-g1")
    ends = [c["state"]["terminated"] for p in pods for c in p["status"]["containerStatuses"]]
    assert [e["exitCode"] for e in ends] == [EXIT_PLAN_CHANGED]  # refused, not retried
    assert "the plan changed since it was approved" in ends[0]["message"]
    assert waiting.get("failedStep") is None
    assert condition(waiting, "Migrated") == {}
    assert history_versions(database_url) == {}
    _untouched(cluster, "notes")
    refused = cluster.wait_event("notes", lambda e: "refused to run" in e["message"])
    assert refused["type"] == "Warning" and "Nothing was changed" in refused["message"]

    # 3. the remedy the message names works: approve the new hash; the plan is backed up again
    # and applied as new attempts of their Jobs
    cluster.annotate("notes", APPROVE, third)
    done = cluster.wait_terminal("notes", timeout=120)
    assert done["phase"] == "Succeeded", done.get("message")
    assert history_versions(database_url) == {
        1: "applied",
        2: "applied",
        3: "applied",
        4: "applied",
    }
    names = _steps(cluster, "notes")
    assert "notes-backup-g1-a2" in names and "notes-apply-g1-a2" in names
    assert done["approval"]["approvedHash"] == third
    _untouched(cluster, "notes")
    print(f"changed plan scenario took {time.monotonic() - began:.1f}s")
