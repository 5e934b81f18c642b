"""Which notifications are due (once per run, per target's events) and what they say."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dbmigrate.api.spec import NOTIFICATION_EVENTS
from dbmigrate.api.status import DatabaseMigrationStatus, NotificationDelivery
from dbmigrate.cli.main import main
from dbmigrate.decision.decide import decide
from dbmigrate.decision.gate_rules import approve_command
from dbmigrate.decision.model import Observed
from dbmigrate.decision.notifications import (
    DeliveryKey,
    DeliveryResult,
    Target,
    build_payload,
    due_event,
    event_of,
    notifications_after,
    parse_operator_target,
    pending,
    record_result,
    targets_for,
    with_notifications,
)
from tests.unit.controller_samples import NOW, PLAN_HASH, make_spec
from tests.unit.test_decide import MANUAL, PLANNED, obs

HOOK = Target(name="hook", source="Resource")
SLACK = Target(name="chat", source="Operator", format="slack", url_env="CHAT_URL")


def step(observed: Observed, targets: list[Target]) -> DatabaseMigrationStatus:
    """One reconcile's status: decide, then the notifications it makes due."""
    decision = with_notifications(observed.status, decide(observed), targets, observed.now)
    return decision.status


def test_waiting_for_approval_is_recorded_with_the_plan_hash_once() -> None:
    planning = obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, spec=MANUAL)
    waiting = step(planning, [HOOK, SLACK])
    assert waiting.phase == "WaitingForApproval"
    [record] = waiting.notifications
    assert (record.event, record.plan_hash, record.run_id) == (
        "WaitingForApproval",
        PLAN_HASH,
        waiting.run_id,
    )
    assert [(d.source, d.target, d.state) for d in record.deliveries] == [
        ("Resource", "hook", "Pending"),
        ("Operator", "chat", "Pending"),
    ]
    assert pending(waiting) == [
        (DeliveryKey(waiting.run_id or "", "WaitingForApproval", "Resource", "hook"), record),
        (DeliveryKey(waiting.run_id or "", "WaitingForApproval", "Operator", "chat"), record),
    ]
    # the next reconciles (still waiting, then a refused approval) add nothing
    again = replace(planning, status=waiting, jobs={})
    assert step(again, [HOOK, SLACK]).notifications == waiting.notifications
    refused = replace(again, annotations={"dbmigrate.io/approve": "c" * 64})
    after_refusal = step(refused, [HOOK, SLACK])
    assert after_refusal.message and "approval refused" in after_refusal.message
    assert after_refusal.notifications == waiting.notifications


def test_a_plan_whose_hash_changed_after_an_approval_is_announced_again() -> None:
    planning = obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, spec=MANUAL)
    waiting = step(planning, [HOOK])
    changed = waiting.model_copy(
        update={
            "phase": "Planning",
            "plan": waiting.plan.model_copy(update={"plan_hash": "d" * 64}),
        }
        if waiting.plan
        else {}
    )
    again = step(replace(planning, status=changed), [HOOK])
    assert again.phase == "WaitingForApproval"
    assert [r.plan_hash for r in again.notifications] == [PLAN_HASH, "d" * 64]


def test_no_targets_or_no_interest_records_nothing() -> None:
    planning = obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, spec=MANUAL)
    assert step(planning, []).notifications == []
    only_failures = Target(name="pager", source="Resource", events=frozenset({"Failed"}))
    assert step(planning, [only_failures]).notifications == []


def test_events_of_phases_and_stalls() -> None:
    assert event_of(DatabaseMigrationStatus(phase="Migrating")) is None
    for phase in ("WaitingForApproval", "WaitingForWindow", "Succeeded", "RollingBack"):
        assert event_of(DatabaseMigrationStatus(phase=phase)) == phase
    # a missing Secret stalls the run before it starts: Stalled, not Pending
    stalled = step(obs("Pending", run_gen=None, secret=replace(obs().secret, exists=False)), [HOOK])
    assert stalled.phase == "Pending" and event_of(stalled) == "Stalled"
    assert [r.event for r in stalled.notifications] == ["Stalled"]
    assert stalled.notifications[0].reason == "SecretNotFound"
    # a failed run is Stalled=True by kstatus, but notified as Failed only
    failed = step(obs("Planning", jobs={"plan": "Failed"}, reports=set()), [HOOK])
    assert failed.phase == "Failed"
    assert [(r.event, r.reason, r.failed_step) for r in failed.notifications] == [
        ("Failed", "PlanFailed", "plan")
    ]


