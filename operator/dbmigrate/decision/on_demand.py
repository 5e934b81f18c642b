"""A rollback on demand (a MigrationRollback), as a pure state machine:
``decide_request(observed) -> RequestDecision``.

Life of a request: Planning → (Planned | AwaitingConfirmation | Refused) → Running →
(Succeeded | Failed). Planning checks what the API server can tell (the migration exists, its run
has ended and succeeded, the strategy is possible, no other run of the same database is under
way), shows the plan (what will be dropped or restored, the versions that leave the history, the
workloads and their replicas) and runs the rollback check Job (``runner.undo_check``: the
data-loss preflight and the refusals only the database can tell). Dry run first, always: nothing
runs before the check has reported. Then:

- a refusal (``Refused``) names its cause;
- ``spec.dryRun``: ``Planned``, nothing changed;
- data would be lost and ``spec.confirm`` is not the migration's name: ``AwaitingConfirmation``,
  with the exact command that confirms; the request is looked at again when its spec changes;
- otherwise ``Running``: the operator moves the migration from its terminal phase to RollingBack
  with the request recorded (``start_rollback``), and the migration's own emergency rollback runs
  (``recovery``, with the request's strategy and workloads: ``requested``).

The request ends ``Succeeded`` when the migration reaches RolledBack for it, ``Failed`` when its
rollback failed; both copy the evidence (the rollback record, the workloads restored). A request
in an ended phase never changes again: it is the audit record. While the operator, the request or
its migration is paused nothing new starts (``pause``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dbmigrate.api.conditions import (
    READY,
    RECONCILING,
    STALLED,
    ConditionStatus,
    ConditionType,
    Reason,
    set_condition,
)
from dbmigrate.api.dataloss import RequestStrategy, RollbackCheck
from dbmigrate.api.rollback_request import (
    REQUEST_DONE,
    ROLLBACK_PLURAL,
    MigrationRollbackSpec,
    MigrationRollbackStatus,
    RequestEvidence,
    RequestPhase,
    RestorePlan,
    RollbackPlan,
    WorkloadPlan,
)
from dbmigrate.api.spec import DatabaseMigrationSpec, WorkloadRef
from dbmigrate.api.status import TERMINAL_PHASES, DatabaseMigrationStatus, RequestedRollback
from dbmigrate.decision.model import JobState
from dbmigrate.decision.pause import pause_reason

CHECK_REQUEUE = 3.0
RUNNING_REQUEUE = 5.0
RUNNING_PHASES = ("BackingUp", "Migrating", "Verifying", "RollingBack")
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class MigrationView:
    """The DatabaseMigration a request names, as read from the API server."""

    name: str
    generation: int
    spec: DatabaseMigrationSpec
    status: DatabaseMigrationStatus
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckJob:
    """The request's rollback check Job as the Job controller reports it."""

    name: str
    state: JobState
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class RequestObserved:
    """Everything ``decide_request`` may look at.

    ``creator``: the manager that created the request (its first managedFields entry).
    ``check_job``: the request's rollback check Job, if it exists. ``replicas``: the current
    replicas of each workload to scale, by ``Kind/name`` (None: not found). ``busy``: other
    migrations of the same database whose run is under way (namespace/name and phase).
    """

    name: str
    namespace: str
    generation: int
    spec: MigrationRollbackSpec
    status: MigrationRollbackStatus
    created_at: datetime
    now: datetime
    creator: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    migration: MigrationView | None = None
    check_job: CheckJob | None = None
    replicas: dict[str, int | None] = field(default_factory=dict)
    busy: tuple[str, ...] = ()
    operator_paused: bool = False


@dataclass(frozen=True)
class RequestEvent:
    """An Event to post on the request."""

    type: EventType
    reason: Reason
    message: str


@dataclass(frozen=True)
class RequestDecision:
    """What the operator does for the request now: its status, the check Job to create, the
    rollback to start on the migration (a status patch), Events, and when to look again."""

    status: MigrationRollbackStatus
    create_check_job: bool = False
    start_rollback: RequestedRollback | None = None
    events: tuple[RequestEvent, ...] = ()
    requeue_after: float | None = None


