"""What only a real kubelet and container runtime can show (the kind tier, `make test-kind`): the
project's image runs every step as uid 10001 under the restricted Pod Security profile, writes its
backup onto a PersistentVolume and restores from it, reads migrations from a mounted ConfigMap and
from a folder baked into an image, reaches PostgreSQL by its Service's DNS name; and a run
survives its operator pod being killed (the Helm-installed operator) and its apply pod's node
being drained, finishing exactly once; an application's pod whose init container runs
`dbmigrate wait` stays in Init until its migration succeeds, then starts; and a rollback on
demand stops a real Deployment (its ReplicaSet's pods gone before the rollback) and brings it back.

On the local test bed these are skipped (`real_kubelet`): there, pods are host processes.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from dbmigrate.api.labels import APPROVE_ANNOTATION, BACKUP_MOUNT, LABEL_STEP
from dbmigrate.controller.kube import path_of
from dbmigrate.specs.jobs import container_security_context, pod_security_context
from testbed.postgres import fresh_database
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    crd,
    deployment,
    fingerprint,
    history_versions,
    kube_for,
    migration_files,
    on_backup_volume,
    operator,
    pod_url,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

pytestmark = [pytest.mark.real_kubelet, pytest.mark.timeout(900)]

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
OPERATOR_NS = "dbmigrate-system"
OPERATOR_POD_SELECTOR = "app.kubernetes.io/name=dbmigrate-operator"


def restrict(cluster: Cluster) -> None:
    """Enforce the restricted Pod Security profile on the test's namespace."""
    cluster.kube.request(
        "PATCH",
        f"/api/v1/namespaces/{cluster.ns}",
        {"metadata": {"labels": RESTRICTED}},
        content_type="application/merge-patch+json",
    )


def step_pods(cluster: Cluster, step: str | None = None) -> list[dict[str, Any]]:
    selector = f"{LABEL_STEP}={step}" if step else LABEL_STEP
    return cluster.kube.list("Pod", cluster.ns, selector)


def test_restricted_namespace_configmap_mount_and_service_dns(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    restrict(cluster)
    seed_analytics(database_url, rows=100)
    ready_database(cluster, database_url, files=None)  # a ConfigMap, mounted with ..data links
    secret_host = urlsplit(pod_url(database_url)).hostname
    assert secret_host is not None and secret_host.endswith(".svc.cluster.local")
    cluster.migration("analytics", sample_spec())

    status = cluster.wait_terminal("analytics", timeout=420)
    assert status["phase"] == "Succeeded", status.get("message")
    assert history_versions(database_url) == dict.fromkeys(range(1, 6), "applied")
    cluster.finished_jobs("analytics")
    pods = step_pods(cluster)
    steps = {p["metadata"]["labels"][LABEL_STEP] for p in pods}
    assert {"plan", "backup", "apply", "verify"} <= steps
    for pod in pods:  # admitted under "restricted", and run as the image's non-root user
        assert pod["spec"]["securityContext"]["runAsUser"] == 10001
        assert (pod.get("status") or {}).get("phase") == "Succeeded"
    # The Secret named the Service's DNS name; the server the plan step reached is its pod.
    (postgres,) = cluster.kube.list("Pod", "dbmigrate-db", "app=postgres")
    assert status["database"]["serverAddress"] == postgres["status"]["podIP"]
    # And the profile is really enforced: a privileged pod is refused.
    with pytest.raises(Exception, match="violates PodSecurity"):
        cluster.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "privileged"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": os.environ["DBMIGRATE_IMAGE"],
                            "securityContext": {"privileged": True},
                        }
                    ]
                },
            }
        )


