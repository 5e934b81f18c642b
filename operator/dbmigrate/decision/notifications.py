"""Which webhook notifications are due, and what they say: pure, no I/O and no clock.

A person cares about a few transitions of a run: it waits for an approval (with the plan hash
and the exact command that approves it), it waits for its maintenance window, it succeeded,
failed, is rolling back, rolled back, is stalled (a person must act), or the performance watch
after its success found queries that got slower (Regressed, before any rollback it leads to).
``with_notifications`` compares the status a reconcile read with the one it is about to write;
when the new status enters one of those states it appends a ``NotificationRecord`` with one
``Pending`` delivery per interested target, in the same status patch as the transition itself.
So a transition is notified once per run, and an operator that restarts before a delivery
finished finds it Pending and sends it then (it never resends a Delivered or Failed one).

Targets come from two places, and the resource's list adds to the operator-wide one:
``spec.notifications`` (the URL in a Secret of the resource's namespace) and ``dbmigrate
operator --notify`` (the URL in an environment variable of the operator, which the chart fills
from a Secret of its own namespace). The URL itself never enters this module: a delivery names
its target, and ``controller.webhooks`` reads the URL when it sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from dbmigrate import API_GROUP, API_VERSION
from dbmigrate.api.conditions import PERFORMANCE_VERIFIED, READY, STALLED, Reason, find_condition
from dbmigrate.api.spec import (
    NOTIFICATION_EVENTS,
    DatabaseMigrationSpec,
    NotificationEvent,
    UrlSecretRef,
)
from dbmigrate.api.status import (
    TERMINAL_PHASES,
    DatabaseMigrationStatus,
    NotificationDelivery,
    NotificationRecord,
)
from dbmigrate.decision.gate_rules import approve_command
from dbmigrate.decision.model import Decision

Source = Literal["Resource", "Operator"]
Format = Literal["json", "slack"]
MAX_RECORDS = 20
MAX_MESSAGE = 2048
PAYLOAD_KIND = "DatabaseMigrationNotification"
PHASE_EVENTS: dict[str, NotificationEvent] = {
    "WaitingForApproval": "WaitingForApproval",
    "WaitingForWindow": "WaitingForWindow",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
    "RollingBack": "RollingBack",
    "RolledBack": "RolledBack",
}
TITLES: dict[NotificationEvent, str] = {
    "WaitingForApproval": "is waiting for approval",
    "WaitingForWindow": "is waiting for its maintenance window",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "RollingBack": "is rolling back",
    "RolledBack": "rolled back",
    "Stalled": "is stalled",
    "Regressed": "made queries slower (performance watch)",
}


@dataclass(frozen=True)
class Target:
    """A webhook: where its URL is read from (a Secret key, or an environment variable of the
    operator), the payload format and the events it wants."""

    name: str
    source: Source
    format: Format = "json"
    events: frozenset[NotificationEvent] = frozenset(NOTIFICATION_EVENTS)
    secret_ref: UrlSecretRef | None = None  # source Resource
    url_env: str | None = None  # source Operator


@dataclass(frozen=True)
class DeliveryKey:
    """One delivery of one transition of one run to one target."""

    run_id: str
    event: NotificationEvent
    source: Source
    target: str


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery ended; ``error`` never holds the URL."""

    delivered: bool
    attempts: int
    error: str | None = None


def targets_for(spec: DatabaseMigrationSpec, operator_wide: Sequence[Target]) -> list[Target]:
    """The operator-wide targets, then the resource's own."""
    own = [
        Target(
            name=t.name,
            source="Resource",
            format=t.format,
            events=frozenset(t.events) if t.events is not None else frozenset(NOTIFICATION_EVENTS),
            secret_ref=t.secret_ref,
        )
        for t in spec.notifications
    ]
    return [*operator_wide, *own]


def event_of(status: DatabaseMigrationStatus) -> NotificationEvent | None:
    """The notable state the status is in, if any (Stalled: a person must act, before the end;
    Failed and RolledBack are Stalled=True too, but notified as themselves; a regression the
    performance watch found after Succeeded is Regressed)."""
    verdict = find_condition(status.conditions, PERFORMANCE_VERIFIED)
    if status.phase == "Succeeded" and verdict is not None and verdict.reason == Reason.REGRESSED:
        return "Regressed"
    stalled = find_condition(status.conditions, STALLED)
    if stalled is not None and stalled.status == "True" and status.phase not in TERMINAL_PHASES:
        return "Stalled"
    return PHASE_EVENTS.get(status.phase)


def due_event(
    old: DatabaseMigrationStatus, new: DatabaseMigrationStatus
) -> NotificationEvent | None:
    """The transition ``old`` → ``new`` enters a notable state not yet recorded for the run."""
    event = event_of(new)
    if event is None or new.run_id is None:
        return None
    if new.run_id == old.run_id and event_of(old) == event:
        return None  # no transition: the same state as last time
    if any(r.run_id == new.run_id and r.event == event for r in old.notifications):
        return None  # already notified in this run
    return event


def _reason(status: DatabaseMigrationStatus) -> str:
    stalled = find_condition(status.conditions, STALLED)
    if stalled is not None and stalled.status == "True":
        return stalled.reason
    ready = find_condition(status.conditions, READY)
    return ready.reason if ready is not None else status.phase


def _record(
    event: NotificationEvent, new: DatabaseMigrationStatus, targets: Iterable[Target], now: datetime
) -> NotificationRecord:
    message = new.message or ""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return NotificationRecord(
        event=event,
        run_id=new.run_id or "",
        at=now,
        reason=_reason(new),
        message=message,
        plan_hash=new.approval.plan_hash
        if event == "WaitingForApproval" and new.approval
        else None,
        next_open=new.window.next_open if event == "WaitingForWindow" and new.window else None,
        failed_step=new.failed_step if event in ("Failed", "RollingBack", "RolledBack") else None,
        deliveries=[NotificationDelivery(target=t.name, source=t.source) for t in targets],
    )


