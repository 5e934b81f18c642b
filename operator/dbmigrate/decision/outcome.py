"""Turns what a phase handler concluded (an ``Outcome``) into the full ``Decision``.

The phase handlers in ``decide.py`` only say where the run is and why. This module applies the
rules every decision shares, so they hold everywhere: the kstatus conditions (Ready, Reconciling,
Stalled) from the outcome's health, the step conditions, observedGeneration, the Job records,
the printed versions, and an Event on every phase transition (and when the reason a run waits or
is stalled changes, so a refused approval or a missing Secret is announced once, not every loop),
whose reason is Ready's.

Health and kstatus (what ``kubectl wait``, Flux and Argo CD read):

=========  ============  =================  ===============  ================================
health     Ready         Reconciling        Stalled          used for
=========  ============  =================  ===============  ================================
working    False, phase  True, phase        False            Planning, BackingUp, ... running
waiting    False, gate   True, gate         False            WaitingForApproval/Window/Lock
stalled    False, cause  False              True, cause      missing Secret/ConfigMap, bad spec
succeeded  True          False              False            Succeeded
failed     False, phase  False              True, cause      Failed, RolledBack
=========  ============  =================  ===============  ================================

Waiting is Reconciling=True on purpose: the operator is still working towards Ready and will go
on by itself when the gate opens (kstatus "InProgress"), whereas Stalled means a person must act.
The gate reason is WaitingForApproval, WaitingForWindow or WaitingForLock, and ApprovalRefused
while the annotation approves another plan hash than the current one (a Warning Event says so).
On Failed and RolledBack the Stalled reason keeps the cause (LintFailed, BackupFailed,
ApplyFailed, VerificationFailed, RollbackFailed, ...), and Ready's reason is the phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from dbmigrate.api.conditions import (
    READY,
    RECONCILING,
    STALLED,
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    set_condition,
)
from dbmigrate.api.spec import WorkloadRef
from dbmigrate.api.status import (
    TERMINAL_PHASES,
    ConditionReason,
    DatabaseMigrationStatus,
    JobRecord,
    Phase,
    ScaledWorkload,
    Step,
)
from dbmigrate.decision.model import Decision, EventSpec, JobObservation, Observed
from dbmigrate.specs.naming import job_name, latest_attempt

Health = Literal["working", "waiting", "stalled", "succeeded", "failed"]
KSTATUS = (READY, RECONCILING, STALLED)
MAX_JOB_RECORDS = 25


@dataclass(frozen=True, kw_only=True)
class StepCondition:
    """A step condition (BackedUp, Migrated, Verified, RolledBack) to set."""

    type: ConditionType
    status: ConditionStatus
    reason: Reason
    message: str


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """Where the run is after this reconcile, and why (``updates``: other status fields).

    Built with the named constructor of its health (``Outcome.working(...)``, ``.waiting``,
    ``.stalled``, ``.succeeded``, ``.failed``), every argument by keyword.
    """

    phase: Phase
    health: Health
    reason: ConditionReason
    message: str
    create_job: Step | None = None
    conditions: tuple[StepCondition, ...] = ()
    updates: dict[str, Any] = field(default_factory=dict)
    requeue_after: float | None = None
    scale_down: tuple[WorkloadRef, ...] = ()
    scale_up: tuple[ScaledWorkload, ...] = ()
    warning: bool = False
    again: Step | None = None  # create_job is a new attempt of this step (``replan``)
    clear_keys: tuple[str, ...] = ()  # status fields that new attempt clears

    @classmethod
    def working(
        cls,
        *,
        phase: Phase,
        message: str,
        create_job: Step | None = None,
        conditions: tuple[StepCondition, ...] = (),
        updates: dict[str, Any] | None = None,
        requeue_after: float | None = None,
        scale_down: tuple[WorkloadRef, ...] = (),
        scale_up: tuple[ScaledWorkload, ...] = (),
        warning: bool = False,
    ) -> Outcome:
        """A step is under way in ``phase`` (its reason is the phase)."""
        return cls(
            phase=phase, health="working", reason=phase, message=message, create_job=create_job,
            conditions=conditions, updates=updates or {}, requeue_after=requeue_after,
            scale_down=scale_down, scale_up=scale_up, warning=warning,
        )  # fmt: skip

    @classmethod
    def waiting(
        cls,
        *,
        phase: Phase,
        reason: Reason,
        message: str,
        updates: dict[str, Any] | None = None,
        requeue_after: float | None = None,
        warning: bool = False,
    ) -> Outcome:
        """A gate is closed: the run goes on by itself once it opens."""
        return cls(
            phase=phase, health="waiting", reason=reason, message=message,
            updates=updates or {}, requeue_after=requeue_after, warning=warning,
        )  # fmt: skip

    @classmethod
    def stalled(
        cls,
        *,
        phase: Phase,
        reason: Reason,
        message: str,
        conditions: tuple[StepCondition, ...] = (),
        updates: dict[str, Any] | None = None,
        requeue_after: float | None = None,
        scale_down: tuple[WorkloadRef, ...] = (),
    ) -> Outcome:
        """The run stays in ``phase`` until a person fixes what ``reason`` names."""
        return cls(
            phase=phase, health="stalled", reason=reason, message=message,
            conditions=conditions, updates=updates or {}, requeue_after=requeue_after,
            scale_down=scale_down,
        )  # fmt: skip

    @classmethod
    def succeeded(cls, *, message: str, conditions: tuple[StepCondition, ...] = ()) -> Outcome:
        """The run ended well (the kstatus conditions then carry the phase as their reason)."""
        return cls(
            phase="Succeeded", health="succeeded", reason="Succeeded", message=message,
            conditions=conditions,
        )  # fmt: skip

    @classmethod
    def failed(
        cls,
        *,
        phase: Phase,
        reason: Reason,
        message: str,
        conditions: tuple[StepCondition, ...] = (),
        updates: dict[str, Any] | None = None,
    ) -> Outcome:
        """The run ended in ``phase`` (Failed or RolledBack); ``reason`` is its cause."""
        return cls(
            phase=phase, health="failed", reason=reason, message=message,
            conditions=conditions, updates=updates or {},
        )  # fmt: skip

    def with_conditions(self, *conditions: StepCondition) -> Outcome:
        """The same outcome, also setting ``conditions`` (first, so its own win)."""
        return replace(self, conditions=(*conditions, *self.conditions))


@dataclass(frozen=True)
class Ctx:
    """The observation, with the status the run is based on (fresh when a run starts).

    ``new_attempt`` names a step started once more in the same run (the plan made again after
    the database lock was released): its Job gets the next attempt number.
    """

    observed: Observed
    base: DatabaseMigrationStatus
    clear_step_keys: tuple[str, ...] = ()
    new_attempt: Step | None = None

    @property
    def run_generation(self) -> int:
        generation = self.base.observed_generation
        return self.observed.generation if generation is None else generation

    @property
    def now(self) -> datetime:
        return self.observed.now

    def attempt(self, step: Step) -> int:
        """The attempt of ``step`` this run is at: the newest recorded (plus one if new).

        A retry of the same generation (``healing``) starts every step at a new attempt: when
        all of the step's recorded Jobs were created before this run started, they belong to
        an earlier run, and this run's Job is the next attempt."""
        generation = self.run_generation
        records = [r for r in self.base.jobs if r.step == step and r.generation == generation]
        latest = latest_attempt([r.name for r in records], step, generation)
        started = self.base.started_at
        earlier_run = (
            started is not None and bool(records) and all(r.created_at < started for r in records)
        )
        return latest + (step == self.new_attempt or earlier_run)

    def job(self, step: Step) -> JobObservation | None:
        """This run's Job of ``step`` (a Job of another generation or attempt does not count)."""
        job = self.observed.jobs.get(step)
        if job is None or job.generation != self.run_generation:
            return None
        return job if job.attempt == self.attempt(step) else None

    def succeeded(self, step: Step) -> bool:
        job = self.job(step)
        return job is not None and job.state == "Succeeded"

    def job_name(self, step: Step) -> str:
        return job_name(self.observed.name, step, self.run_generation, self.attempt(step))

    def with_failure(self, step: Step) -> Ctx:
        """This context, with ``step`` recorded as the run's failed step."""
        return replace(self, base=self.base.model_copy(update={"failed_step": step}))


