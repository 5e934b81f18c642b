"""The remedies docs/conditions.md gives for the performance watch, the operator-wide pause,
rollouts and two Events, each done as written once its state was produced for real. One operator
serves every case at once, each on its own small database:

- OperatorPaused: the operator started with ``--paused`` (the chart's ``operator.paused: true``);
  every resource says so and starts nothing. The remedy (``operator.paused: false`` and upgrade
  the release) is, on the test bed, the same operator started again without ``--paused``: each
  resource says Resumed and goes on by itself;
- Regressed (``onRegression: Notify``): a fix forward in a new generation makes it Ready again;
- PerformanceRegressed (``onRegression: Rollback``): the fixed migration in a new generation
  succeeds, Ready;
- Unavailable (no pg_stat_statements): the extension created, the next generation samples it;
  beside it NotificationFailed (a webhook that is down): its Secret fixed, the next one arrives;
- WorkloadNotFound: a fixed ``spec.rollback.scaleDown`` scales the real workload at the next
  rollback;
- RollbackFailed of a MigrationRollback (a view of the application's on the table the run
  created stops the drop): the database checked by hand (``dbmigrate history``) and the workload
  scaled back to the replicas the message lists;
- rollouts: WaitingForAnalysis goes on by itself, also past an Inconclusive verdict (which needs
  nothing either: the child stays Ready); WaitingForPromote goes on with ``kubectl dbmigrate
  promote``; FailureBudgetExceeded with the cause fixed and a new template (the waves start
  over), ending RolloutComplete.

The workloads are loops of one query in a thread (an index lookup on 50 000 rows), so a dropped
index is a clear slowdown within a few seconds of sampling. The other rows' remedies are done in
the tests that produce their states (tests/cluster: the gates, healing, rollback on demand).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmigrate import API_GROUP, API_VERSION
from tests.cluster.operator_harness import (
    ROLLOUTS,
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    databases,
    deployment,
    history_versions,
    inline_files,
    pod_url,
    sample_spec,
)
from tests.webhook_receiver import TOKEN, Receiver, free_port, running_receiver

__all__ = ["cluster", "crd", "databases"]  # fixtures used by name

pytestmark = pytest.mark.local_testbed(
    reason="five migrations and two rollouts at once on one operator (process pods); the kind "
    "tier keeps its budget"
)

PLUGIN = str(Path(sys.executable).parent / "kubectl-dbmigrate")
NOTES = {
    "001_notes.sql": "CREATE TABLE notes (id bigint PRIMARY KEY, body text);",
    "002_notes_body_index.sql": "CREATE INDEX CONCURRENTLY idx_notes_body ON notes (body);",
}
LOOKUP = "SELECT id FROM items WHERE code = %s"
DROP = {"001_drop_code_index.sql": "DROP INDEX CONCURRENTLY IF EXISTS idx_items_code;"}
RESTORE = {
    "002_restore_code_index.sql": (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_items_code ON items (code);"
    )
}
FIXED_DROP = {"001_drop_code_index.sql": "DROP INDEX CONCURRENTLY IF EXISTS idx_items_unused;"}
THRESHOLDS: dict[str, float] = {
    "minCalls": 5, "minBaselineSeconds": 2, "probeRuns": 1, "minDeltaMs": 0.5,
}  # fmt: skip
WATCH: dict[str, Any] = {"duration": "3s", "interval": "1s", "thresholds": THRESHOLDS}


def _spec(secret: str, files: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Small and quick: inline files, no backup, no probes, one pod per step Job."""
    base: dict[str, Any] = {
        "database": {"secretRef": {"name": secret, "uriKey": "uri"}},
        "source": {"inline": inline_files(files or NOTES)},
        "backup": {"enabled": False},
        "verification": {"analyze": False},
        "safety": {"lintPolicy": "warn"},
        "jobs": {"backoffLimit": 0},
    }
    return sample_spec(**{**base, **overrides})