def test_backup_written_by_uid_10001_on_a_pvc_is_restored_from_it(
    cluster: Cluster, operator: OperatorProcess, database_url: str, testbed: Any
) -> None:
    restrict(cluster)
    seed_analytics(database_url, rows=100)
    before = fingerprint(database_url)
    files = migration_files(2)
    files["003_fails.sql"] = (
        "ALTER TABLE users ADD COLUMN email_hash text;\n"
        "UPDATE users SET email_hash = md5(email);\n"
        "SELECT 1 / 0;  -- fails after changing data\n"
    )
    ready_database(cluster, database_url, files=files)
    spec = sample_spec(rollback={"strategy": "RestoreBackup"})
    spec["safety"] = {**spec["safety"], "lintPolicy": "warn"}
    cluster.migration("restored", spec)

    status = cluster.wait_terminal("restored", timeout=420)
    assert status["phase"] == "RolledBack", status.get("message")
    assert status["rollback"]["strategy"].lower() == "restorebackup"
    assert status["rollback"]["verified"] is True
    assert fingerprint(database_url) == before
    # The dump on the volume belongs to the step pods' user, as pg_dump wrote it.
    path = status["backup"]["path"]
    assert path.startswith(BACKUP_MOUNT + "/")
    out = on_backup_volume(testbed, cluster, "dbmigrate-backups", ["stat", "-c", "%u %s", path])
    uid, size = out.split()
    assert uid == "10001"
    assert int(size) == status["backup"]["sizeBytes"]


