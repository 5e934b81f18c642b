"""The performance watch end to end on the test bed, under a real workload: a process running the
guide's dashboard query (``SELECT * FROM page_views WHERE path = '/dashboard' ORDER BY timestamp
DESC LIMIT 100``) in a loop while its Deployment has replicas, against PostgreSQL with
pg_stat_statements.

1. The real 005 (the performance indexes) is watched after Succeeded: NoRegression, with the
   dashboard query among the queries that got faster and the probe's median time lower after.
2. The issue's own regression: 006 drops the index those queries use
   (idx_page_views_timestamp_desc_path; the team took its verification probe out with it, so
   the verify passes). The watch finds the dashboard query slower: Regressed, and with
   ``onRegression: Rollback`` the run is rolled back: the Deployment scaled 2 -> 0 -> 2 and the
   dropped index built again from the definition the apply recorded before the drop, valid and
   as it was. It ends RolledBack with reason PerformanceRegressed, the offending query in the
   message.

Short windows (seconds) and thresholds tuned in the spec keep it fast; the data is small but the
seq scan and sort the regression forces are still many times slower than the index scan.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from dbmigrate.api.labels import LABEL_STEP
from dbmigrate.cli.resource_state import judge_resource
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    app_image,
    cluster,
    condition,
    crd,
    deployment,
    migration_files,
    operator,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name
pytestmark = pytest.mark.local_testbed(
    reason="two full runs and two watch windows: the end-to-end proof of the watch is kept to "
    "the local test bed, within the kind tier's time budget"
)

DASHBOARD = "SELECT * FROM page_views WHERE path = %s ORDER BY timestamp DESC LIMIT 100"
DASHBOARD_INDEX = "idx_page_views_timestamp_desc_path"
DROP = f"""-- 006: the dashboard's index is thought unused; drop it.
DROP INDEX CONCURRENTLY IF EXISTS {DASHBOARD_INDEX};
"""
INDEX_NOW = """SELECT pg_get_indexdef(i.indexrelid), i.indisvalid AND i.indisready FROM pg_index i
WHERE i.indexrelid = to_regclass(%s)"""
WATCH = {
    "duration": "8s",
    "interval": "1s",
    "onRegression": "Rollback",
    "thresholds": {"minCalls": 5, "minBaselineSeconds": 3, "probeRuns": 3, "minDeltaMs": 0.5},
}
SCALE_DOWN = [{"kind": "Deployment", "name": "dashboard"}]


class Dashboard(threading.Thread):
    """The application: the dashboard query in a loop while its Deployment has replicas."""

    def __init__(self, url: str, cluster: Cluster, name: str) -> None:
        super().__init__(daemon=True)
        self.url, self.cluster, self.name = url, cluster, name
        self.stop = threading.Event()
        self.calls = 0
        self.paused = 0  # times it found its Deployment at 0 replicas
        self.error: BaseException | None = None

    def replicas(self) -> int:
        found = self.cluster.kube.get("Deployment", self.cluster.ns, self.name) or {}
        return int((found.get("spec") or {}).get("replicas") or 0)

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                checked = 0.0
                running = True
                while not self.stop.is_set():
                    if time.monotonic() - checked > 0.5:
                        checked, running = time.monotonic(), self.replicas() > 0
                        self.paused += not running
                    if running:
                        conn.execute(DASHBOARD, ("/dashboard",)).fetchall()
                        self.calls += 1
                    time.sleep(0.02)
        except BaseException as exc:  # reported by the test, never swallowed
            self.error = exc


def fail_on_failed(testbed: Any, cluster: Cluster) -> None:
    """Stop waiting at once when the run ends Failed, with its step pods' logs."""
    status = cluster.status("analytics")
    if status.get("phase") != "Failed":
        return
    pods = cluster.kube.list("Pod", cluster.ns)
    logs = []
    for pod in pods:
        name = pod["metadata"]["name"]
        kubelet = getattr(testbed, "kubelet", None)
        if kubelet is not None:  # the local test bed's kubelet keeps a file per pod
            logs.append(f"--- {name}:\n{kubelet.logs(cluster.ns, name)}")
        else:
            got = testbed.kubectl("-n", cluster.ns, "logs", name)
            logs.append(f"--- {name}:\n{got.stdout}{got.stderr}")
    pytest.fail(f"the run failed: {status.get('message')}\n" + "\n".join(logs))


def is_watching(status: dict[str, Any]) -> bool:
    return (status.get("watch") or {}).get("state") == "Watching" or verdict(status)


def verdict(status: dict[str, Any]) -> bool:
    return bool(condition(status, "PerformanceVerified"))


def dashboard_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if "FROM page_views WHERE path" in r["query"]), None)