def _watched(secret: str, files: dict[str, str], on_regression: str) -> dict[str, Any]:
    return _spec(
        secret, files, watch={**WATCH, "onRegression": on_regression},
        rollback={"strategy": "DropCreatedObjects"},
    )  # fmt: skip


def _is(type_: str, status: str, reason: str) -> Callable[[dict[str, Any]], bool]:
    def check(s: dict[str, Any]) -> bool:
        found = condition(s, type_)
        return (found.get("status"), found.get("reason")) == (status, reason)

    return check


def _generation_ended(cluster: Cluster, name: str) -> Callable[[dict[str, Any]], bool]:
    """The run of the resource's current generation has ended."""
    generation = (cluster.get(name) or {})["metadata"]["generation"]
    return lambda s: s.get("observedGeneration") == generation and s.get("phase") in (
        "Succeeded", "Failed", "RolledBack",
    )  # fmt: skip


def _kubectl(testbed: Any, command: str) -> str:
    """Run a ``kubectl ...`` command line as a person pastes it (the test bed's kubeconfig)."""
    argv = shlex.split(command)
    assert argv[0] == "kubectl", command
    done = testbed.kubectl(*argv[1:])
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return str(done.stdout)


def _plugin(testbed: Any, ns: str, *args: str) -> str:
    argv = [PLUGIN, *args, "--kubeconfig", str(testbed.kubeconfig), "-n", ns]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def _merge(cluster: Cluster, path: str, body: dict[str, Any]) -> None:
    cluster.kube.request("PATCH", path, body, content_type="application/merge-patch+json")


def _secret_path(cluster: Cluster, name: str) -> str:
    return f"/api/v1/namespaces/{cluster.ns}/secrets/{name}"


class Lookups(threading.Thread):
    """The application: one indexed lookup in a loop until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    conn.execute(LOOKUP, (f"c{1 + n % 50_000}",)).fetchall()
                    time.sleep(0.02)
        except BaseException as exc:  # reported by the test, never swallowed
            self.error = exc


def _items(url: str, *, statements: bool = True) -> None:
    """A table the workload reads by an index, and an index nobody uses."""
    with psycopg.connect(url, autocommit=True) as conn:
        if statements:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, code text NOT NULL, n int)")
        conn.execute("INSERT INTO items SELECT g, 'c' || g, g % 7 FROM generate_series(1, 50000) g")
        conn.execute("CREATE INDEX idx_items_code ON items (code)")
        conn.execute("CREATE INDEX idx_items_unused ON items (n)")
        conn.execute("ANALYZE items")


def _index_exists(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()
        return bool(row and row[0])


# --- rollouts -------------------------------------------------------------------------------


def _reasons_seen(
    cluster: Cluster, name: str, until: Callable[[dict[str, Any]], bool], timeout: float
) -> tuple[list[str], dict[str, Any]]:
    """The rollout's Reconciling reasons, in the order seen, until ``until(status)``."""
    seen: list[str] = []

    def look(status: dict[str, Any]) -> bool:
        reason = condition(status, "Reconciling").get("reason")
        if reason and (not seen or seen[-1] != reason):
            seen.append(reason)
        return until(status)

    return seen, cluster.wait_rollout(name, look, f"after {seen}", timeout)


def _target(cluster: Cluster, name: str, url: str, fleet: str) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": {"fleet": fleet}},
            "stringData": {"uri": pod_url(url)},
        }
    )


def _template(files: dict[str, str], **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": {"inline": inline_files(files)},
        "backup": {"enabled": False},
        "verification": {"analyze": False},
        "safety": {"lintPolicy": "warn"},
        "jobs": {"backoffLimit": 0},
    }
    return {**base, **overrides}


ACCOUNTS = {"001_accounts.sql": "CREATE TABLE accounts (id bigint PRIMARY KEY);"}


# --- the scenarios, each in its own thread --------------------------------------------------


