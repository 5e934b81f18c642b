"""Two operator replicas with ``--leader-elect`` on one namespace: only the Lease holder
reconciles; a leader killed (SIGKILL) mid-run is replaced by the follower, which finishes the run
exactly once; a leader stopped with SIGTERM hands the Lease over at once; a leader whose Lease is
taken exits instead of reconciling on.

Real API server, Job controller, local kubelet and PostgreSQL; the two replicas are local
``dbmigrate operator`` processes (``OperatorProcess``), so the test can SIGKILL one at any time.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmigrate.controller.leader import DEFAULT_LEASE_NAME, TOOK_LEASE
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    pod_url,
)
from tests.webhook_receiver import free_port

__all__ = ["cluster", "crd"]  # fixtures used by name

LEASE = DEFAULT_LEASE_NAME
DURATION = 15
RENEW = 5
RESYNC = 3  # OperatorProcess passes --resync-seconds 3
TOOK = TOOK_LEASE
SLOW_SQL = [  # each version sleeps, so the apply step runs long enough to kill the leader in it
    {
        "name": f"00{v}_slow_{v}.sql",
        "sql": f"CREATE TABLE slow_{v} (id bigint PRIMARY KEY);\nSELECT pg_sleep(4);",
    }
    for v in (1, 2, 3)
]


def replica(testbed: Any, namespace: str, tmp_path: Path, name: str) -> OperatorProcess:
    liveness = f"--liveness=http://127.0.0.1:{free_port()}/healthz"
    args: tuple[str, ...]
    args = ("--leader-elect", f"--lease-identity={name}", f"--lease-namespace={namespace}")
    args += (liveness,)
    args += (f"--lease-duration={DURATION}", f"--lease-renew={RENEW}")
    return OperatorProcess(
        Path(testbed.kubeconfig), [namespace], tmp_path / f"{name}.log", extra_args=args
    )


@pytest.fixture
def replicas(
    testbed: Any, namespace: str, crd: None, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    a, b = (replica(testbed, namespace, tmp_path, n) for n in ("replica-a", "replica-b"))
    try:
        yield a, b
    finally:
        for proc in (a, b):
            proc.stop()
            print(f"----- {proc.log_path.name} -----\n{proc.log()[-15000:]}")


def healthz(proc: OperatorProcess) -> tuple[int, str]:
    """GET the replica's liveness endpoint (the one the kubelet probes)."""
    url = next(a.split("=", 1)[1] for a in proc.extra_args if a.startswith("--liveness="))
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


def wait_healthy(proc: OperatorProcess, timeout: float = 15) -> str:
    """The body of the first 200 answer of the replica's /healthz."""
    deadline = time.monotonic() + timeout
    while True:
        proc.assert_alive()
        try:
            code, body = healthz(proc)
            if code == 200:
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def lease(cluster: Cluster) -> dict[str, Any]:
    return (cluster.kube.get("Lease", cluster.ns, LEASE) or {}).get("spec") or {}