def strategy_of(spec: MigrationRollbackSpec, migration: DatabaseMigrationSpec) -> str:
    """The strategy the request runs: its own, else the migration's spec.rollback.strategy."""
    return spec.strategy or migration.rollback.strategy


def workloads_of(
    spec: MigrationRollbackSpec, migration: DatabaseMigrationSpec
) -> list[WorkloadRef]:
    """The workloads the request scales: its own list, else the migration's."""
    return list(spec.scale_down if spec.scale_down is not None else migration.rollback.scale_down)


def how_to_confirm(namespace: str, request: str, migration: str) -> str:
    """The exact command that confirms a rollback that loses data."""
    body = json.dumps({"spec": {"confirm": migration}}, separators=(",", ":"))
    return f"kubectl patch {ROLLBACK_PLURAL} {request} -n {namespace} --type merge -p '{body}'"


def decide_request(o: RequestObserved) -> RequestDecision:
    """The next step of the request in ``o`` (see the module docstring)."""
    status = _first_look(o)
    if status.phase in REQUEST_DONE:
        return RequestDecision(status=o.status)
    dm = o.migration
    if dm is not None and dm.status.rollback_request == o.name:
        return _running(o, status, dm)
    paused = _paused(o)
    if paused is not None:
        return _end(o, status, status.phase or "Planning", "working", Reason.ROLLBACK_PLANNING,
                    paused, requeue=None)  # fmt: skip
    if dm is None:
        return _refuse(o, status, f"DatabaseMigration {o.spec.migration} was not found in "
                       f"namespace {o.namespace}: name an existing migration")  # fmt: skip
    refusal = _refusal(o, dm)
    if refusal is not None:
        return _refuse(o, status, refusal)
    status = status.model_copy(update={"plan": _plan(o, dm, status)})
    return _after_check(o, status, dm)


def _first_look(o: RequestObserved) -> MigrationRollbackStatus:
    """The status with who asked and when, filled in once."""
    status = o.status
    if status.requested_at is not None:
        return status
    return status.model_copy(
        update={
            "requested_by": o.spec.requested_by or o.creator or "unknown",
            "requested_at": o.created_at,
            "phase": status.phase or "Planning",
        }
    )


def _paused(o: RequestObserved) -> str | None:
    reason = pause_reason(o.annotations, o.operator_paused)
    if reason is None and o.migration is not None:
        reason = pause_reason(o.migration.annotations, False)
    if reason is None:
        return None
    return f"paused ({reason}): nothing new starts until the pause is lifted"


def _refusal(o: RequestObserved, dm: MigrationView) -> str | None:
    """Why the API server's view already refuses the rollback, or None."""
    phase = dm.status.phase
    if phase not in TERMINAL_PHASES:
        return (
            f"the run of DatabaseMigration {dm.name} has not finished (phase {phase}); wait for "
            "it to end (its own checks roll it back if they fail), then ask again"
        )
    if phase != "Succeeded":
        return (
            f"DatabaseMigration {dm.name} ended {phase}: its last run left nothing applied to roll "
            "back"
        )
    strategy = strategy_of(o.spec, dm.spec)
    if strategy == "None":
        return (
            f"DatabaseMigration {dm.name} has spec.rollback.strategy None: set spec.strategy "
            "(DropCreatedObjects or RestoreBackup) on the request"
        )
    if strategy == "RestoreBackup" and dm.status.backup is None:
        return (
            f"RestoreBackup needs the run's backup, but DatabaseMigration {dm.name} recorded none "
            "(spec.backup.enabled was false?): use DropCreatedObjects"
        )
    if o.busy:
        return (
            f"another run holds the database: {', '.join(o.busy)}; wait until it ends, then ask "
            "again"
        )
    return None