def test_watch_finds_005_faster_and_rolls_back_a_regression(
    testbed: Any, cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    cluster.watchdogs.append(lambda: fail_on_failed(testbed, cluster))
    seed_analytics(database_url, rows=800)  # 001 and 40 000 page views; the run applies 002-005
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    ready_database(cluster, database_url, files=migration_files(5))
    cluster.create(
        deployment("dashboard", 2, {"containers": [{"name": "web", "image": app_image()}]})
    )
    workload = Dashboard(database_url, cluster, "dashboard")
    workload.start()
    try:
        spec = sample_spec(
            backup={"enabled": False},
            watch=WATCH,
            rollback={"strategy": "DropCreatedObjects", "scaleDown": SCALE_DOWN},
        )
        cluster.migration("analytics", spec)

        # 1. the real 005: NoRegression, the dashboard query faster. Nothing waits for the
        # watch: Ready=True (and dbmigrate wait lets the application go) while it samples.
        watching = cluster.wait("analytics", is_watching, "the watch of 005", timeout=180)
        assert condition(watching, "Ready")["status"] == "True"
        assert condition(watching, "Reconciling")["status"] == "False"
        assert judge_resource(cluster.get("analytics"), "analytics", 5).state == "ready"
        status = cluster.wait("analytics", verdict, "the watch's verdict on 005", timeout=180)
        assert workload.error is None, workload.error
        verified = condition(status, "PerformanceVerified")
        assert (verified["status"], verified["reason"]) == ("True", "NoRegression"), verified
        assert status["phase"] == "Succeeded" and condition(status, "Ready")["status"] == "True"
        report = status["watch"]["report"]
        assert status["watch"]["state"] == "Done" and report["samples"] >= 2
        faster = dashboard_row(report["improved"])
        assert faster is not None, report
        assert faster["meanAfterMs"] < faster["meanBeforeMs"]
        probe = report["probes"][0]
        assert probe["probe"] == "recent-views-by-path" and probe["afterMs"] < probe["beforeMs"]
        assert "public.idx_page_views_timestamp_desc_path" not in report["unusedNewIndexes"]
        assert status["watch"]["baselineSeconds"] >= 3  # the apply waited for its window
        cluster.wait_event_reasons("analytics", {"WatchStarted", "NoRegression"})

        # 2. a regressing 006 that drops the dashboard's index, rolled back by the watch
        with psycopg.connect(database_url) as conn:
            definition = conn.execute(INDEX_NOW, (DASHBOARD_INDEX,)).fetchone()
        assert definition is not None and definition[1]
        files = {**migration_files(5), "006_drop_dashboard_index.sql": DROP}
        cluster.kube.request(
            "PATCH",
            f"/api/v1/namespaces/{cluster.ns}/configmaps/analytics-migrations",
            {"data": files},
            content_type="application/merge-patch+json",
        )
        change = {"targetVersion": 6, "safety": {"lintPolicy": "warn"}}
        cluster.patch("analytics", {"spec": {**change, "verification": {"probes": []}}})
        status = cluster.wait_phase("analytics", "RolledBack", timeout=180)
        assert workload.error is None, workload.error
        stalled = condition(status, "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", "PerformanceRegressed"), stalled
        assert "FROM page_views WHERE path" in status["message"], status["message"]
        regressed = condition(status, "PerformanceVerified")
        assert (regressed["status"], regressed["reason"]) == ("False", "Regressed")
        slower = dashboard_row(status["watch"]["report"]["offenders"])
        assert slower is not None and slower["meanAfterMs"] > slower["meanBeforeMs"]
        assert status["failedStep"] == "watch"
        assert judge_resource(cluster.get("analytics"), "analytics", 6).state == "failed"
        assert condition(status, "RolledBack")["reason"] == "DropCreatedObjects"
        with psycopg.connect(database_url) as conn:
            back = conn.execute(INDEX_NOW, (DASHBOARD_INDEX,)).fetchone()
        assert back == definition  # the dropped index is back, valid and as it was
        rebuilt = status["rollback"]["rebuiltIndexes"]
        assert [(r["name"], r["state"], r["valid"]) for r in rebuilt] == [
            (DASHBOARD_INDEX, "rebuilt", True)
        ], rebuilt
        assert status["scaledWorkloads"] == [
            {"kind": "Deployment", "name": "dashboard", "replicas": 2, "restored": True}
        ]
        assert workload.replicas() == 2 and workload.paused > 0  # it was stopped, then back
        cluster.wait_event_reasons("analytics", {"Regressed", "RollingBack", "RolledBack"})
        steps = [j["metadata"]["labels"][LABEL_STEP] for j in cluster.jobs("analytics")]
        assert steps.count("watch") == 2 and "rollback" in steps
    finally:
        workload.stop.set()
        workload.join(timeout=10)
