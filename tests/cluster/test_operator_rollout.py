"""A fleet rollout end to end: one migration, many target databases (one PostgreSQL server, one
database and Secret each), in three waves with a soak between the first two and a failure
budget; one target made to fail stops the rollout with that target named, the third wave never
starts, and (``rollbackOnFailure``) the failing wave's targets that succeeded are rolled back.
Beside it, a small rollout completes, and a Secret added later gets the migration.

The number of targets is ``DBMIGRATE_TEST_ROLLOUT_TARGETS`` (default 50). The failing target is in
the second wave's first batch, so only about six targets run their three step Jobs (processes of
the local kubelet) before the budget stops the rollout; bench/ measures full rollouts.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from dbmigrate.engine.history import ensure_history
from testbed.postgres import fresh_database
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    operator,
    pod_url,
)
from tests.webhook_receiver import running_receiver

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

TARGETS = int(os.environ.get("DBMIGRATE_TEST_ROLLOUT_TARGETS", "50"))
FILES = {"001_accounts.sql": "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY);\n"}
SOAK = 3


def _template() -> dict[str, Any]:
    return {
        "source": {"configMap": {"name": "fleet-files"}},
        "backup": {"enabled": False},
        "verification": {"analyze": False},
    }


def _secret(cluster: Cluster, name: str, url: str, labels: dict[str, str]) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": labels},
            "stringData": {"uri": pod_url(url)},
        }
    )


def _edited_elsewhere(url: str) -> None:
    """Record version 1 as applied from another file: this target's plan finds drift."""
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_history(conn)
        conn.execute(
            "INSERT INTO dbmigrate.schema_migrations (version, name, checksum, status) "
            "VALUES (1, 'accounts', %s, 'applied')",
            ("0" * 64,),
        )