def _plan(o: RequestObserved, dm: MigrationView, status: MigrationRollbackStatus) -> RollbackPlan:
    strategy: RequestStrategy = strategy_of(o.spec, dm.spec)  # type: ignore[assignment]
    run = dm.status
    applied = [v for v in (run.apply.versions if run.apply else []) if v.status == "applied"]
    drop = [
        f"{c.kind} {c.schema_name + '.' if c.schema_name else ''}"
        f"{c.table + '.' if c.kind == 'column' and c.table else ''}{c.name}"
        for v in reversed(applied)
        for c in reversed(v.created_objects)
    ]
    backup = run.backup
    restore = None
    if strategy == "RestoreBackup" and backup is not None:
        restore = RestorePlan(path=backup.path, sha256=backup.sha256, size_bytes=backup.size_bytes)
    workloads = [
        WorkloadPlan(kind=w.kind, name=w.name, from_replicas=_replicas(o, status, w), to=0)
        for w in workloads_of(o.spec, dm.spec)
    ]
    return RollbackPlan(
        strategy=strategy, drop=drop, restore=restore,
        versions=[str(v.version) for v in applied], workloads=workloads,
    )  # fmt: skip


def _replicas(o: RequestObserved, status: MigrationRollbackStatus, ref: WorkloadRef) -> int | None:
    """The replicas the plan shows: as first seen (a later look may see it scaled down)."""
    if status.plan is not None:
        for w in status.plan.workloads:
            if (w.kind, w.name) == (ref.kind, ref.name) and w.from_replicas is not None:
                return w.from_replicas
    return o.replicas.get(f"{ref.kind}/{ref.name}")


def _after_check(
    o: RequestObserved, status: MigrationRollbackStatus, dm: MigrationView
) -> RequestDecision:
    job = o.check_job
    if job is None:
        return _end(o, status, "Planning", "working", Reason.ROLLBACK_PLANNING,
                    "planned; checking the database for data loss and refusals",
                    create_check_job=True)  # fmt: skip
    status = status.model_copy(update={"check_job": job.name})
    check = dm.status.rollback_check
    report = check if check is not None and check.request == o.name else None
    if job.state == "Failed":
        return _end(o, status, "Failed", "failed", Reason.ROLLBACK_FAILED,
                    f"the rollback check Job {job.name} failed: {job.message or 'see its logs'}; "
                    "nothing was changed")  # fmt: skip
    if report is None:
        return _end(o, status, "Planning", "working", Reason.ROLLBACK_PLANNING,
                    f"the rollback check Job {job.name} checks the database")  # fmt: skip
    return _judge(o, status, dm, report)


def _judge(o: RequestObserved, status: MigrationRollbackStatus, dm: MigrationView,
           check: RollbackCheck) -> RequestDecision:  # fmt: skip
    plan = status.plan
    if plan is not None and (check.versions or check.indexes_to_rebuild):
        found = {"versions": check.versions or plan.versions, "rebuild": check.indexes_to_rebuild}
        status = status.model_copy(update={"plan": plan.model_copy(update=found)})
    loss = check.data_loss
    status = status.model_copy(update={"data_loss": loss, "confirm_required": loss.loss_found})
    if check.problems:
        return _refuse(o, status, "; ".join(check.problems))
    if o.spec.dry_run:
        return _end(o, status, "Planned", "done", Reason.ROLLBACK_PLANNED,
                    f"dry run: planned, nothing changed. {loss.summary}")  # fmt: skip
    if loss.loss_found and o.spec.confirm != dm.name:
        command = how_to_confirm(o.namespace, o.name, dm.name)
        status = status.model_copy(update={"how_to_confirm": command})
        wrong = (
            f" (spec.confirm is {o.spec.confirm!r}, not the migration's name)"
            if o.spec.confirm
            else ""
        )
        return _end(o, status, "AwaitingConfirmation", "stalled", Reason.CONFIRMATION_REQUIRED,
                    f"data would be lost: {loss.summary}. Nothing runs until confirmed{wrong}: "
                    f"{command}", requeue=None)  # fmt: skip
    strategy: RequestStrategy = strategy_of(o.spec, dm.spec)  # type: ignore[assignment]
    asked = RequestedRollback(
        request=o.name, strategy=strategy, scale_down=workloads_of(o.spec, dm.spec),
        reason=o.spec.reason, requested_by=status.requested_by,
    )  # fmt: skip
    status = status.model_copy(update={"started_at": o.now})
    decision = _end(o, status, "Running", "working", Reason.ROLLBACK_RUNNING,
                    f"rolling back DatabaseMigration {dm.name} ({strategy})")  # fmt: skip
    return RequestDecision(
        status=decision.status, start_rollback=asked, events=decision.events,
        requeue_after=RUNNING_REQUEUE,
    )  # fmt: skip


