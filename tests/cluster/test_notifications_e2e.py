"""Webhook notifications end to end: the operator (a real process, on the real API server, with
the real Job controller and PostgreSQL) notifies a real HTTP receiver on 127.0.0.1.

A run that waits for approval and then succeeds delivers exactly two notifications to each
target (the resource's own, URL in a Secret; and an operator-wide one, URL in the operator's
environment, in Slack format), and a restarted operator sends nothing again. A receiver that is
down costs the migration nothing: it succeeds, and a NotificationFailed Event and the metric say
what was lost, without the URL.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    crd,
    history_versions,
    migration_files,
    ready_database,
    sample_spec,
)
from tests.webhook_receiver import TOKEN, Receiver, free_port, running_receiver

__all__ = ["cluster", "crd"]  # fixtures used by name

APPROVE = "dbmigrate.io/approve"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


def _spec(**overrides: Any) -> dict[str, Any]:
    """The sample without probes and without a backup, to keep the scenario short."""
    return sample_spec(verification={"analyze": False}, backup={"enabled": False}, **overrides)


def _operator(
    testbed: Any, namespace: str, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> OperatorProcess:
    proc = OperatorProcess(
        Path(testbed.kubeconfig),
        [namespace],
        tmp_path / "operator.log",
        extra_args=args,
        extra_env=env,
    )
    proc.start()
    return proc


def _stop(proc: OperatorProcess) -> None:
    proc.stop()
    print(f"----- operator log ({proc.log_path}) -----")
    print(proc.log()[-20000:])


def _wait_deliveries(
    cluster: Cluster, how: Callable[[Iterable[bool]], bool], state: str, what: str
) -> dict[str, Any]:
    """The status of "orders" once ``how`` (all/any) of its deliveries are ``state``."""
    return cluster.wait(
        "orders",
        lambda s: how(
            d["state"] == state for r in s.get("notifications") or [] for d in r["deliveries"]
        ),
        what,
        timeout=15,
    )


def test_approval_then_success_notifies_each_target_exactly_twice(
    testbed: Any, cluster: Cluster, database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    began = time.monotonic()
    notify = "name=platform,url-env=PLATFORM_HOOK,format=slack"
    proc = _operator(
        testbed,
        cluster.ns,
        tmp_path,
        ("--notify", notify),
        {"PLATFORM_HOOK": receiver.url("slack")},
    )
    cluster.watchdogs.append(proc.assert_alive)
    try:
        ready_database(cluster, database_url, files=migration_files(2))
        cluster.secret("team-hooks", {"url": receiver.url("json")})
        target = {"name": "team", "secretRef": {"name": "team-hooks"}}
        cluster.migration("orders", _spec(approval={"mode": "Manual"}, notifications=[target]))

        waiting = cluster.wait_phase("orders", "WaitingForApproval", timeout=90)
        plan_hash = waiting["plan"]["planHash"]
        receiver.wait_for(1, "json")
        receiver.wait_for(1, "slack")
        [asked] = receiver.received("json")
        assert asked["kind"] == "DatabaseMigrationNotification"
        assert (asked["event"], asked["namespace"], asked["name"]) == (
            "WaitingForApproval",
            cluster.ns,
            "orders",
        )
        assert asked["planHash"] == plan_hash
        assert asked["approveCommand"] == waiting["approval"]["howToApprove"]
        assert asked["runId"] == waiting["runId"]
        [chat] = receiver.received("slack")
        assert set(chat) == {"text"}
        assert plan_hash in chat["text"] and waiting["approval"]["howToApprove"] in chat["text"]

        cluster.annotate("orders", APPROVE, plan_hash)
        done = cluster.wait_terminal("orders", timeout=120)
        assert done["phase"] == "Succeeded", done.get("message")
        receiver.wait_for(2, "json")
        receiver.wait_for(2, "slack")
        time.sleep(7)  # two resyncs more: nothing else arrives
        assert [b["event"] for b in receiver.received("json")] == [
            "WaitingForApproval",
            "Succeeded",
        ]
        succeeded = receiver.received("json")[1]
        assert succeeded["runId"] == done["runId"] and succeeded["message"] == done["message"]
        assert "planHash" not in succeeded
        texts = [b["text"] for b in receiver.received("slack")]
        assert len(texts) == 2
        assert texts[1] == f"DatabaseMigration {cluster.ns}/orders succeeded: {done['message']}"
        assert history_versions(database_url) == {1: "applied", 2: "applied"}

        recorded = _wait_deliveries(cluster, all, "Delivered", "every delivery recorded")[
            "notifications"
        ]
        assert [
            (r["event"], [(d["source"], d["target"]) for d in r["deliveries"]]) for r in recorded
        ] == [
            ("WaitingForApproval", [("Operator", "platform"), ("Resource", "team")]),
            ("Succeeded", [("Operator", "platform"), ("Resource", "team")]),
        ]
        assert TOKEN not in str(cluster.get("orders"))

        proc.stop()  # a restarted operator finds every delivery recorded: it sends nothing again
        proc.start()
        time.sleep(8)
        proc.assert_alive()
        assert len(receiver.received()) == 4
    finally:
        _stop(proc)
    print(f"approval notifications scenario took {time.monotonic() - began:.1f}s")


def test_a_receiver_that_is_down_does_not_stop_the_migration(
    testbed: Any, cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    metrics_port = free_port()
    down = f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"
    args = ("--notify-attempts", "3", "--metrics-port", str(metrics_port))
    proc = _operator(testbed, cluster.ns, tmp_path, args, {})
    cluster.watchdogs.append(proc.assert_alive)
    try:
        ready_database(cluster, database_url, files=migration_files(2))
        cluster.secret("hooks", {"url": down})
        target = {"name": "team", "secretRef": {"name": "hooks"}}
        cluster.migration("orders", _spec(notifications=[target]))

        done = cluster.wait_terminal("orders", timeout=120)
        assert done["phase"] == "Succeeded", done.get("message")
        assert history_versions(database_url) == {1: "applied", 2: "applied"}
        event = cluster.wait_event(
            "orders", lambda e: e["reason"] == "NotificationFailed", timeout=30
        )
        assert event["type"] == "Warning"
        assert event["message"] == (
            "notification Succeeded to target team (resource) failed after 3 attempt(s): "
            "cannot connect (ConnectionRefusedError); the migration goes on"
        )
        status = _wait_deliveries(cluster, any, "Failed", "the failed delivery recorded")
        [record] = status["notifications"]
        [delivery] = record["deliveries"]
        assert (record["event"], delivery["attempts"], delivery["error"]) == (
            "Succeeded",
            3,
            "cannot connect (ConnectionRefusedError)",
        )
        assert status["phase"] == "Succeeded"
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            exposition = response.read().decode()
        assert (
            f'dbmigrate_notifications_total{{event="Succeeded",name="orders",'
            f'namespace="{cluster.ns}",outcome="failed",target="team"}} 1.0'
        ) in exposition
        everything = str(cluster.get("orders")) + str(cluster.events("orders")) + proc.log()
        assert TOKEN not in everything
    finally:
        _stop(proc)
    print(f"receiver down scenario took {time.monotonic() - began:.1f}s")