def wait_holder(cluster: Cluster, holder: str, timeout: float) -> float:
    """Seconds until the Lease names ``holder``; fails after ``timeout``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if lease(cluster).get("holderIdentity") == holder:
            return time.monotonic() - began
        time.sleep(0.1)
    pytest.fail(f"the lease is not held by {holder} after {timeout}s: {lease(cluster)}")


def wait_log(proc: OperatorProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        proc.assert_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{proc.log_path.name} never said {text!r}:\n{proc.log()[-3000:]}")
        time.sleep(0.2)


def leader_and_follower(
    cluster: Cluster, replicas: tuple[OperatorProcess, OperatorProcess]
) -> tuple[OperatorProcess, OperatorProcess]:
    """Start A, let it take the Lease, then start B, which stands by."""
    a, b = replicas
    a.start()
    wait_holder(cluster, "replica-a", timeout=30)
    b.start()
    wait_log(b, "standing by: the lease is held by replica-a")
    return a, b


def before_takeover(log: str) -> list[str]:
    """The log lines of the last start up to the line saying the replica took the Lease."""
    lines = log.rsplit("===== start", 1)[-1].splitlines()[1:]
    took = next(i for i, line in enumerate(lines) if TOOK in line)
    return lines[:took]


def first_reconcile_after_takeover(log: str) -> float:
    """Seconds from the line saying the replica took the Lease to its first handler line."""
    lines = log.rsplit("===== start", 1)[-1].splitlines()
    took = next(i for i, line in enumerate(lines) if TOOK in line)
    handled = next(line for line in lines[took:] if "kopf.objects" in line)
    return _stamp(handled) - _stamp(lines[took])


def _stamp(line: str) -> float:
    return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_leader_killed_mid_run_follower_finishes_exactly_once(
    cluster: Cluster, replicas: tuple[OperatorProcess, OperatorProcess], database_url: str
) -> None:
    a, b = leader_and_follower(cluster, replicas)
    cluster.secret("ha-db", {"uri": pod_url(database_url)})
    spec = {
        "database": {"secretRef": {"name": "ha-db", "uriKey": "uri"}},
        "source": {"inline": SLOW_SQL},
        "backup": {"enabled": False},
    }
    cluster.migration("ha", spec)
    cluster.wait(
        "ha", lambda s: s.get("phase") == "Migrating" and _applying(database_url), "apply running"
    )
    a.kill()
    killed = time.monotonic()
    took_over = wait_holder(cluster, "replica-b", timeout=DURATION + 10)
    status = cluster.wait_terminal("ha", timeout=180)
    finished = time.monotonic() - killed
    print(f"takeover {took_over:.1f}s after SIGKILL; run finished {finished:.1f}s after it")

    assert status["phase"] == "Succeeded", status.get("message")
    assert took_over <= DURATION + RESYNC, took_over
    assert condition(status, "Ready")["status"] == "True"
    assert history_versions(database_url) == {1: "applied", 2: "applied", 3: "applied"}
    assert _history_rows(database_url) == 3  # one row per version: none applied twice
    jobs = cluster.finished_jobs("ha")
    assert sorted(j["metadata"]["name"] for j in jobs) == [
        f"ha-{s}-g1" for s in ("apply", "plan", "verify")
    ]
    for job in jobs:  # each step Job once, one pod each, no retry
        assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), job
        pods = cluster.kube.list("Pod", cluster.ns, f"job-name={job['metadata']['name']}")
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    idle = before_takeover(b.log())
    assert idle, "the follower logged nothing before it took the lease"
    assert all("] dbmigrate.leader " in line for line in idle), idle  # no Kopf, no reconcile
    assert lease(cluster)["leaseTransitions"] == 1
    assert first_reconcile_after_takeover(b.log()) <= RESYNC  # it picked the run up at once


def test_sigterm_hands_the_lease_over_at_once(
    cluster: Cluster, replicas: tuple[OperatorProcess, OperatorProcess]
) -> None:
    a, b = leader_and_follower(cluster, replicas)
    assert a.proc is not None
    assert wait_healthy(b).startswith("standby")  # the kubelet keeps a waiting replica
    os.killpg(a.proc.pid, signal.SIGTERM)
    took_over = wait_holder(cluster, "replica-b", timeout=DURATION)
    assert a.proc.wait(timeout=15) == 0, a.log()[-3000:]
    print(f"takeover {took_over:.1f}s after SIGTERM")
    assert not wait_healthy(b).startswith("standby")  # Kopf's own endpoint, same port
    assert "released the lease" in a.log()
    assert took_over < DURATION / 2, took_over  # not the expiry: the release
    wait_log(b, TOOK)


def test_a_leader_whose_lease_is_taken_exits(
    cluster: Cluster, replicas: tuple[OperatorProcess, OperatorProcess]
) -> None:
    a, _ = replicas
    a.start()
    wait_holder(cluster, "replica-a", timeout=30)
    current = cluster.kube.get("Lease", cluster.ns, LEASE)
    assert current is not None
    current["spec"]["holderIdentity"] = "intruder"
    cluster.kube.request(
        "PUT", f"/apis/coordination.k8s.io/v1/namespaces/{cluster.ns}/leases/{LEASE}", current
    )
    assert a.proc is not None
    began = time.monotonic()
    code = a.proc.wait(timeout=RENEW + 5)
    print(f"the leader exited {time.monotonic() - began:.1f}s after losing the lease")
    assert code == 1
    assert "lost the leadership (the lease was taken by intruder)" in a.log()


def _applying(url: str) -> bool:
    """True while a migration statement of the run is sleeping in PostgreSQL."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
            ("%pg_sleep(4)%",),
        ).fetchone()
    return bool(row and row[0])


def _history_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM dbmigrate.schema_migrations").fetchone()
    return int(row[0]) if row else 0