@contextlib.contextmanager
def _ready_reasons(cluster: Cluster, name: str) -> Iterator[set[str]]:
    """The reasons of the rollout's Ready condition seen while the block runs (a soak of a few
    seconds included: polled every 0.2 s)."""
    seen: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.2):
            reason = condition(cluster.rollout_status(name), "Ready").get("reason")
            if reason:
                seen.add(reason)

    thread = threading.Thread(target=poll, name=f"reasons-{name}", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=10)


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.local_testbed(
    reason="50 databases and their Jobs: the test bed's scale; kind has its own rollout test"
)
def test_a_rollout_in_waves_stops_at_its_failure_budget_and_late_secrets_join(
    cluster: Cluster, operator: OperatorProcess, pg_admin_url: str
) -> None:
    began = time.monotonic()
    cluster.watchdogs.append(operator.assert_alive)
    with contextlib.ExitStack() as stack:
        hooks = stack.enter_context(running_receiver())
        urls = [stack.enter_context(fresh_database(pg_admin_url, "fleet")) for _ in range(TARGETS)]
        late = [stack.enter_context(fresh_database(pg_admin_url, "late")) for _ in range(2)]
        names = [f"tenant-{i:03d}" for i in range(TARGETS)]
        failing = names[3]  # the second wave's second target
        _edited_elsewhere(urls[3])
        cluster.config_map("fleet-files", FILES)
        for name, url in zip(names, urls, strict=True):
            _secret(cluster, name, url, {"fleet": "yes"})
        _secret(cluster, "late-000", late[0], {"fleet": "late"})
        cluster.secret("hooks", {"url": hooks.url()})
        prepared = time.monotonic()
        cluster.rollout(
            "fleet",
            {
                "template": _template(),
                "targets": {"selector": {"fleet": "yes"}, "uriKey": "uri"},
                "waves": [
                    {"name": "canary", "count": 2, "maxParallel": 2,
                     "pause": {"duration": f"{SOAK}s"}},
                    {"name": "early", "percent": 50, "maxParallel": 4},
                    {"name": "rest", "maxParallel": 8},
                ],
                "failureBudget": {"maxFailures": 0},
                "rollbackOnFailure": True,
            },
        )  # fmt: skip
        fleet_reasons = stack.enter_context(_ready_reasons(cluster, "fleet"))
        cluster.rollout(
            "tenants",
            {
                "template": _template(),
                "targets": {"selector": {"fleet": "late"}, "uriKey": "uri"},
                "waves": [{"name": "all", "maxParallel": 2}],
                "notifications": [{"name": "team", "secretRef": {"name": "hooks"}}],
            },
        )
        done = cluster.wait_rollout(
            "tenants", lambda s: s.get("phase") == "Completed", "Completed", 90
        )
        assert done["progress"] == "1/1"
        assert condition(done, "Ready")["status"] == "True"
        _secret(cluster, "late-001", late[1], {"fleet": "late"})  # a new tenant
        joined = cluster.wait_rollout(
            "tenants",
            lambda s: s.get("phase") == "Completed" and s.get("progress") == "2/2",
            "the late Secret's migration", 90,
        )  # fmt: skip
        assert joined["totals"]["total"] == 2
        assert history_versions(late[1]) == {1: "applied"}
        hooks.wait_for(5)  # started, ended, complete; then again for the late tenant
        told = [(b["event"], b["wave"]) for b in hooks.received()]
        assert told[:3] == [("WaveStarted", "all"), ("WaveCompleted", "all"),
                            ("RolloutComplete", None)], told  # fmt: skip
        assert ("RolloutComplete", None) in told[3:] and hooks.received()[-1]["totals"][
            "total"
        ] == 2

        stopped = cluster.wait_rollout(
            "fleet", lambda s: s.get("phase") == "Stopped", "Stopped", 150
        )
        ended = time.monotonic()
        stalled = condition(stopped, "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", "FailureBudgetExceeded")
        assert condition(stopped, "Ready")["status"] == "False"
        assert failing in stopped["message"] and "DriftDetected" in stopped["message"]
        assert [f["target"] for f in stopped["failedTargets"]] == [failing]
        assert stopped["failedTargets"][0]["reason"] == "DriftDetected"
        waves = {w["name"]: w for w in stopped["waves"]}
        assert waves["canary"]["state"] == "Succeeded"
        assert waves["canary"]["totals"]["succeeded"] == 2
        assert waves["rest"]["state"] == "Pending"
        children = cluster.kube.list("DatabaseMigration", cluster.ns, "dbmigrate.io/rollout=fleet")
        by_wave: dict[str, list[dict[str, Any]]] = {}
        for child in children:
            by_wave.setdefault(child["metadata"]["labels"]["dbmigrate.io/wave"], []).append(child)
        assert "rest" not in by_wave  # the budget stopped the rollout before the third wave
        assert len(by_wave["early"]) <= 4 + 1  # never more than maxParallel started past the fail
        soak_end = _stamp(waves["canary"]["finishedAt"]) + timedelta(seconds=SOAK - 1)
        first_early = min(_stamp(c["metadata"]["creationTimestamp"]) for c in by_wave["early"])
        assert first_early >= soak_end, (first_early, waves["canary"])
        for name, url in zip(names[:2], urls[:2], strict=True):
            assert history_versions(url) == {1: "applied"}, name
        assert history_versions(urls[-1]) == {}  # a third-wave target was never touched
        # the way there went on by itself: the canary's wave progressed, then soaked
        assert {"WaveProgressing", "Soaking"} <= fleet_reasons, fleet_reasons

        # rollbackOnFailure: the failing wave's succeeded targets roll back (WaveRollbackRequested;
        # its remedy, "follow each child's rollback", is each child ending RolledBack)
        cluster.wait_event("fleet", lambda e: e["reason"] == "WaveRollbackRequested", 30)
        undone = [c["metadata"]["name"] for c in by_wave["early"]]
        undone.remove(f"fleet-{failing}")
        assert undone, by_wave["early"]
        for child in undone:
            back = cluster.wait(child, lambda s: s.get("phase") == "RolledBack", "RolledBack", 120)
            assert condition(back, "Stalled")["reason"] == "RollbackRequested", child
            assert history_versions(urls[names.index(child.removeprefix("fleet-"))]) == {
                1: "rolled_back"
            }, child
        for name, url in zip(names[:2], urls[:2], strict=True):  # the canary's stay applied
            assert history_versions(url) == {1: "applied"}, name
    print(
        f"rollout scenario: {TARGETS} targets, prepared in {prepared - began:.1f}s, stopped "
        f"{ended - prepared:.1f}s after the rollout was created"
    )


@pytest.mark.real_kubelet
def test_a_rollout_on_kind_spreads_its_step_jobs_over_the_workers(
    cluster: Cluster, operator: OperatorProcess, pg_admin_url: str
) -> None:
    """The kind tier: targets in the cluster's PostgreSQL, the project's image, real nodes."""
    began = time.monotonic()
    cluster.watchdogs.append(operator.assert_alive)
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(fresh_database(pg_admin_url, "kind")) for _ in range(6)]
        cluster.config_map("fleet-files", FILES)
        for i, url in enumerate(urls):
            _secret(cluster, f"shard-{i}", url, {"fleet": "kind"})
        spec = {
            "template": _template(),
            "targets": {"selector": {"fleet": "kind"}, "uriKey": "uri"},
            "waves": [
                {"name": "one", "count": 2, "maxParallel": 2},
                {"name": "all", "maxParallel": 4},
            ],
        }
        cluster.rollout("shards", spec)
        done = cluster.wait_rollout(
            "shards", lambda s: s.get("phase") == "Completed", "Completed", 300
        )
        assert done["progress"] == "6/6", done
        for url in urls:
            assert history_versions(url) == {1: "applied"}
        pods = cluster.kube.list("Pod", cluster.ns, "dbmigrate.io/step")
        nodes = {p["spec"].get("nodeName") for p in pods}
        assert len(pods) == 18 and len(nodes) >= 2, sorted(filter(None, nodes))
    print(f"kind rollout: 6 targets on {len(nodes)} nodes in {time.monotonic() - began:.1f}s")