def notifications_after(
    old: DatabaseMigrationStatus,
    new: DatabaseMigrationStatus,
    targets: Sequence[Target],
    now: datetime,
) -> list[NotificationRecord]:
    """status.notifications to write with ``new``: the run's records (a new run keeps only the
    previous runs' records still Pending), plus the record of the transition now due."""
    if new.run_id == old.run_id:
        records = list(old.notifications)
    else:
        records = [r for r in old.notifications if any(d.state == "Pending" for d in r.deliveries)]
    event = due_event(old, new)
    interested = [t for t in targets if event is not None and event in t.events]
    if event is not None and interested:
        records.append(_record(event, new, interested, now))
    return records[-MAX_RECORDS:]


def with_notifications(
    old: DatabaseMigrationStatus, decision: Decision, targets: Sequence[Target], now: datetime
) -> Decision:
    """``decision`` with status.notifications brought up to date (see the module docstring)."""
    records = notifications_after(old, decision.status, targets, now)
    if records == decision.status.notifications:
        return decision
    return replace(decision, status=decision.status.model_copy(update={"notifications": records}))


def pending(
    status: DatabaseMigrationStatus,
) -> list[tuple[DeliveryKey, NotificationRecord]]:
    """Every delivery still Pending, with its record."""
    return [
        (DeliveryKey(r.run_id, r.event, d.source, d.target), r)
        for r in status.notifications
        for d in r.deliveries
        if d.state == "Pending"
    ]


def record_result(
    records: Sequence[NotificationRecord], key: DeliveryKey, result: DeliveryResult, now: datetime
) -> list[NotificationRecord] | None:
    """``records`` with the delivery of ``key`` marked Delivered or Failed; None when it is not
    (or no longer) Pending there, so there is nothing to write."""
    out, found = [], False
    for record in records:
        if record.run_id == key.run_id and record.event == key.event:
            deliveries = []
            for d in record.deliveries:
                if (d.source, d.target, d.state) == (key.source, key.target, "Pending"):
                    found = True
                    d = d.model_copy(
                        update={
                            "state": "Delivered" if result.delivered else "Failed",
                            "attempts": result.attempts,
                            "finished_at": now,
                            "error": result.error,
                        }
                    )
                deliveries.append(d)
            record = record.model_copy(update={"deliveries": deliveries})
        out.append(record)
    return out if found else None


# --- what a notification says -------------------------------------------------------------


def summary(record: NotificationRecord, namespace: str, name: str) -> str:
    """One human-readable paragraph (Slack mrkdwn backticks read fine as plain text too)."""
    who = f"DatabaseMigration {namespace}/{name}"
    if record.event == "WaitingForApproval" and record.plan_hash:
        command = approve_command(name, namespace, record.plan_hash)
        return (
            f"{who} is waiting for approval of plan {record.plan_hash}. Review the plan "
            f"(`kubectl describe databasemigration {name} -n {namespace}`), then approve it:\n"
            f"`{command}`"
        )
    cause = f" ({record.reason})" if record.reason not in (record.event, "") else ""
    return f"{who} {TITLES[record.event]}{cause}: {record.message}"


def build_payload(record: NotificationRecord, fmt: Format, namespace: str, name: str) -> Any:
    """The JSON body sent to a target: the full document, or Slack's ``{"text": ...}``."""
    text = summary(record, namespace, name)
    if fmt == "slack":
        return {"text": text}
    document: dict[str, Any] = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": PAYLOAD_KIND,
        "event": record.event,
        "namespace": namespace,
        "name": name,
        "runId": record.run_id,
        "time": record.at.isoformat().replace("+00:00", "Z"),
        "reason": record.reason,
        "message": record.message,
        "summary": text,
    }
    if record.plan_hash:
        document["planHash"] = record.plan_hash
        document["approveCommand"] = approve_command(name, namespace, record.plan_hash)
    if record.next_open is not None:
        document["nextOpen"] = record.next_open.isoformat().replace("+00:00", "Z")
    if record.failed_step is not None:
        document["failedStep"] = record.failed_step
    return document


def parse_operator_target(text: str) -> Target:
    """A ``--notify`` value: ``name=N,url-env=VAR[,format=json|slack][,events=A+B]``."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise ValueError(f"--notify {text!r}: {part!r} is not key=value")
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"name", "url-env", "format", "events"}
    if unknown:
        raise ValueError(f"--notify {text!r}: unknown key(s) {', '.join(sorted(unknown))}")
    if "name" not in fields or "url-env" not in fields:
        raise ValueError(f"--notify {text!r}: name= and url-env= are required")
    fmt = fields.get("format", "json")
    if fmt not in ("json", "slack"):
        raise ValueError(f"--notify {text!r}: format must be json or slack")
    events: frozenset[NotificationEvent] = frozenset(NOTIFICATION_EVENTS)
    if "events" in fields:
        wanted = fields["events"].split("+")
        wrong = [e for e in wanted if e not in NOTIFICATION_EVENTS]
        if wrong:
            raise ValueError(
                f"--notify {text!r}: unknown event(s) {', '.join(wrong)}; "
                f"choose from {', '.join(NOTIFICATION_EVENTS)}"
            )
        events = frozenset(e for e in NOTIFICATION_EVENTS if e in wanted)
    return Target(
        name=fields["name"],
        source="Operator",
        format="slack" if fmt == "slack" else "json",
        events=events,
        url_env=fields["url-env"],
    )
