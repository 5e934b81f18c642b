"""The gates before the first change: approval, maintenance window, one migration per database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dbmigrate.api.spec import MaintenanceWindowSpec
from dbmigrate.api.status import ApprovalStatus, DatabaseMigrationStatus, JobRecord
from dbmigrate.decision.gate_rules import (
    ApprovalVerdict,
    InvalidMaintenanceWindow,
    LockCandidate,
    evaluate_approval,
    evaluate_window,
    lock_candidate,
    lock_holder,
    needs_lock_check,
    window_required,
    window_times,
)
from tests.unit.controller_samples import (
    NOW,
    PLAN_HASH,
    make_identity,
    make_plan,
    make_preflight,
    make_spec,
)

MANUAL = {"approval": {"mode": "Manual"}}
OLD_HASH = "c" * 64


def approval(
    annotations: dict[str, str], previous: ApprovalStatus | None = None
) -> ApprovalVerdict:
    return evaluate_approval(
        make_spec(**MANUAL),
        PLAN_HASH,
        annotations,
        previous,
        resource="orders",
        namespace="apps",
        now=NOW,
    )


def test_automatic_approval_passes() -> None:
    verdict = evaluate_approval(
        make_spec(), PLAN_HASH, {}, None, resource="orders", namespace="apps", now=NOW
    )
    assert verdict.passed and not verdict.status.required


def test_manual_approval_waits_and_gives_the_exact_command() -> None:
    verdict = approval({})
    assert not verdict.passed and not verdict.refused
    command = (
        "kubectl annotate databasemigration orders -n apps "
        f"dbmigrate.io/approve={PLAN_HASH} --overwrite"
    )
    assert verdict.status.how_to_approve == command
    assert command in verdict.message
    assert verdict.status.plan_hash == PLAN_HASH and verdict.status.approved_hash is None


def test_manual_approval_of_the_plan_hash_passes_and_is_recorded() -> None:
    verdict = approval({"dbmigrate.io/approve": PLAN_HASH})
    assert verdict.passed
    assert verdict.status.approved_hash == PLAN_HASH and verdict.status.approved_at == NOW


def test_approval_of_another_plan_is_refused_naming_both_hashes() -> None:
    verdict = approval({"dbmigrate.io/approve": OLD_HASH})
    assert not verdict.passed and verdict.refused
    assert OLD_HASH in verdict.message and PLAN_HASH in verdict.message
    assert verdict.status.approved_hash is None


def test_an_approval_already_recorded_stays_with_its_time() -> None:
    earlier = NOW - timedelta(hours=1)
    previous = ApprovalStatus(
        required=True, plan_hash=PLAN_HASH, approved_hash=PLAN_HASH, approved_at=earlier
    )
    verdict = approval({}, previous)
    assert verdict.passed and verdict.status.approved_at == earlier
    stale = previous.model_copy(update={"approved_hash": OLD_HASH})
    assert not approval({}, stale).passed


def window(
    schedule: str = "0 2 * * 6", duration: str = "2h", tz: str = "UTC", applies: str = "LargeTables"
) -> MaintenanceWindowSpec:
    return MaintenanceWindowSpec.model_validate(
        {"schedule": schedule, "duration": duration, "timeZone": tz, "appliesTo": applies}
    )


SATURDAY_2AM = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)  # 2024-06-01 is a Saturday


@pytest.mark.parametrize(
    ("now", "is_open", "next_open", "closes_at"),
    [
        (SATURDAY_2AM - timedelta(seconds=1), False, SATURDAY_2AM, None),
        (SATURDAY_2AM, True, SATURDAY_2AM + timedelta(days=7), SATURDAY_2AM + timedelta(hours=2)),
        (
            SATURDAY_2AM + timedelta(minutes=119, seconds=59),
            True,
            SATURDAY_2AM + timedelta(days=7),
            SATURDAY_2AM + timedelta(hours=2),
        ),
        (SATURDAY_2AM + timedelta(hours=2), False, SATURDAY_2AM + timedelta(days=7), None),
    ],
)
def test_window_open_and_next_open(
    now: datetime, is_open: bool, next_open: datetime, closes_at: datetime | None
) -> None:
    times = window_times(window(), now)
    assert (times.open, times.next_open, times.closes_at) == (is_open, next_open, closes_at)


def test_window_in_a_time_zone_and_across_daylight_saving() -> None:
    berlin = window(schedule="30 1 * * *", duration="3h", tz="Europe/Berlin")
    # 2024-03-31: clocks go from 02:00 to 03:00 in Berlin. Opens 01:30 CET = 00:30 UTC.
    opened = datetime(2024, 3, 31, 0, 30, tzinfo=UTC)
    times = window_times(berlin, opened + timedelta(hours=2, minutes=59))
    assert times.open and times.closes_at == opened + timedelta(hours=3)  # 3 real hours
    assert not window_times(berlin, opened + timedelta(hours=3)).open
    summer = window_times(berlin, datetime(2024, 7, 1, 0, 0, tzinfo=UTC))
    assert summer.next_open == datetime(2024, 6, 30, 23, 30, tzinfo=UTC) + timedelta(days=1)


def test_a_window_longer_than_its_period_stays_open() -> None:
    assert window_times(
        window(schedule="0 * * * *", duration="90m"), SATURDAY_2AM + timedelta(minutes=70)
    ).open


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (window(tz="Mars/Olympus"), "not a known IANA time zone"),
        (window(tz="../etc/passwd"), "not a known IANA time zone"),
        (window(schedule="61 2 * * *"), "not a valid 5-field cron"),
        (window(schedule="0 2 * * 6 2024"), "not a valid 5-field cron"),
        (window(schedule="0 0 31 2 *"), "never fires"),
        (window(duration="2 hours"), "duration"),
    ],
)
def test_an_invalid_window_is_a_clear_error(spec: MaintenanceWindowSpec, match: str) -> None:
    with pytest.raises(InvalidMaintenanceWindow, match=match):
        window_times(spec, NOW)


def test_window_required_for_large_tables_or_always() -> None:
    large = make_spec(maintenanceWindow={"schedule": "0 2 * * 6", "duration": "2h"})
    assert window_required(large, make_preflight(large=True)) == (
        True,
        "the plan touches tables over 1000000 rows: public.events (~5000000 rows)",
    )
    assert window_required(large, make_preflight(large=False))[0] is False
    assert window_required(large, None)[0] is True  # no preflight: fail closed
    always = make_spec(
        maintenanceWindow={"schedule": "0 2 * * 6", "duration": "2h", "appliesTo": "Always"}
    )
    assert window_required(always, make_preflight(large=False))[0] is True
    assert window_required(make_spec(), None)[0] is False


def test_window_verdict_waits_until_the_next_opening() -> None:
    spec = make_spec(maintenanceWindow={"schedule": "0 2 * * 6", "duration": "2h"})
    now = SATURDAY_2AM - timedelta(minutes=5)
    verdict = evaluate_window(spec, make_preflight(large=True), now)
    assert not verdict.passed
    assert verdict.requeue_after == 300.0
    assert "2024-06-01T02:00:00+00:00" in verdict.message and "public.events" in verdict.message
    assert verdict.status is not None and verdict.status.next_open == SATURDAY_2AM
    far = evaluate_window(spec, make_preflight(large=True), SATURDAY_2AM + timedelta(days=1))
    assert far.requeue_after == 600.0  # looked at again at least every 10 minutes
    assert evaluate_window(spec, make_preflight(large=False), now).passed
    assert evaluate_window(spec, make_preflight(large=True), SATURDAY_2AM).passed


def candidate(
    name: str, *, holds: bool = False, waiting: bool = False, minutes: int = 0, key: str = "db1"
) -> LockCandidate:
    return LockCandidate("apps", name, key, holds, waiting, NOW + timedelta(minutes=minutes))


def test_lock_holder_rules() -> None:
    me = candidate("me", minutes=5)
    assert lock_holder(me, [candidate("other", holds=True)]) == "apps/other"
    assert lock_holder(me, [candidate("other", holds=True, key="db2")]) is None
    assert lock_holder(me, [candidate("early", waiting=True, minutes=1)]) == "apps/early"
    assert lock_holder(me, [candidate("late", waiting=True, minutes=9)]) is None
    assert lock_holder(me, [candidate("planning", minutes=1)]) is None
    assert lock_holder(candidate("me", holds=True), [candidate("other", holds=True)]) is None
    assert lock_holder(me, [me]) is None


def test_two_waiters_never_both_go_ahead() -> None:
    a = candidate("a", waiting=True, minutes=1)
    b = candidate("b", waiting=True, minutes=1)
    verdicts = [lock_holder(a, [b]), lock_holder(b, [a])]
    assert verdicts.count(None) == 1


def test_lock_candidate_from_status() -> None:
    status = DatabaseMigrationStatus(
        phase="Migrating", observed_generation=2, database=make_identity()
    )
    found = lock_candidate("apps", "orders", status)
    assert (
        found is not None and found.holds and found.database_key == "7300000000000000001/analytics"
    )
    assert lock_candidate("apps", "orders", DatabaseMigrationStatus()) is None
    waiting = status.model_copy(update={"phase": "WaitingForWindow"})
    assert not lock_candidate("apps", "o", waiting).holds  # type: ignore[union-attr]
    backed_up = waiting.model_copy(
        update={
            "jobs": [
                JobRecord(
                    step="backup",
                    name="o-backup-g2",
                    generation=2,
                    created_at=NOW,
                    outcome="Succeeded",
                )
            ]
        }
    )
    assert lock_candidate("apps", "o", backed_up).holds  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("phase", "identified", "pending", "expected"),
    [
        ("Planning", False, 2, False),  # the database is not known yet
        ("Planning", True, 2, True),  # the plan finished: the gate may be crossed now
        ("Planning", True, None, True),  # identified, plan not reported yet
        ("Planning", True, 0, False),  # nothing to apply: the run ends without the gates
        ("WaitingForApproval", True, 2, True),
        ("WaitingForLock", True, 2, True),
        ("BackingUp", True, 2, False),  # holds the database
        ("Migrating", True, 2, False),
        ("Succeeded", True, 2, False),
        ("RolledBack", True, 2, False),
    ],
)
def test_the_other_migrations_are_read_only_where_the_lock_gate_may_be_crossed(
    phase: str, identified: bool, pending: int | None, expected: bool
) -> None:
    status = DatabaseMigrationStatus(
        phase=phase,
        observed_generation=1,
        database=make_identity() if identified else None,
        plan=None if pending is None else make_plan(pending),
    )
    assert needs_lock_check(status) is expected