def _running(
    o: RequestObserved, status: MigrationRollbackStatus, dm: MigrationView
) -> RequestDecision:
    """The migration rolls back for this request: wait for its end, then copy the evidence."""
    run = dm.status
    if status.started_at is None:
        status = status.model_copy(update={"started_at": o.now})
    evidence = RequestEvidence(
        rollback=run.rollback,
        verification=run.verification,
        verified=bool(run.rollback and run.rollback.verified),
        workloads_restored=[w for w in run.scaled_workloads if w.restored],
        migration_phase=run.phase,
        migration_message=run.message,
    )
    status = status.model_copy(update={"evidence": evidence})
    if run.phase == "RolledBack":
        return _end(o, status, "Succeeded", "done", Reason.ROLLBACK_SUCCEEDED,
                    f"rolled back and verified: {run.message}")  # fmt: skip
    if run.phase == "Failed":
        return _end(o, status, "Failed", "failed", Reason.ROLLBACK_FAILED,
                    f"the rollback did not end in a verified state: {run.message}")  # fmt: skip
    return _end(o, status, "Running", "working", Reason.ROLLBACK_RUNNING,
                f"DatabaseMigration {dm.name} is rolling back: {run.message}")  # fmt: skip


def _refuse(o: RequestObserved, status: MigrationRollbackStatus, why: str) -> RequestDecision:
    return _end(o, status, "Refused", "failed", Reason.ROLLBACK_REFUSED, f"refused: {why}")


Health = Literal["working", "stalled", "done", "failed"]
KSTATUS: dict[Health, tuple[ConditionStatus, ConditionStatus, ConditionStatus]] = {
    # Ready, Reconciling, Stalled
    "working": ("False", "True", "False"),
    "stalled": ("False", "False", "True"),
    "done": ("True", "False", "False"),
    "failed": ("False", "False", "True"),
}


def _end(
    o: RequestObserved,
    status: MigrationRollbackStatus,
    phase: RequestPhase,
    health: Health,
    reason: Reason,
    message: str,
    *,
    create_check_job: bool = False,
    requeue: float | None = CHECK_REQUEUE,
) -> RequestDecision:
    """The status in ``phase`` with its kstatus conditions, and an Event when something changed."""
    conditions = list(status.conditions)
    kstatus: tuple[ConditionType, ...] = (READY, RECONCILING, STALLED)
    for type_, value in zip(kstatus, KSTATUS[health], strict=True):
        conditions = set_condition(
            conditions, type_, value, reason, message if value == "True" or type_ == READY else "",
            now=o.now, generation=o.generation,
        )  # fmt: skip
    update: dict[str, Any] = {
        "phase": phase, "message": message, "conditions": conditions,
        "observed_generation": o.generation,
    }  # fmt: skip
    if phase in REQUEST_DONE and status.finished_at is None:
        update["finished_at"] = o.now
    new = status.model_copy(update=update)
    changed = (o.status.phase, o.status.message) != (phase, message)
    kind: EventType = "Warning" if health in ("failed", "stalled") else "Normal"
    events = (RequestEvent(kind, reason, message),) if changed else ()
    done = phase in REQUEST_DONE or health == "stalled"
    return RequestDecision(
        status=new, create_check_job=create_check_job, events=events,
        requeue_after=None if done else requeue,
    )  # fmt: skip