def kstatus_conditions(
    health: Health, phase: Phase, reason: ConditionReason
) -> list[tuple[ConditionType, ConditionStatus, ConditionReason]]:
    """(type, status, reason) of Ready, Reconciling and Stalled for this health."""
    if health == "succeeded":
        return [(READY, "True", phase), (RECONCILING, "False", phase), (STALLED, "False", phase)]
    if health in ("working", "waiting"):
        return [(READY, "False", reason), (RECONCILING, "True", reason), (STALLED, "False", phase)]
    ready_reason = reason if health == "stalled" else phase
    return [
        (READY, "False", ready_reason),
        (RECONCILING, "False", phase),
        (STALLED, "True", reason),
    ]


def _conditions(ctx: Ctx, out: Outcome, message: str) -> list[Condition]:
    conditions = list(ctx.base.conditions)
    for type_, status, reason in kstatus_conditions(out.health, out.phase, out.reason):
        shown = message if status == "True" or type_ == READY else ""
        conditions = set_condition(
            conditions, type_, status, reason, shown, now=ctx.now, generation=ctx.run_generation
        )
    for step in out.conditions:
        conditions = set_condition(
            conditions,
            step.type,
            step.status,
            step.reason,
            step.message,
            now=ctx.now,
            generation=ctx.run_generation,
        )
    return conditions