def test_migrations_from_a_folder_in_the_image(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    restrict(cluster)
    seed_analytics(database_url, rows=50)
    ready_database(cluster, database_url, files={})
    spec = sample_spec(source={"image": {"path": "/migrations"}})
    spec["jobs"] = {**spec.get("jobs", {}), "image": os.environ["DBMIGRATE_TEST_MIGRATIONS_IMAGE"]}
    cluster.migration("baked", spec)

    status = cluster.wait_terminal("baked", timeout=420)
    assert status["phase"] == "Succeeded", status.get("message")
    assert history_versions(database_url) == dict.fromkeys(range(1, 6), "applied")
    images = {p["spec"]["containers"][0]["image"] for p in step_pods(cluster)}
    assert images == {os.environ["DBMIGRATE_TEST_MIGRATIONS_IMAGE"]}


SLOW = {
    "001_slow_table.sql": "CREATE TABLE IF NOT EXISTS slow_notes (id bigint PRIMARY KEY);\n"
    "SELECT pg_sleep(12);\n",
    "002_slow_index.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_slow_notes_id "
    "ON slow_notes (id);\n",
}


@pytest.fixture
def e2e_namespace(testbed: Any, crd: None) -> Iterator[Cluster]:
    """The namespace the Helm-installed operator watches (testbed.kindcluster), emptied after."""
    namespaces = os.environ.get("DBMIGRATE_TEST_OPERATOR_NAMESPACES", "").split(",")
    if not namespaces[0]:
        pytest.skip("no namespace watched by an in-cluster operator (make kind-up makes one)")
    cluster = Cluster(kube_for(testbed.kubeconfig), namespaces[0])
    yield cluster
    for kind in ("databasemigrations", "jobs", "configmaps", "secrets", "pvc"):
        testbed.kubectl("-n", cluster.ns, "delete", kind, "--all", "--wait=false")


def _leader_pod(cluster: Cluster) -> dict[str, Any]:
    """The operator pod that holds the leader-election Lease (waiting for one to hold it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = {
            p["metadata"]["name"]: p
            for p in cluster.kube.list("Pod", OPERATOR_NS, OPERATOR_POD_SELECTOR)
            if not p["metadata"].get("deletionTimestamp")
        }
        for lease in cluster.kube.list("Lease", OPERATOR_NS):
            holder = lease.get("spec", {}).get("holderIdentity")
            if holder in pods:
                return pods[holder]
        time.sleep(0.5)
    pytest.fail("no operator pod holds the leader-election Lease")


def _jobs_by_step(cluster: Cluster, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for job in cluster.jobs(name):
        out.setdefault(job["metadata"]["labels"][LABEL_STEP], []).append(job["metadata"]["name"])
    return out


def test_operator_pod_killed_mid_run_finishes_exactly_once(
    e2e_namespace: Cluster, pg_admin_url: str
) -> None:
    cluster = e2e_namespace
    name = f"killed-{secrets.token_hex(3)}"
    with fresh_database(pg_admin_url) as url:
        cluster.secret(f"{name}-db", {"uri": pod_url(url)})
        cluster.config_map(f"{name}-sql", SLOW)
        spec = sample_spec(
            database={"secretRef": {"name": f"{name}-db", "uriKey": "uri"}},
            source={"configMap": {"name": f"{name}-sql"}},
            backup={"enabled": False},
            verification={"analyze": False, "probes": []},
        )
        cluster.migration(name, spec)
        cluster.wait_phase(name, "Migrating", timeout=240)
        leader = _leader_pod(cluster)  # the chart runs two replicas; the Lease's holder works
        cluster.kube.request("DELETE", path_of("Pod", OPERATOR_NS, leader["metadata"]["name"]))

        status = cluster.wait_terminal(name, timeout=420)
        assert status["phase"] == "Succeeded", status.get("message")
        successor = _leader_pod(cluster)
        assert successor["metadata"]["uid"] != leader["metadata"]["uid"]
        assert history_versions(url) == {1: "applied", 2: "applied"}
        jobs = _jobs_by_step(cluster, name)
        assert all(len(names) == 1 for names in jobs.values()), jobs  # each step ran once
        assert set(jobs) >= {"plan", "apply", "verify"}


def test_apply_pod_node_drained_mid_apply_resumes_on_another_node(
    cluster: Cluster, operator: OperatorProcess, database_url: str, testbed: Any
) -> None:
    ready_database(cluster, database_url, files=SLOW)
    spec = sample_spec(verification={"analyze": False, "probes": []})
    cluster.migration("drained", spec)

    deadline = time.monotonic() + 300
    running: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not running:
        running = [
            p
            for p in step_pods(cluster, "apply")
            if (p.get("status") or {}).get("phase") == "Running"
        ]
        time.sleep(0.5)
    assert running, "the apply pod never ran"
    time.sleep(3)  # inside 001's pg_sleep
    node = running[0]["spec"]["nodeName"]
    try:
        drained = testbed.kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
            f"--pod-selector={LABEL_STEP}=apply", "--timeout=120s", timeout=150,
        )  # fmt: skip
        assert drained.returncode == 0, drained.stderr
        status = cluster.wait_terminal("drained", timeout=420)
    finally:
        testbed.kubectl("uncordon", node)
    assert status["phase"] == "Succeeded", status.get("message")
    assert history_versions(database_url) == {1: "applied", 2: "applied"}
    (job,) = _jobs_by_step(cluster, "drained")["apply"]  # the same Job, a second pod
    events = cluster.kube.list("Event", cluster.ns)
    created = [
        e["message"].rsplit(" ", 1)[1]
        for e in sorted(events, key=lambda e: e.get("firstTimestamp") or e.get("eventTime") or "")
        if e["reason"] == "SuccessfulCreate" and e["involvedObject"]["name"] == job
    ]
    placed = {
        e["involvedObject"]["name"]: e["message"].rsplit(" ", 1)[1]
        for e in events
        if e["reason"] == "Scheduled"
    }
    assert len(created) == 2, created
    assert placed[created[0]] == node and placed[created[1]] != node, (created, placed)


def _app_with_wait_init(database_secret: str, version: int) -> dict[str, Any]:
    """An application whose pods start only once the schema has versions 1..``version``: an init
    container runs ``dbmigrate wait`` against the database history (README's recipe)."""
    wait = {
        "name": "wait-for-schema",
        "image": os.environ["DBMIGRATE_IMAGE"],
        "args": ["wait", "--version", str(version), "--timeout", "5m"],
        "env": [
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": database_secret, "key": "uri"}},
            }
        ],
        "securityContext": container_security_context(),
    }
    app = {
        "name": "app",
        "image": os.environ["DBMIGRATE_IMAGE"],
        "command": ["python3", "-c", "import time\nwhile True: time.sleep(1)"],
        "securityContext": container_security_context(),
    }
    pod_spec = {
        "securityContext": pod_security_context(),
        "initContainers": [wait],
        "containers": [app],
    }
    return deployment("schema-user", 1, pod_spec)


def _app_pod(cluster: Cluster) -> dict[str, Any]:
    pods = cluster.kube.list("Pod", cluster.ns, "app=schema-user")
    return pods[0] if pods else {}


def test_app_pod_stays_in_init_until_its_migration_succeeds(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    restrict(cluster)
    ready_database(cluster, database_url, files=migration_files(2))
    cluster.create(_app_with_wait_init("analytics-db", version=2))
    spec = sample_spec(approval={"mode": "Manual"}, verification={"analyze": False, "probes": []})
    cluster.migration("gated", spec)
    waiting = cluster.wait_phase("gated", "WaitingForApproval", timeout=240)

    deadline = time.monotonic() + 120
    while not (_app_pod(cluster).get("status") or {}).get("initContainerStatuses"):
        assert time.monotonic() < deadline, "the app's init container never started"
        time.sleep(1)
    time.sleep(10)  # the init container keeps waiting: nothing was approved
    held = _app_pod(cluster)
    assert held["status"]["phase"] == "Pending", held["status"]
    (init,) = held["status"]["initContainerStatuses"]
    assert "running" in init["state"] and init["restartCount"] == 0, init

    cluster.annotate("gated", APPROVE_ANNOTATION, waiting["plan"]["planHash"])
    done = cluster.wait_terminal("gated", timeout=300)
    assert done["phase"] == "Succeeded", done.get("message")
    succeeded_at = time.monotonic()
    while _app_pod(cluster).get("status", {}).get("phase") != "Running":
        assert time.monotonic() - succeeded_at < 60, _app_pod(cluster).get("status")
        time.sleep(0.5)
    started = time.monotonic() - succeeded_at
    (init,) = _app_pod(cluster)["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    print(f"the app started {started:.1f}s after its migration succeeded")


def _web_pods(cluster: Cluster) -> list[str]:
    return [p["metadata"]["name"] for p in cluster.kube.list("Pod", cluster.ns, "app=web")]


def test_rollback_on_demand_scales_a_real_deployment_down_and_back(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    """A rollback on demand (RestoreBackup, the loss confirmed up front) stops a real Deployment:
    its ReplicaSet's pods are all gone before the rollback Job starts, and come back after."""
    restrict(cluster)
    seed_analytics(database_url, rows=50)
    before = fingerprint(database_url)
    ready_database(cluster, database_url, files=migration_files(2))
    sleeper = {
        "name": "web", "image": os.environ["DBMIGRATE_IMAGE"], "command": ["sleep", "3600"],
        "securityContext": container_security_context(),
    }  # fmt: skip
    pod = {"terminationGracePeriodSeconds": 2, "securityContext": pod_security_context()}
    cluster.create(deployment("web", 2, {**pod, "containers": [sleeper]}))
    spec = sample_spec(
        verification={"analyze": False, "probes": []},
        rollback={
            "strategy": "RestoreBackup",
            "scaleDown": [{"kind": "Deployment", "name": "web"}],
        },
    )
    cluster.migration("nightly", spec)
    done = cluster.wait_terminal("nightly", timeout=300)
    assert done["phase"] == "Succeeded", done.get("message")
    deadline = time.monotonic() + 120
    while len(_web_pods(cluster)) != 2:
        assert time.monotonic() < deadline, "the web Deployment never ran its 2 pods"
        time.sleep(1)
    with psycopg.connect(database_url, autocommit=True) as conn:  # written after the backup
        conn.execute("INSERT INTO users (email, display_name) VALUES ('late@example.com', 'L')")
    request = {
        "apiVersion": "dbmigrate.io/v1alpha1", "kind": "MigrationRollback",
        "metadata": {"name": "nightly-undo"},
        "spec": {"migration": "nightly", "reason": "kind", "confirm": "nightly"},
    }  # fmt: skip
    cluster.create(request)
    pods_at_start = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = [
            j
            for j in cluster.jobs("nightly")
            if j["metadata"]["labels"].get(LABEL_STEP) == "rollback"
        ]
        if jobs and pods_at_start is None:
            pods_at_start = _web_pods(cluster)
        found = cluster.kube.get("MigrationRollback", cluster.ns, "nightly-undo") or {}
        ended = (found.get("status") or {}).get("phase")
        if ended in ("Succeeded", "Failed", "Refused"):
            break
        time.sleep(0.3)
    status = found["status"]
    assert ended == "Succeeded", status.get("message")
    assert pods_at_start == [], f"the rollback Job started beside web pods {pods_at_start}"
    assert status["dataLoss"]["lossFound"] is True  # the late row, confirmed up front
    assert status["plan"]["workloads"] == [
        {"kind": "Deployment", "name": "web", "from": 2, "to": 0}
    ]
    assert fingerprint(database_url) == before
    deadline = time.monotonic() + 120
    while len(_web_pods(cluster)) != 2:  # the ReplicaSet brings them back
        assert time.monotonic() < deadline, "the web pods did not come back"
        time.sleep(1)
