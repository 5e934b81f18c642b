"""What goes wrong, end to end: a missing Secret stalls the run with a clear message and heals when
the Secret appears; an apply failing mid-way and a failed verification are rolled back, leaving
the application's data exactly as it was (row counts and content hashes per table).
"""

from __future__ import annotations

import time

from dbmigrate.api.labels import LABEL_STEP as STEP
from dbmigrate.controller.kube import path_of
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    app_image,
    cluster,
    columns,
    condition,
    crd,
    deployment,
    fingerprint,
    history_versions,
    indexes,
    migration_files,
    operator,
    pod_url,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

INLINE = [
    {"name": "001_notes.sql", "sql": "CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY);"},
    {
        "name": "002_notes_index.sql",
        "sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_notes_id ON notes (id);",
    },
]


# An application that takes a few seconds to shut down (it still writes while it drains).
SLOW_TO_STOP = [
    "python3",
    "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(4), sys.exit(0)))\n"
    "while True:\n    time.sleep(1)\n",
]


ENDED = ("Succeeded", "Failed")  # a pod phase after which none of its containers runs


def _web_pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 20,
            "containers": [{"name": "web", "image": app_image(), "command": SLOW_TO_STOP}],
        },
    }


def _watch_rollback_start(cluster: Cluster, name: str, timeout: float) -> tuple[bool, list[str]]:
    """Poll until the rollback Job exists: whether the status ever said it waited for the web
    pods, and the web pods still running when the Job was first seen (a pod the kubelet has
    stopped may be listed a moment longer, in phase Succeeded or Failed). Once the web
    Deployment is scaled to 0 its pods are deleted (gracefully), as its ReplicaSet would."""
    deadline, waited = time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        message = cluster.status(name).get("message") or ""
        waited = waited or "waiting for the application to stop" in message
        pods = cluster.kube.list("Pod", cluster.ns, "app=web")
        jobs = [j for j in cluster.jobs(name) if j["metadata"]["labels"].get(STEP) == "rollback"]
        if jobs:  # a pod whose containers have all exited has ended, even before it is removed
            phases = {p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in pods}
            print(f"web pods when the rollback Job was first seen: {phases}")
            running = [p for p in pods if (p.get("status") or {}).get("phase") not in ENDED]
            return waited, [p["metadata"]["name"] for p in running]
        if cluster.kube.replicas("Deployment", cluster.ns, "web") == 0:
            for meta in (p["metadata"] for p in pods):
                if not meta.get("deletionTimestamp"):
                    cluster.kube.request("DELETE", path_of("Pod", cluster.ns, meta["name"]))
        time.sleep(0.2)
    raise AssertionError(f"no rollback Job for {name} within {timeout} s")