def _sync_record(record: JobRecord, ctx: Ctx) -> JobRecord:
    job = ctx.observed.jobs.get(record.step)
    if job is None or job.name != record.name or job.generation != record.generation:
        return record
    if job.state == "Running" or record.outcome == job.state:
        return record
    finished = job.finished_at or record.finished_at or ctx.now
    return record.model_copy(
        update={"outcome": job.state, "finished_at": finished, "message": job.message or None}
    )


def _job_records(ctx: Ctx, create: Step | None) -> list[JobRecord]:
    records = [_sync_record(record, ctx) for record in ctx.base.jobs]
    if create is not None:
        name = ctx.job_name(create)
        if not any(r.name == name and r.generation == ctx.run_generation for r in records):
            records.append(
                JobRecord(step=create, name=name, generation=ctx.run_generation, created_at=ctx.now)
            )
    return records[-MAX_JOB_RECORDS:]


def _versions(status: DatabaseMigrationStatus) -> dict[str, str | None]:
    """target and current version for the printer columns, from the plan and apply reports."""
    plan, apply = status.plan, status.apply
    if plan is None:
        return {}
    applied = {v.version for v in plan.applied}
    if apply is not None:
        applied |= {v.version for v in apply.versions if v.status == "applied"}
    if status.rollback is not None:
        applied -= {int(v) for v in status.rollback.versions_marked_rolled_back if v.isdigit()}
    pending = [v.version for v in plan.pending]
    target = plan.target or max([*pending, *applied], default=None)
    current = max(applied, default=None)
    return {
        "target_version": None if target is None else str(target),
        "current_version": None if current is None else str(current),
    }


def _events(ctx: Ctx, out: Outcome, message: str) -> tuple[EventSpec, ...]:
    """One Event when the phase changes or the reason a run waits or is stalled changes.

    Its reason is Ready's reason: the phase while a step works and at the end (the cause is in
    the message and in Stalled), the gate or the cause when the run stops where it is, so a
    new run that finds its Secret missing says ``SecretNotFound``, not ``Pending``.
    """
    warn = out.warning or out.health in ("stalled", "failed")
    kind: Literal["Normal", "Warning"] = "Warning" if warn else "Normal"
    reason = kstatus_conditions(out.health, out.phase, out.reason)[0][2]
    if ctx.base.phase != out.phase or ctx.clear_step_keys:
        return (EventSpec(kind, reason, message),)
    if out.health in ("waiting", "stalled"):
        previous = next((c for c in ctx.base.conditions if c.type == READY), None)
        if previous is None or (previous.reason, previous.message) != (out.reason, message):
            return (EventSpec(kind, reason, message),)
    return ()


def render(ctx: Ctx, out: Outcome) -> Decision:
    """The Decision for ``out``: the full new status of the operator-owned fields and actions."""
    if out.again is not None:
        ctx = replace(
            ctx,
            base=ctx.base.model_copy(update=dict.fromkeys(out.clear_keys)),
            clear_step_keys=(*dict.fromkeys((*ctx.clear_step_keys, *out.clear_keys)),),
            new_attempt=out.again,
        )
    message = out.message
    newer = ctx.observed.generation
    if newer > ctx.run_generation and out.phase not in TERMINAL_PHASES:
        message += f" (generation {newer} is queued: it starts when this run ends)"
    update: dict[str, Any] = {
        **_versions(ctx.base),
        "waiting_for": None,
        **out.updates,
        "phase": out.phase,
        "message": message,
        "observed_generation": ctx.run_generation,
        "conditions": _conditions(ctx, out, message),
        "jobs": _job_records(ctx, out.create_job),
    }
    if out.phase in TERMINAL_PHASES and ctx.base.phase != out.phase:
        update["finished_at"] = ctx.now
    return Decision(
        status=ctx.base.model_copy(update=update),
        create_job=out.create_job,
        scale_down=out.scale_down,
        scale_up=out.scale_up,
        events=_events(ctx, out, message),
        requeue_after=out.requeue_after,
        clear_step_keys=ctx.clear_step_keys,
    )
