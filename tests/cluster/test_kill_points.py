"""The operator SIGKILLed right after each write it makes, and started again, converges exactly
once: every step boundary, every status patch, each scale-down and scale-up of each workload,
between the rollback Job and the scale-up, during the approval and window waits, and during a
deletion held by the finalizer.

One migration goes through two runs, and the operator is killed at the next point of the list
each time, restarted, and killed again at the following one: generation 1 (Manual approval,
approved while the operator is down) applies 001-005; generation 2 adds a file that fails, so
the run rolls back with two Deployments scaled down and back. A second resource waits for its
maintenance window the whole time and is deleted while the operator is down. The kill comes
from outside (``kill_switch``: a tap on the operator's API traffic), so the operator carries no
test hook. The invariants are read from the API server and the database's history table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmigrate import PLURAL
from dbmigrate.api.labels import APPROVE_ANNOTATION, LABEL_STEP
from testbed.postgres import fresh_database
from tests.cluster.kill_switch import KillPoint, KillSwitch, Request
from tests.cluster.operator_harness import (
    Cluster,
    cluster,
    condition,
    crd,
    deployment,
    history_versions,
    migration_files,
    pod_url,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd"]  # fixtures used by name

NAME = "killed"
WINDOWED = "windowed"
APPS = {"web": 2, "worker": 1}  # the Deployments of generation 2's rollback, and their replicas
BROKEN = {"006_broken.sql": "CREATE TABLE broken_probe (id int);\nSELECT 1 / 0;\n"}


def _status_of(name: str, check: Callable[[dict[str, Any]], bool]) -> Callable[[Request], bool]:
    def matches(request: Request) -> bool:
        return request.path.split("?")[0].endswith(f"/{PLURAL}/{name}/status") and check(
            request.status()
        )

    return matches


def phase(name: str, wanted: str, says: str = "") -> KillPoint:
    check = _status_of(
        name, lambda s: s.get("phase") == wanted and says in (s.get("message") or "")
    )
    return KillPoint(f"status {wanted} {says}".strip(), check)


def created(kind: str, prefix: str) -> KillPoint:
    def matches(request: Request) -> bool:
        body = request.body if isinstance(request.body, dict) else {}
        return (
            request.method == "POST"
            and request.path.split("?")[0].endswith(f"/{kind}")
            and str(body.get("metadata", {}).get("name", "")).startswith(prefix)
        )

    return KillPoint(f"{kind} {prefix}* created", matches)


def scaled(workload: str, replicas: int) -> KillPoint:
    def matches(request: Request) -> bool:
        body = request.body if isinstance(request.body, dict) else {}
        return (
            request.method == "PATCH"
            and request.path.split("?")[0].endswith(f"/deployments/{workload}/scale")
            and body.get("spec", {}).get("replicas") == replicas
        )

    return KillPoint(f"Deployment {workload} scaled to {replicas}", matches)


def workloads(restored: bool) -> KillPoint:
    def check(status: dict[str, Any]) -> bool:
        recorded = status.get("scaledWorkloads") or []
        return (
            "phase" not in status
            and bool(recorded)
            and all(w.get("restored", False) == restored for w in recorded)
        )

    return KillPoint(f"scaledWorkloads written (restored={restored})", _status_of(NAME, check))


def resource_metadata_patch(name: str, before: bool = False) -> KillPoint:
    def matches(request: Request) -> bool:
        return request.method == "PATCH" and request.path.split("?")[0].endswith(
            f"/{PLURAL}/{name}"
        )

    when = "instead of" if before else "after"
    return KillPoint(f"{when} Kopf's patch of {name} (finalizer)", matches, before=before)


FIRST_RUN = [
    resource_metadata_patch(NAME),
    phase(NAME, "Planning"),
    created("configmaps", f"{NAME}-"),
    created("serviceaccounts", f"{NAME}-"),
    created("jobs", f"{NAME}-plan-g1"),
    phase(NAME, "WaitingForApproval"),
]
AFTER_APPROVAL = [
    phase(NAME, "BackingUp"),
    created("jobs", f"{NAME}-backup-g1"),
    phase(NAME, "Migrating"),
    created("jobs", f"{NAME}-apply-g1"),
    phase(NAME, "Verifying"),
    created("jobs", f"{NAME}-verify-g1"),
    phase(NAME, "Succeeded"),
]
SECOND_RUN = [  # its plan and backup were killed at in the first run
    created("jobs", f"{NAME}-apply-g2"),
    phase(NAME, "RollingBack", "apply"),
    workloads(restored=False),
    scaled("web", 0),
    scaled("worker", 0),
    created("jobs", f"{NAME}-rollback-g2"),
    phase(NAME, "RollingBack", "scaling back"),
    scaled("web", APPS["web"]),
    scaled("worker", APPS["worker"]),
    workloads(restored=True),
    phase(NAME, "RolledBack"),
]


PRELOADED = """
import sys
import kopf
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.cli import main
from dbmigrate.controller import handlers, reconcile
DatabaseMigrationSpec.model_rebuild(force=True)
DatabaseMigrationStatus.model_rebuild(force=True)
sys.stdin.readline()
sys.exit(main.main(sys.argv[1:]))
"""


class WarmOperator:
    """``dbmigrate operator`` restarted at once after each kill: the next process is always
    started ahead, its modules imported, and waits for a line on stdin before it runs (a
    restart then costs Kopf's start, not Python's imports: the kills are many)."""

    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path) -> None:
        self.argv = [sys.executable, "-c", PRELOADED, "operator", "--kubeconfig", str(kubeconfig)]
        self.argv += ["--resync-seconds", "3", "--namespace", namespace]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.standby: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip

    def start(self) -> None:
        proc = self.standby or self._spawn()
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        self.proc, self.standby = proc, self._spawn()

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to clean anything up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        for proc in (self.proc, self.standby):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self.proc = self.standby = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Killer:
    """The operator behind the kill switch, and the points it was killed at."""

    def __init__(self, testbed: Any, namespace: str, folder: Path) -> None:
        self.switch = KillSwitch(Path(testbed.kubeconfig), kill=lambda: None, settle=0.3)
        config = self.switch.kubeconfig(folder)
        self.operator = WarmOperator(config, namespace, folder / "operator.log")
        self.switch.kill_operator = self.operator.kill
        self.killed_at: list[str] = []

    def kill_at(self, point: KillPoint, timeout: float = 60) -> None:
        """Arm ``point``, (re)start the operator, wait for it to be killed there."""
        self.switch.arm(point)
        if self.operator.proc is None:
            self.operator.start()
        if not self.switch.wait_killed(timeout):
            pytest.fail(f"kill point {point.name!r} was not reached in {timeout}s")
        self.killed_at.append(point.name)

    def run_through(self, points: list[KillPoint]) -> None:
        for point in points:
            self.kill_at(point)


def _applied_by(url: str) -> dict[int, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, applied_by FROM dbmigrate.schema_migrations")
        return {int(v): str(by) for v, by in rows}


def _jobs_by_name(cluster: Cluster, name: str) -> dict[str, dict[str, Any]]:
    jobs = cluster.finished_jobs(name)
    names = [j["metadata"]["name"] for j in jobs]
    assert len(names) == len(set(names))
    return {j["metadata"]["name"]: j for j in jobs}


@pytest.mark.local_testbed(reason="kills the operator subprocess at points of its API traffic")
def test_operator_killed_after_every_write_converges_exactly_once(
    cluster: Cluster, testbed: Any, database_url: str, pg_admin_url: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    killer = Killer(testbed, cluster.ns, tmp_path)
    try:
        _scenario(cluster, killer, database_url, pg_admin_url)
    finally:
        killer.operator.stop()
        killer.switch.close()
        print(f"killed at {len(killer.killed_at)} points: {killer.killed_at}")
        print(f"tap connections ended by errors: {killer.switch.errors[-20:]}")
        now = time.monotonic()
        waiting = sorted((round(now - t), what) for _, what, t in set(killer.switch.in_flight))
        print(f"requests in flight: {waiting}")
        print(f"----- operator log ({killer.operator.log_path}) -----")
        print(killer.operator.log()[-15000:])
    print(f"kill points scenario took {time.monotonic() - began:.1f}s")


def _scenario(cluster: Cluster, killer: Killer, url: str, pg_admin_url: str) -> None:
    seed_analytics(url, rows=200)
    cluster.secret("analytics-db", {"uri": pod_url(url)})
    cluster.config_map("analytics-migrations", migration_files())
    cluster.pvc("dbmigrate-backups")
    for app, replicas in APPS.items():
        cluster.create(deployment(app, replicas, {"containers": [{"name": app, "image": "x"}]}))
    with fresh_database(pg_admin_url) as other_url:
        cluster.secret("other-db", {"uri": pod_url(other_url)})
        window = {"schedule": "0 3 29 2 *", "duration": "1h", "appliesTo": "Always"}
        other = {"secretRef": {"name": "other-db", "uriKey": "uri"}}
        cluster.migration(WINDOWED, sample_spec(database=other, maintenanceWindow=window))
        cluster.migration(NAME, sample_spec(approval={"mode": "Manual"}))
        _first_run(cluster, killer, url)
        _second_run(cluster, killer, url)
        _deletion(cluster, killer)


def _first_run(cluster: Cluster, killer: Killer, url: str) -> None:
    killer.run_through(FIRST_RUN)
    # the approval arrives while the operator is down
    plan_hash = cluster.status(NAME)["approval"]["planHash"]
    cluster.annotate(NAME, APPROVE_ANNOTATION, plan_hash)
    killer.run_through(AFTER_APPROVAL)
    killer.operator.start()
    status = cluster.wait_terminal(NAME, timeout=60)
    assert status["phase"] == "Succeeded", status.get("message")
    assert condition(status, "Ready")["status"] == "True"
    assert history_versions(url) == dict.fromkeys(range(1, 6), "applied")
    assert set(_applied_by(url).values()) == {status["runId"]}


def _second_run(cluster: Cluster, killer: Killer, url: str) -> None:
    first_run_id = cluster.status(NAME)["runId"]
    applied_before = _applied_by(url)
    cluster.kube.request(
        "PATCH",
        f"/api/v1/namespaces/{cluster.ns}/configmaps/analytics-migrations",
        {"data": BROKEN},
        content_type="application/merge-patch+json",
    )
    scale_down = [{"kind": "Deployment", "name": app} for app in APPS]
    killer.operator.stop()
    cluster.patch(
        NAME,
        {
            "spec": {
                "approval": {"mode": "Automatic"},
                "rollback": {"strategy": "DropCreatedObjects", "scaleDown": scale_down},
            }
        },
    )
    killer.run_through(SECOND_RUN)
    killer.operator.start()
    status = cluster.wait_terminal(NAME, timeout=60)
    assert (status["phase"], status["observedGeneration"]) == ("RolledBack", 2), status
    assert condition(status, "Stalled")["reason"] == "ApplyFailed"
    assert status["scaledWorkloads"] == [
        {"kind": "Deployment", "name": app, "replicas": n, "restored": True}
        for app, n in APPS.items()
    ]
    for app, replicas in APPS.items():
        assert cluster.kube.replicas("Deployment", cluster.ns, app) == replicas
    # no version applied twice: 1-5 still carry the first run's id, 006 never applied
    assert {v: by for v, by in _applied_by(url).items() if v <= 5} == applied_before
    assert set(applied_before.values()) == {first_run_id}
    assert history_versions(url).get(6) != "applied"
    assert "broken_probe" not in _tables(url)

    jobs = _jobs_by_name(cluster, NAME)
    expected = [f"{NAME}-{s}-g1" for s in ("plan", "backup", "apply", "verify")]
    expected.append(f"{NAME}-plan-g1-a2")  # the approval had the files read again (replan)
    expected += [f"{NAME}-{s}-g2" for s in ("plan", "backup", "apply", "rollback")]
    assert sorted(jobs) == sorted(expected)
    for job_name, job in jobs.items():  # each Job created once, its step run once
        pods = cluster.kube.list("Pod", cluster.ns, f"job-name={job_name}")
        assert len(pods) == 1, (job_name, [p["metadata"]["name"] for p in pods])
        step = job["metadata"]["labels"][LABEL_STEP]
        failed = job_name == f"{NAME}-apply-g2"
        assert bool(job["status"].get("failed")) == failed, (step, job["status"])
    assert len(status["jobs"]) == len(expected)


def _deletion(cluster: Cluster, killer: Killer) -> None:
    """The windowed run waited through every kill; deleted while the operator is down, it goes
    once the operator is back (the finalizer is Kopf's), and its Jobs with it."""
    status = cluster.status(WINDOWED)
    assert status["phase"] == "WaitingForWindow", status
    assert [j["metadata"]["name"] for j in cluster.jobs(WINDOWED)] == [f"{WINDOWED}-plan-g1"]
    assert killer.operator.proc is not None
    killer.switch.arm(resource_metadata_patch(WINDOWED, before=True))
    cluster.delete(WINDOWED)
    assert killer.switch.wait_killed(60), "the finalizer was never released"
    killer.killed_at.append("instead of releasing the finalizer")
    held = cluster.get(WINDOWED)
    assert held is not None and held["metadata"].get("deletionTimestamp"), held
    killer.operator.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (cluster.get(WINDOWED) or cluster.jobs(WINDOWED)):
        time.sleep(0.5)
    assert cluster.get(WINDOWED) is None and cluster.jobs(WINDOWED) == []
    assert len(killer.killed_at) >= 20


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}