def test_missing_secret_stalls_with_a_clear_message_then_heals(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    spec = sample_spec(
        source={"inline": INLINE},
        backup={"enabled": False},
        verification={"analyze": True},
    )
    cluster.migration("needs-secret", spec)

    stalled = cluster.wait(
        "needs-secret",
        lambda s: condition(s, "Stalled").get("status") == "True",
        "Stalled=True",
        timeout=60,
    )
    found = condition(stalled, "Stalled")
    assert found["reason"] == "SecretNotFound"
    assert "analytics-db" in found["message"] and "uri" in found["message"]
    assert condition(stalled, "Ready")["status"] == "False"
    assert cluster.jobs("needs-secret") == []  # nothing runs without credentials
    cluster.wait_event(
        "needs-secret", lambda e: e["type"] == "Warning" and "Secret analytics-db" in e["message"]
    )

    cluster.secret("analytics-db", {"uri": pod_url(database_url)})  # the fix: it goes on by itself
    done = cluster.wait_terminal("needs-secret", timeout=120)
    assert done["phase"] == "Succeeded", done.get("message")
    assert condition(done, "Stalled")["status"] == "False"
    assert condition(done, "Ready")["status"] == "True"
    assert "idx_notes_id" in indexes(database_url)
    # The inline files reached the Jobs through a ConfigMap the resource owns.
    owned = cluster.kube.get("ConfigMap", cluster.ns, "needs-secret-migrations")
    assert owned is not None and set(owned["data"]) == {i["name"] for i in INLINE}
    print(f"missing secret scenario took {time.monotonic() - began:.1f}s")


FAILING_004 = """
-- builds one index, then fails on the second: an autocommit file stopped half-way
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_page_views_path ON page_views (path);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_broken ON users ((100 / (id - id)));
"""


def test_apply_failing_midway_is_rolled_back_with_data_identical(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    seed_analytics(database_url, rows=100)
    before = fingerprint(database_url)
    indexes_before = indexes(database_url)
    files = {**migration_files(3), "004_broken.sql": FAILING_004}
    ready_database(cluster, database_url, files=files)
    cluster.migration("midway", sample_spec(verification={"analyze": True}))

    status = cluster.wait_terminal("midway", timeout=240)
    assert status["phase"] == "RolledBack", status.get("message")
    assert status["failedStep"] == "apply"
    assert status["apply"]["status"] == "failed"
    assert status["apply"]["errorCode"]  # the SQLSTATE of the division by zero
    rolled = status["rollback"]
    assert rolled["verified"] is True and rolled["strategy"] == "dropCreatedObjects"
    assert {"2", "3", "4"} <= set(rolled["versionsMarkedRolledBack"])
    assert condition(status, "RolledBack")["status"] == "True"
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Ready")["reason"] == "RolledBack"
    assert "ApplyFailed" in (condition(status, "Ready").get("message") or "") or (
        "apply failed" in (status.get("message") or "")
    )
    assert status["backup"]["verified"] is True  # the backup is kept as evidence

    # The database is back: same tables, same rows, same content; no index of this run left.
    assert fingerprint(database_url) == before
    assert indexes(database_url) == indexes_before
    assert "email_hash" not in columns(database_url, "users")
    versions = history_versions(database_url)
    assert versions.get(2) == versions.get(3) == "rolled_back"
    cluster.wait_event_reasons("midway", {"RollingBack", "RolledBack"})
    print(f"mid-way failure rollback took {time.monotonic() - began:.1f}s")


def test_verification_failure_is_rolled_back(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    seed_analytics(database_url, rows=100)
    before = fingerprint(database_url)
    indexes_before = indexes(database_url)
    ready_database(cluster, database_url, files=migration_files(2))
    probe = {
        "name": "lookup-by-email",
        "sql": "SELECT id FROM users WHERE lower(email) = 'u7@example.com'",
        "expectIndex": "idx_that_no_migration_creates",
    }
    container = {"name": "web", "image": app_image(), "command": SLOW_TO_STOP}
    web = deployment("web", 3, {"terminationGracePeriodSeconds": 20, "containers": [container]})
    cluster.create(web)  # the application, scaled down during the rollback
    for pod in ("web-a", "web-b"):  # its pods (the test bed runs no Deployment controller)
        cluster.create(_web_pod(pod))
    spec = sample_spec(
        verification={"analyze": True, "probes": [probe]},
        rollback={
            "strategy": "DropCreatedObjects",
            "scaleDown": [{"kind": "Deployment", "name": "web"}],
        },
    )
    cluster.migration("unverified", spec)

    waited, web_pods_at_rollback = _watch_rollback_start(cluster, "unverified", timeout=240)
    assert waited, "the rollback never said it waited for the application's pods"
    assert web_pods_at_rollback == [], "the rollback Job started while web pods were still there"
    status = cluster.wait_terminal("unverified", timeout=240)
    assert status["phase"] == "RolledBack", status.get("message")
    assert status["failedStep"] == "verify"
    assert status["verification"]["passed"] is False
    assert status["verification"]["probes"][0]["passed"] is False
    assert condition(status, "Verified")["status"] == "False"
    assert condition(status, "RolledBack")["status"] == "True"
    assert status["rollback"]["verified"] is True
    assert fingerprint(database_url) == before
    assert indexes(database_url) == indexes_before  # idx_users_email_lower dropped again
    assert history_versions(database_url)[2] == "rolled_back"
    restored = cluster.wait(
        "unverified",
        lambda s: (
            bool(s.get("scaledWorkloads")) and all(w["restored"] for w in s["scaledWorkloads"])
        ),
        "the scaled-down workloads to be restored",
        timeout=30,
    )
    scaled = restored["scaledWorkloads"]
    assert scaled == [{"kind": "Deployment", "name": "web", "replicas": 3, "restored": True}]
    assert cluster.kube.replicas("Deployment", cluster.ns, "web") == 3  # scaled back
    print(f"verification failure rollback took {time.monotonic() - began:.1f}s")
