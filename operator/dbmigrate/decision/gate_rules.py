"""The gates between a sound plan and the first change: approval, maintenance window, one
migration per database.

Each gate is a pure function of the spec, the status the plan step wrote, the annotations and
``now``; it returns a verdict with the status block to show (``status.approval``,
``status.window``) and a message that says exactly what is awaited and how to get past it.
``decide`` evaluates them in that order; the first closed gate names the waiting phase.

The lock gate itself is computed by ``controller.reconcile`` with ``lock_holder`` (it needs the
other resources), from ``lock_candidate`` of every DatabaseMigration: a migration holds its database
from the backup until it ends (and while it waits for a window after its backup); waiters queue in
order of their run's start, so two waiting migrations never both go ahead. ``needs_lock_check``
says when the others must be read at all (reading every DatabaseMigration is the costliest call of
a reconcile, so it is made only where the gate may be crossed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from dbmigrate.api.durations import InvalidDuration, parse_duration
from dbmigrate.api.evidence import PreflightResult
from dbmigrate.api.labels import APPROVE_ANNOTATION
from dbmigrate.api.spec import DatabaseMigrationSpec, MaintenanceWindowSpec
from dbmigrate.api.status import (
    TERMINAL_PHASES,
    ApprovalStatus,
    DatabaseMigrationStatus,
    WindowStatus,
)
from dbmigrate.api.stepnames import STEP_BACKUP

LOCK_HOLDING_PHASES = ("BackingUp", "Migrating", "Verifying", "RollingBack")
MAX_WINDOW_REQUEUE = 600.0


class InvalidMaintenanceWindow(ValueError):
    """spec.maintenanceWindow cannot be evaluated (unknown time zone, bad cron or duration)."""


@dataclass(frozen=True)
class ApprovalVerdict:
    """Whether the plan is approved, the status block to show and what is awaited (``fresh``:
    approved by the annotation just now, not recorded in the status before)."""

    passed: bool
    status: ApprovalStatus
    message: str
    refused: bool = False
    fresh: bool = False


@dataclass(frozen=True)
class WindowTimes:
    """The window's state at one instant (UTC times)."""

    open: bool
    next_open: datetime
    closes_at: datetime | None


@dataclass(frozen=True)
class WindowVerdict:
    """Whether the window lets the step start, the status block and what is awaited."""

    passed: bool
    status: WindowStatus | None
    message: str
    requeue_after: float | None = None


def approve_command(resource: str, namespace: str, plan_hash: str) -> str:
    """The exact command that approves ``plan_hash``."""
    return (
        f"kubectl annotate databasemigration {resource} -n {namespace} "
        f"{APPROVE_ANNOTATION}={plan_hash} --overwrite"
    )


def evaluate_approval(
    spec: DatabaseMigrationSpec,
    plan_hash: str,
    annotations: dict[str, str],
    previous: ApprovalStatus | None,
    *,
    resource: str,
    namespace: str,
    now: datetime,
) -> ApprovalVerdict:
    """Manual approval: the annotation must equal the plan hash; anything else is refused."""
    if spec.approval.mode == "Automatic":
        status = ApprovalStatus(required=False, plan_hash=plan_hash)
        return ApprovalVerdict(True, status, "approval is automatic")
    command = approve_command(resource, namespace, plan_hash)
    base = ApprovalStatus(required=True, plan_hash=plan_hash, how_to_approve=command)
    if previous is not None and previous.approved_hash == plan_hash:
        approved = base.model_copy(
            update={"approved_hash": plan_hash, "approved_at": previous.approved_at}
        )
        return ApprovalVerdict(True, approved, f"plan {plan_hash} was approved")
    given = annotations.get(APPROVE_ANNOTATION, "").strip()
    if given == plan_hash:
        approved = base.model_copy(update={"approved_hash": plan_hash, "approved_at": now})
        return ApprovalVerdict(True, approved, f"plan {plan_hash} approved", fresh=True)
    if given:
        message = (
            f"approval refused: annotation {APPROVE_ANNOTATION} approves plan {given}, but the "
            f"current plan is {plan_hash} (the migration set or target changed since). Review "
            f"status.plan, then approve the current plan: {command}"
        )
        return ApprovalVerdict(False, base, message, refused=True)
    message = f"waiting for approval of plan {plan_hash}: review status.plan, then run: {command}"
    return ApprovalVerdict(False, base, message)