def test_rolling_back_then_rolled_back_are_two_notifications() -> None:
    migrating = obs("Migrating", jobs={"apply": "Failed"})
    rolling = step(migrating, [HOOK])
    assert rolling.phase == "RollingBack"
    assert [(r.event, r.failed_step) for r in rolling.notifications] == [("RollingBack", "apply")]
    done = DatabaseMigrationStatus.model_validate(
        {**rolling.to_wire(), "phase": "RolledBack", "message": "rolled back"}
    )
    records = notifications_after(rolling, done, [HOOK], NOW)
    assert [r.event for r in records] == ["RollingBack", "RolledBack"]


def test_a_new_run_notifies_again_and_keeps_only_pending_records() -> None:
    base = DatabaseMigrationStatus(phase="Planning", run_id="r1")
    succeeded = base.model_copy(update={"phase": "Succeeded", "message": "done"})
    first = notifications_after(base, succeeded, [HOOK], NOW)
    assert due_event(base, succeeded) == "Succeeded"
    old = succeeded.model_copy(update={"notifications": first})
    # the same state again is no transition; an already notified one is never due again
    assert due_event(old, old) is None
    assert due_event(old.model_copy(update={"phase": "Failed"}), old) is None
    second_run = DatabaseMigrationStatus(phase="Succeeded", run_id="r2", message="done again")
    records = notifications_after(old, second_run, [HOOK], NOW)
    assert [(r.run_id, r.event) for r in records] == [("r1", "Succeeded"), ("r2", "Succeeded")]
    delivered = record_result(
        first, DeliveryKey("r1", "Succeeded", "Resource", "hook"), DeliveryResult(True, 1), NOW
    )
    assert delivered is not None
    old = old.model_copy(update={"notifications": delivered})
    records = notifications_after(old, second_run, [HOOK], NOW)
    assert [(r.run_id, r.event) for r in records] == [("r2", "Succeeded")]


def test_record_result_marks_only_a_pending_delivery() -> None:
    base = DatabaseMigrationStatus(phase="Planning", run_id="r1")
    failed = base.model_copy(update={"phase": "Failed", "message": "plan failed"})
    records = notifications_after(base, failed, [HOOK, SLACK], NOW)
    key = DeliveryKey("r1", "Failed", "Operator", "chat")
    later = NOW + timedelta(seconds=9)
    marked = record_result(records, key, DeliveryResult(False, 4, "HTTP 500"), later)
    assert marked is not None
    assert marked[0].deliveries == [
        NotificationDelivery(target="hook", source="Resource"),
        NotificationDelivery(
            target="chat",
            source="Operator",
            state="Failed",
            attempts=4,
            finished_at=later,
            error="HTTP 500",
        ),
    ]
    assert record_result(marked, key, DeliveryResult(True, 1), later) is None  # not Pending now
    assert record_result(records, replace(key, run_id="r0"), DeliveryResult(True, 1), NOW) is None