def _in_threads(scenarios: dict[str, Callable[[], None]]) -> Callable[[], None]:
    """Start each scenario in a thread; the returned function joins them and raises the first
    failure (with every failing scenario's name)."""
    raised: dict[str, BaseException] = {}
    began = time.monotonic()

    def wrap(name: str, scenario: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                scenario()
                print(f"scenario {name} done after {time.monotonic() - began:.1f}s")
            except BaseException as exc:  # pytest.fail raises a BaseException: hand it over
                raised[name] = exc

        return run

    threads = [
        threading.Thread(target=wrap(n, s), name=n, daemon=True) for n, s in scenarios.items()
    ]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join(timeout=400)
            assert not thread.is_alive(), f"scenario {thread.name} did not end within 400 s"
        if raised:
            for name, exc in raised.items():
                print(f"scenario {name} failed: {exc!r}")
            raise next(iter(raised.values()))

    return join


def test_each_later_state_is_left_the_way_the_docs_say(
    testbed: Any, cluster: Cluster, databases: Callable[[], str], tmp_path: Path
) -> None:
    began = time.monotonic()
    names = ("slow", "rolls", "nostats", "scale", "undone")
    urls = {name: databases() for name in names}
    fleet = {name: databases() for name in ("fleet-a", "fleet-b", "canary-w", "canary-q")}
    for name, url in urls.items():
        cluster.secret(f"{name}-db", {"uri": pod_url(url)})
    _items(urls["slow"])
    _items(urls["rolls"])
    with psycopg.connect(fleet["fleet-b"], autocommit=True) as conn:  # a stray table: it fails
        conn.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, note text)")
    _items(fleet["canary-w"])
    with psycopg.connect(fleet["canary-q"], autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    cluster.secret("hooks", {"url": f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"})  # down
    cluster.create(deployment("web", 2, {"containers": [{"name": "web", "image": "example/w:1"}]}))
    cluster.create(deployment("api", 3, {"containers": [{"name": "api", "image": "example/a:1"}]}))
    read = {"slow": urls["slow"], "rolls": urls["rolls"], "canary-w": fleet["canary-w"]}
    workloads = {name: Lookups(url) for name, url in read.items()}
    for workload in workloads.values():
        workload.start()

    log = tmp_path / "operator.log"
    kubeconfig = Path(testbed.kubeconfig)
    flags = ("--notify-attempts", "1")
    paused = OperatorProcess(kubeconfig, [cluster.ns], log, extra_args=(*flags, "--paused"))
    paused.start()
    cluster.watchdogs.append(paused.assert_alive)
    operator = OperatorProcess(kubeconfig, [cluster.ns], log, extra_args=flags)
    receiver_cm = running_receiver()
    receiver: Receiver = receiver_cm.__enter__()
    try:
        failing = {**NOTES, "003_fails.sql": "ALTER TABLE notes ADD COLUMN body text;"}
        specs = {
            "slow": _watched("slow-db", DROP, "Notify"),
            "rolls": _watched("rolls-db", DROP, "Rollback"),
            "nostats": {**_watched("nostats-db", NOTES, "Notify"),
                        "notifications": [{"name": "team", "secretRef": {"name": "hooks"}}]},
            "undone": _spec("undone-db", rollback={
                "strategy": "DropCreatedObjects",
                "scaleDown": [{"kind": "Deployment", "name": "api"}],
            }),
            "scale": _spec("scale-db", failing, rollback={
                "strategy": "DropCreatedObjects",
                "scaleDown": [{"kind": "Deployment", "name": "webapp"}],  # a typo: no such one
            }),
        }  # fmt: skip
        for name, spec in specs.items():
            cluster.migration(name, spec)

        # --- OperatorPaused: nothing starts; the remedy is the operator without --paused -------
        for name in names:
            held = cluster.wait(
                name, _is("ReconciliationPaused", "True", "OperatorPaused"), "OperatorPaused", 30
            )
            assert held.get("phase") in (None, "Pending"), held
        assert cluster.jobs() == [], "a step Job started while the operator was paused"
        assert "OperatorPaused" in cluster.event_reasons("slow")
        paused.stop()
        cluster.watchdogs.remove(paused.assert_alive)
        operator.start()  # as the chart's release upgraded with operator.paused: false
        cluster.watchdogs.append(operator.assert_alive)
        for name in names:
            cluster.wait(name, _is("ReconciliationPaused", "False", "Resumed"), "Resumed", 30)
        print(f"the paused operator's resources resumed after {time.monotonic() - began:.1f}s")

        # the rollouts, now that the operator runs
        for name, url in fleet.items():
            _target(cluster, name, url, name.split("-")[0])
        cluster.rollout("fleet", {
            "template": _template(ACCOUNTS, rollback={"strategy": "None"}),
            "targets": {"selector": {"fleet": "fleet"}, "uriKey": "uri"},
            "waves": [{"name": "all", "maxParallel": 2}],
            "failureBudget": {"maxFailures": 0},
        })  # fmt: skip
        thresholds = {**THRESHOLDS, "minCalls": 40}  # only canary-w's lookups reach it
        cluster.rollout("canary", {
            "template": _template(NOTES, watch={**WATCH, "thresholds": thresholds}),
            "targets": {"selector": {"fleet": "canary"}, "uriKey": "uri"},
            "waves": [{"name": "one", "count": 1, "pause": {}}, {"name": "two"}],
        })  # fmt: skip

        def slow() -> None:  # Regressed (Notify): fix forward with a new generation
            found = cluster.wait("slow", lambda s: bool(condition(s, "PerformanceVerified")),
                                 "the verdict", 180)  # fmt: skip
            assert _is("PerformanceVerified", "False", "Regressed")(found), found.get("conditions")
            assert found["phase"] == "Succeeded", found.get("message")
            assert _is("Ready", "False", "Regressed")(found)
            assert _is("Stalled", "True", "Regressed")(found)
            cluster.patch(
                "slow", {"spec": {"source": {"inline": inline_files({**DROP, **RESTORE})}}}
            )
            fixed = cluster.wait("slow", _generation_ended(cluster, "slow"), "generation 2", 180)
            assert fixed["phase"] == "Succeeded", fixed.get("message")
            assert _is("Ready", "True", "Succeeded")(fixed)
            assert _is("Stalled", "False", "Succeeded")(fixed)
            assert _index_exists(urls["slow"], "idx_items_code")

        def rolls() -> None:  # PerformanceRegressed: fix the migration, a new generation
            rolled = cluster.wait(  # Succeeded first; the watch then rolls it back
                "rolls", lambda s: s.get("phase") in ("RolledBack", "Failed"), "RolledBack", 180
            )
            assert rolled["phase"] == "RolledBack", rolled.get("message")
            assert _is("Stalled", "True", "PerformanceRegressed")(rolled), rolled["conditions"]
            assert _index_exists(urls["rolls"], "idx_items_code")
            cluster.patch("rolls", {"spec": {"source": {"inline": inline_files(FIXED_DROP)}}})
            fixed = cluster.wait("rolls", _generation_ended(cluster, "rolls"), "generation 2", 180)
            assert fixed["phase"] == "Succeeded", fixed.get("message")
            assert _is("Ready", "True", "Succeeded")(fixed)
            assert _is("Stalled", "False", "Succeeded")(fixed)
            assert not _index_exists(urls["rolls"], "idx_items_unused")
            assert _index_exists(urls["rolls"], "idx_items_code")

        def nostats() -> None:  # Unavailable: enable pg_stat_statements; NotificationFailed
            failed = cluster.wait_event("nostats", lambda e: e["reason"] == "NotificationFailed",
                                        120)  # fmt: skip
            assert failed["type"] == "Warning" and TOKEN not in failed["message"]
            found = cluster.wait("nostats", lambda s: bool(condition(s, "PerformanceVerified")),
                                 "the verdict", 180)  # fmt: skip
            assert _is("PerformanceVerified", "False", "Unavailable")(found), found["conditions"]
            missing = " ".join(found["watch"]["report"]["missing"])
            assert "CREATE EXTENSION pg_stat_statements" in missing, missing
            assert _is("Ready", "True", "Succeeded")(found)
            with psycopg.connect(urls["nostats"], autocommit=True) as conn:
                conn.execute("CREATE EXTENSION pg_stat_statements")
            _merge(cluster, _secret_path(cluster, "hooks"),
                   {"stringData": {"url": receiver.url("json")}})  # fmt: skip
            more = {**NOTES, "003_notes_seen.sql": "ALTER TABLE notes ADD COLUMN seen boolean;"}
            cluster.patch("nostats", {"spec": {"source": {"inline": inline_files(more)}}})
            again = cluster.wait("nostats", _generation_ended(cluster, "nostats"), "gen 2", 180)
            assert again["phase"] == "Succeeded", again.get("message")
            for sample in ("runStart", "beforeApply"):  # the watch's baseline reads it now
                snapshot = again["watch"][sample]
                assert snapshot["statementsAvailable"] is True, snapshot.get("missing")
                assert not snapshot.get("missing"), snapshot["missing"]
            receiver.wait_for(1, "json")
            told = [(b["event"], b["runId"]) for b in receiver.received("json")]
            assert ("Succeeded", again["runId"]) in told, told

        def scale() -> None:  # WorkloadNotFound: fix spec.rollback.scaleDown
            rolled = cluster.wait_terminal("scale", 150)
            assert rolled["phase"] == "RolledBack", rolled.get("message")
            event = cluster.wait_event("scale", lambda e: e["reason"] == "WorkloadNotFound")
            assert event["type"] == "Warning" and "webapp" in event["message"]
            rollback = {"strategy": "DropCreatedObjects", "scaleDown": [
                {"kind": "Deployment", "name": "web"}]}  # fmt: skip
            cluster.patch("scale", {"spec": {"rollback": rollback}})
            again = cluster.wait("scale", _generation_ended(cluster, "scale"), "generation 2", 150)
            assert again["phase"] == "RolledBack", again.get("message")  # 003 still fails
            assert again["scaledWorkloads"] == [
                {"kind": "Deployment", "name": "web", "replicas": 2, "restored": True}
            ]
            cluster.wait_event("scale", lambda e: e["reason"] == "WorkloadScaledDown"
                               and "Deployment web from 2 to 0" in e["message"])  # fmt: skip
            assert cluster.kube.replicas("Deployment", cluster.ns, "web") == 2
            scaled = [e["message"] for e in cluster.events("scale")
                      if e["reason"] in ("WorkloadScaledDown", "WorkloadScaledUp")]  # fmt: skip
            assert not any("webapp" in m for m in scaled), scaled  # the missing one: not scaled

        def undone() -> None:  # RollbackFailed of a MigrationRollback
            done = cluster.wait_terminal("undone", 120)
            assert done["phase"] == "Succeeded", done.get("message")
            with psycopg.connect(urls["undone"], autocommit=True) as conn:  # the app's own view
                conn.execute("CREATE VIEW recent_notes AS SELECT id FROM notes")
            cluster.create(
                {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": "MigrationRollback",
                    "metadata": {"name": "undo-it"},
                    "spec": {"migration": "undone"},
                }
            )
            deadline, request = time.monotonic() + 150, dict[str, Any]()
            ended = ("Succeeded", "Failed", "Refused")
            while time.monotonic() < deadline and request.get("phase") not in ended:
                found = cluster.kube.get("MigrationRollback", cluster.ns, "undo-it") or {}
                request = found.get("status") or {}
                time.sleep(0.5)
            assert request.get("phase") == "Failed", request
            assert _is("Stalled", "True", "RollbackFailed")(request), request
            failed = cluster.wait_phase("undone", "Failed", timeout=30)
            assert _is("RolledBack", "False", "RollbackFailed")(failed), failed["conditions"]
            assert cluster.kube.replicas("Deployment", cluster.ns, "api") == 0  # stays down
            message = condition(failed, "RolledBack")["message"]
            assert "Deployment/api (was 3)" in message, message
            # the remedy: check the database by hand, then scale back to the replicas listed
            history = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dbmigrate.cli.main",
                    "history",
                    "--database-url",
                    urls["undone"],
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert history.returncode == 0 and "notes" in history.stdout, history
            testbed.kubectl("scale", "deployment/api", "--replicas=3", "-n", cluster.ns, check=True)
            assert cluster.kube.replicas("Deployment", cluster.ns, "api") == 3

        def fleet_rollout() -> None:  # FailureBudgetExceeded, RolloutComplete
            stopped = cluster.wait_rollout("fleet", lambda s: s.get("phase") == "Stopped",
                                    "Stopped", 150)  # fmt: skip
            assert _is("Stalled", "True", "FailureBudgetExceeded")(stopped)
            assert [f["target"] for f in stopped["failedTargets"]] == ["fleet-b"], stopped
            with psycopg.connect(fleet["fleet-b"], autocommit=True) as conn:  # fix the cause
                conn.execute("DROP TABLE accounts")
            template = _template(ACCOUNTS, rollback={"strategy": "DropCreatedObjects"})
            _merge(cluster, ROLLOUTS.format(ns=cluster.ns) + "/fleet",
                   {"spec": {"template": template}})  # fmt: skip
            done = cluster.wait_rollout("fleet", lambda s: s.get("phase") == "Completed",
                                 "Completed", 150)  # fmt: skip
            assert _is("Ready", "True", "RolloutComplete")(done) and done["progress"] == "2/2"
            for name in ("fleet-a", "fleet-b"):
                assert history_versions(fleet[name]) == {1: "applied"}, name

        def canary_rollout() -> None:  # WaitingForAnalysis, WaitingForPromote; Inconclusive
            seen, waiting = _reasons_seen(
                cluster, "canary",
                lambda s: condition(s, "Reconciling").get("reason") == "WaitingForPromote", 180,
            )  # fmt: skip
            assert "WaitingForAnalysis" in seen, seen
            assert waiting["waves"][0]["state"] == "WaitingForPromote", waiting["waves"]
            said = _plugin(testbed, cluster.ns, "promote", "canary", "--timeout", "30s")
            assert "asked DatabaseMigrationRollout canary to promote" in said, said
            seen, done = _reasons_seen(
                cluster, "canary", lambda s: s.get("phase") == "Completed", 180
            )
            assert "WaitingForAnalysis" in seen, seen
            assert _is("Ready", "True", "RolloutComplete")(done) and done["progress"] == "2/2"
            assert done["lastHandledPromote"]
            loud = condition(cluster.status("canary-canary-w"), "PerformanceVerified")
            assert loud["reason"] == "NoRegression", loud
            quiet = cluster.status("canary-canary-q")  # Inconclusive: nothing to do
            assert condition(quiet, "PerformanceVerified")["reason"] == "Inconclusive", quiet
            assert _is("Ready", "True", "Succeeded")(quiet) and quiet["phase"] == "Succeeded"

        join = _in_threads({
            "slow": slow, "rolls": rolls, "nostats": nostats, "scale": scale, "undone": undone,
            "fleet": fleet_rollout, "canary": canary_rollout,
        })  # fmt: skip
        join()
        for name, workload in workloads.items():
            assert workload.error is None, (name, workload.error)
        print(f"every remedy worked after {time.monotonic() - began:.1f}s")
    finally:
        for workload in workloads.values():
            workload.stop.set()
        receiver_cm.__exit__(None, None, None)
        paused.stop()
        operator.stop()
        print(f"----- operator log ({log}) -----")
        print(log.read_text(errors="replace")[-30000:] if log.exists() else "")