def validate_window(window: MaintenanceWindowSpec) -> tuple[ZoneInfo, timedelta]:
    """The window's time zone and length; raises InvalidMaintenanceWindow with the fix."""
    try:
        zone = ZoneInfo(window.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidMaintenanceWindow(
            f"maintenanceWindow.timeZone {window.time_zone!r} is not a known IANA time zone; "
            "use a name such as UTC or Europe/Berlin"
        ) from exc
    if len(window.schedule.split()) != 5 or not croniter.is_valid(window.schedule):
        raise InvalidMaintenanceWindow(
            f"maintenanceWindow.schedule {window.schedule!r} is not a valid 5-field cron "
            "expression (minute hour day-of-month month day-of-week), such as '0 2 * * 6'"
        )
    try:
        length = parse_duration(window.duration)
    except InvalidDuration as exc:
        raise InvalidMaintenanceWindow(f"maintenanceWindow.duration: {exc}") from exc
    return zone, length


def window_times(window: MaintenanceWindowSpec, now: datetime) -> WindowTimes:
    """Whether the window is open at ``now``, when it closes and when it opens next.

    The window opens at each time the cron schedule fires (in its time zone) and stays open for
    ``duration`` of real time, so a daylight-saving change never stretches or shortens it.
    """
    zone, length = validate_window(window)
    local = now.astimezone(zone)
    try:
        # From the start of the next second of this minute: a fire time equal to now counts.
        base = local.replace(second=0, microsecond=0) + timedelta(seconds=1)
        last = croniter(window.schedule, base).get_prev(datetime).astimezone(UTC)
        upcoming = croniter(window.schedule, local).get_next(datetime).astimezone(UTC)
    except CroniterError as exc:
        raise InvalidMaintenanceWindow(
            f"maintenanceWindow.schedule {window.schedule!r} never fires: {exc}"
        ) from exc
    closes = last + length
    is_open = last <= now.astimezone(UTC) < closes
    return WindowTimes(open=is_open, next_open=upcoming, closes_at=closes if is_open else None)


def window_required(
    spec: DatabaseMigrationSpec, preflight: PreflightResult | None
) -> tuple[bool, str]:
    """Whether this plan must wait for the window, and why (fails closed without a preflight)."""
    window = spec.maintenance_window
    if window is None:
        return False, "no maintenance window is configured"
    if window.applies_to == "Always":
        return True, "the window applies to every plan (appliesTo: Always)"
    if preflight is None:
        return True, "no preflight report, so the plan is treated as touching large tables"
    large = [
        f"{t.schema_name}.{t.name} (~{t.estimated_rows} rows)" for t in preflight.tables if t.large
    ]
    if large or preflight.touches_large_tables:
        named = ", ".join(large) or "see status.preflight.tables"
        return True, f"the plan touches tables over {preflight.large_table_rows} rows: {named}"
    return False, f"the plan touches no table over {preflight.large_table_rows} rows"


def evaluate_window(
    spec: DatabaseMigrationSpec, preflight: PreflightResult | None, now: datetime
) -> WindowVerdict:
    """The window gate; raises InvalidMaintenanceWindow when the window cannot be evaluated."""
    window = spec.maintenance_window
    if window is None:
        return WindowVerdict(True, None, "no maintenance window is configured")
    required, reason = window_required(spec, preflight)
    times = window_times(window, now)
    status = WindowStatus(
        required=required,
        open=times.open,
        next_open=times.next_open,
        closes_at=times.closes_at,
        reason=reason,
    )
    if not required or times.open:
        return WindowVerdict(True, status, reason)
    wait = (times.next_open - now).total_seconds()
    message = (
        f"waiting for the maintenance window: it opens at {times.next_open.isoformat()} "
        f"(schedule '{window.schedule}' in {window.time_zone}, open for {window.duration}); "
        f"{reason}"
    )
    return WindowVerdict(
        False, status, message, requeue_after=min(max(wait, 1.0), MAX_WINDOW_REQUEUE)
    )


@dataclass(frozen=True)
class LockCandidate:
    """One DatabaseMigration as the lock gate sees it."""

    namespace: str
    name: str
    database_key: str
    holds: bool
    waiting: bool
    started_at: datetime | None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def order(self) -> tuple[datetime, str]:
        return (self.started_at or datetime.max.replace(tzinfo=UTC), self.ref)


def backup_done(status: DatabaseMigrationStatus) -> bool:
    """Whether this run's backup Job succeeded (the run then holds its database)."""
    return any(
        job.step == STEP_BACKUP
        and job.outcome == "Succeeded"
        and job.generation == status.observed_generation
        for job in status.jobs
    )


def holds_database(status: DatabaseMigrationStatus) -> bool:
    """Whether the run may be changing its database now (from the backup to the end)."""
    if status.phase in LOCK_HOLDING_PHASES:
        return True
    return status.phase == "WaitingForWindow" and backup_done(status)


def lock_candidate(
    namespace: str, name: str, status: DatabaseMigrationStatus
) -> LockCandidate | None:
    """The lock-gate view of a resource (None until its plan step identified the database)."""
    if status.database is None:
        return None
    return LockCandidate(
        namespace=namespace,
        name=name,
        database_key=status.database.key,
        holds=holds_database(status),
        waiting=status.phase == "WaitingForLock",
        started_at=status.started_at,
    )


def needs_lock_check(status: DatabaseMigrationStatus) -> bool:
    """Whether the lock gate may be asked for this status, so the other migrations must be read.

    Not before the plan identified the database, not once the run holds it (``lock_holder``
    answers None then), not when the plan has nothing to apply (the run ends without the gates)
    and not in a terminal phase. Everything else may cross the gate on this reconcile.
    """
    if status.database is None or status.phase in TERMINAL_PHASES:
        return False
    if status.plan is not None and not status.plan.pending:
        return False
    return not holds_database(status)


def lock_holder(me: LockCandidate, others: Iterable[LockCandidate]) -> str | None:
    """namespace/name of the migration ``me`` must wait for, or None when it may go ahead.

    ``me`` waits for any other migration holding the same database, and (unless it holds the
    database itself) for migrations already waiting for it that started earlier.
    """
    if me.holds:
        return None
    same = sorted(
        (o for o in others if o.database_key == me.database_key and o.ref != me.ref),
        key=LockCandidate.order,
    )
    for other in same:
        if other.holds or (other.waiting and other.order() < me.order()):
            return other.ref
    return None