def test_payloads_say_what_happened_and_how_to_approve() -> None:
    planning = obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, spec=MANUAL)
    [record] = step(planning, [HOOK]).notifications
    document = build_payload(record, "json", "apps", "orders")
    command = approve_command("orders", "apps", PLAN_HASH)
    assert command == (
        f"kubectl annotate databasemigration orders -n apps dbmigrate.io/approve={PLAN_HASH} "
        "--overwrite"
    )
    assert document == {
        "apiVersion": "dbmigrate.io/v1alpha1",
        "kind": "DatabaseMigrationNotification",
        "event": "WaitingForApproval",
        "namespace": "apps",
        "name": "orders",
        "runId": record.run_id,
        "time": "2024-06-01T12:00:00Z",
        "reason": "WaitingForApproval",
        "message": record.message,
        "summary": document["summary"],
        "planHash": PLAN_HASH,
        "approveCommand": command,
    }
    assert f"`{command}`" in document["summary"]
    slack = build_payload(record, "slack", "apps", "orders")
    assert slack == {"text": document["summary"]}

    failed = step(obs("Planning", jobs={"plan": "Failed"}, reports=set()), [HOOK])
    failure = build_payload(failed.notifications[0], "json", "apps", "orders")
    assert failure["failedStep"] == "plan" and "planHash" not in failure
    text = build_payload(failed.notifications[0], "slack", "apps", "orders")["text"]
    assert text.startswith("DatabaseMigration apps/orders failed (PlanFailed): the plan Job")


def test_window_notification_names_the_opening() -> None:
    closed = {"maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "1h"}}
    planning = obs(
        "Planning",
        jobs={"plan": "Succeeded"},
        reports=PLANNED,
        spec={**closed, "preflight": {"largeTableRows": 1}},
        variant={"large": True},
    )
    waiting = step(planning, [HOOK])
    assert waiting.phase == "WaitingForWindow"
    document = build_payload(waiting.notifications[0], "json", "apps", "orders")
    assert document["event"] == "WaitingForWindow"
    assert document["nextOpen"] == "2024-06-08T02:00:00Z"


def test_resource_targets_add_to_the_operator_wide_ones() -> None:
    spec = make_spec(
        notifications=[
            {"name": "team", "secretRef": {"name": "hooks"}, "events": ["Failed", "Succeeded"]},
            {"name": "chat", "secretRef": {"name": "hooks", "key": "slack"}, "format": "slack"},
        ]
    )
    targets = targets_for(spec, [SLACK])
    assert [(t.source, t.name, t.format) for t in targets] == [
        ("Operator", "chat", "slack"),
        ("Resource", "team", "json"),
        ("Resource", "chat", "slack"),
    ]
    assert targets[1].events == {"Failed", "Succeeded"}
    assert targets[2].events == set(NOTIFICATION_EVENTS)
    assert targets[2].secret_ref is not None and targets[2].secret_ref.key == "slack"


def test_parse_operator_target() -> None:
    target = parse_operator_target("name=ops,url-env=OPS_URL,format=slack,events=Failed+Stalled")
    assert target == Target(
        name="ops",
        source="Operator",
        format="slack",
        events=frozenset({"Failed", "Stalled"}),
        url_env="OPS_URL",
    )
    assert parse_operator_target("name=all,url-env=X").events == set(NOTIFICATION_EVENTS)
    for wrong, complaint in [
        ("name=ops", "required"),
        ("name=ops,url-env=X,format=xml", "format"),
        ("name=ops,url-env=X,events=Exploded", "unknown event"),
        ("name=ops,url-env=X,url=https://x", "unknown key"),
        ("name=ops,url-env", "key=value"),
    ]:
        with pytest.raises(ValueError, match=complaint):
            parse_operator_target(wrong)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--notify", "name=ops,url-env=DBMIGRATE_TEST_UNSET_VAR"], "is not set"),
        (["--notify", "name=ops"], "required"),
        (["--notify", "name=ops,url-env=HOOK", "--notify", "name=ops,url-env=HOOK"], "twice"),
        (["--notify-attempts", "0"], "choose 1 to 10"),
        (["--notify-timeout", "0"], "seconds"),
    ],
)
def test_operator_refuses_wrong_notify_flags(
    argv: list[str],
    complaint: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK", "https://hooks.example/T0")
    monkeypatch.delenv("DBMIGRATE_TEST_UNSET_VAR", raising=False)
    assert main(["operator", "--namespace", "apps", *argv]) == 2  # before Kopf ever starts
    assert complaint in capsys.readouterr().err
