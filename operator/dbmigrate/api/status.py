"""The status of a DatabaseMigration: every step's evidence, where kubectl and GitOps read it.

Each writer owns its subtree. The operator writes ``phase``, ``conditions``,
``observedGeneration`` and the fields of this module; each step Job writes its own key (``plan``,
``lint``, ``preflight``, ``backup``, ``apply``, ``progress``, ``verification``, ``rollback``, and
``stepExit`` as its last act), whose models live beside the step's code in ``api/plan.py``,
``api/lint.py`` and ``api/evidence.py``.
Every field is declared: the API server silently prunes what the schema does not declare.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel
from dbmigrate.api.conditions import Condition, Reason
from dbmigrate.api.dataloss import RequestStrategy, RollbackCheck
from dbmigrate.api.evidence import (
    BackupEvidence,
    PreflightResult,
    RollbackRecord,
    VerificationResult,
)
from dbmigrate.api.lint import LintReport
from dbmigrate.api.plan import ApplyProgress, ApplyResult, PlanResult
from dbmigrate.api.spec import NotificationEvent, WorkloadRef
from dbmigrate.api.stepnames import Step

Phase = Literal[
    "Pending",
    "Planning",
    "WaitingForApproval",
    "WaitingForWindow",
    "WaitingForLock",
    "BackingUp",
    "Migrating",
    "Verifying",
    "Succeeded",
    "Failed",
    "RollingBack",
    "RolledBack",
]
TERMINAL_PHASES = ("Succeeded", "Failed", "RolledBack")
# What a kstatus condition may carry as its reason: a Reason, or the phase of a run that works
# (Ready=False/Reconciling=True: Planning, BackingUp, ...) or has ended (Succeeded, Failed, ...).
ConditionReason = Reason | Phase


class JobRecord(ApiModel):
    """A Job the operator created for one step."""

    step: Step = Field(description="The step the Job runs.")
    name: str = Field(description="Name of the Job in the resource's namespace.")
    generation: int = Field(ge=0, description="The spec generation the Job was created for.")
    created_at: datetime = Field(description="When the operator created the Job.")
    outcome: Literal["Running", "Succeeded", "Failed"] = Field(
        default="Running", description="What the Job controller reported last."
    )
    finished_at: datetime | None = Field(default=None, description="When the Job finished.")
    message: str | None = Field(default=None, description="Why the Job failed, if it did.")


class StepExit(ApiModel):
    """How a step's process ended, written by the step itself as its last act.

    The Job controller marks a Job Complete a second or more after its pod ends (it batches pod
    updates); the step's own word lets the operator start the next step at once. Only an exit
    code of 0 is acted on early: a failure waits for the Job, which may retry it.
    """

    job: str = Field(description="Name of the step's Job.")
    step: Step = Field(description="The step that ended.")
    exit_code: int = Field(description="The exit code of the step's command.")
    finished_at: datetime = Field(description="When the step's command ended.")


class ApprovalStatus(ApiModel):
    """The approval gate: which plan needs approving, and which one was approved."""

    required: bool = Field(description="Whether this plan waits for a manual approval.")
    plan_hash: str | None = Field(default=None, description="The plan hash to approve.")
    approved_hash: str | None = Field(default=None, description="The hash that was approved.")
    approved_at: datetime | None = Field(default=None, description="When it was approved.")
    how_to_approve: str | None = Field(
        default=None, description="The kubectl command that approves this plan."
    )


class WindowStatus(ApiModel):
    """The maintenance-window gate as evaluated last."""

    required: bool = Field(description="Whether this plan must wait for the window.")
    open: bool = Field(description="Whether the window is open now.")
    next_open: datetime | None = Field(default=None, description="When the window opens next.")
    closes_at: datetime | None = Field(default=None, description="When the open window closes.")
    reason: str = Field(default="", description="Why the window applies (or does not).")


class ScaledWorkload(ApiModel):
    """A workload scaled down during an emergency rollback, with the replicas to restore."""

    kind: Literal["Deployment", "StatefulSet"] = Field(description="Kind of the workload.")
    name: str = Field(description="Name of the workload.")
    replicas: int = Field(ge=0, description="Replicas before the scale-down.")
    restored: bool = Field(default=False, description="Whether the replicas were restored.")


class DatabaseIdentity(ApiModel):
    """The database as the plan step saw it: compared across resources to allow one migration
    per database at a time (the operator never reads the Secret itself)."""

    system_identifier: str = Field(description="pg_control_system().system_identifier.")
    database: str = Field(description="current_database().")
    server_address: str | None = Field(default=None, description="inet_server_addr().")
    server_port: int | None = Field(default=None, description="inet_server_port().")
    server_version: str | None = Field(default=None, description="server_version.")

    @property
    def key(self) -> str:
        """The identity compared across resources."""
        return f"{self.system_identifier}/{self.database}"


class NotificationDelivery(ApiModel):
    """The delivery of one notification to one target (never its URL)."""

    target: str = Field(description="Name of the target.")
    source: Literal["Resource", "Operator"] = Field(
        description="Resource: from spec.notifications; Operator: an operator-wide target."
    )
    state: Literal["Pending", "Delivered", "Failed"] = Field(
        default="Pending",
        description="Pending until delivered or given up; a restarted operator sends Pending.",
    )
    attempts: int = Field(default=0, ge=0, description="HTTP attempts made.")
    finished_at: datetime | None = Field(
        default=None, description="When it was delivered or given up."
    )
    error: str | None = Field(default=None, description="Why the delivery failed, if it did.")


class NotificationRecord(ApiModel):
    """A transition a person cares about, notified once per run to each target."""

    event: NotificationEvent = Field(description="The transition.")
    run_id: str = Field(description="The run it belongs to.")
    at: datetime = Field(description="When the transition happened.")
    reason: str = Field(description="The Ready condition's reason at the transition.")
    message: str = Field(max_length=2048, description="The status message at the transition.")
    plan_hash: str | None = Field(default=None, description="The plan hash awaiting approval.")
    next_open: datetime | None = Field(
        default=None, description="When the maintenance window opens next."
    )
    failed_step: Step | None = Field(default=None, description="The step that failed, if any.")
    deliveries: list[NotificationDelivery] = Field(
        default_factory=list, description="One delivery per target."
    )


class RequestedRollback(ApiModel):
    """The rollback on demand a MigrationRollback asked for, run in place of spec.rollback."""

    request: str = Field(description="Name of the MigrationRollback.")
    strategy: RequestStrategy = Field(description="The strategy it asked for.")
    scale_down: list[WorkloadRef] = Field(
        default_factory=list, description="The workloads it scales down."
    )
    reason: str = Field(default="", description="Why it was asked for.")
    requested_by: str | None = Field(default=None, description="Who asked.")


class DatabaseMigrationStatus(ApiModel):
    """What happened, step by step, with the evidence of each."""

    phase: Phase = Field(default="Pending", description="Where the migration is in its flow.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the operator acted on last."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Reconciling, Stalled and step conditions."
    )
    message: str | None = Field(default=None, description="A one-line summary of the state.")
    run_id: str | None = Field(default=None, description="Identity of this run in the history.")
    target_version: str | None = Field(
        default=None, description="The version this run migrates to (for printing)."
    )
    current_version: str | None = Field(
        default=None, description="The highest version applied in the database."
    )
    started_at: datetime | None = Field(default=None, description="When this run started.")
    finished_at: datetime | None = Field(default=None, description="When this run finished.")
    failed_step: Step | None = Field(default=None, description="The step that failed, if any.")
    database: DatabaseIdentity | None = Field(
        default=None, description="The database, as the plan step identified it."
    )
    waiting_for: str | None = Field(
        default=None, description="namespace/name of the migration holding the database."
    )
    approval: ApprovalStatus | None = Field(default=None, description="The approval gate.")
    window: WindowStatus | None = Field(default=None, description="The maintenance window.")
    jobs: list[JobRecord] = Field(default_factory=list, description="Jobs created, per step.")
    scaled_workloads: list[ScaledWorkload] = Field(
        default_factory=list, description="Workloads scaled down by the emergency rollback."
    )
    plan: PlanResult | None = Field(default=None, description="Written by the plan step.")
    lint: LintReport | None = Field(default=None, description="Written by the plan step.")
    preflight: PreflightResult | None = Field(default=None, description="Written by the plan step.")
    backup: BackupEvidence | None = Field(default=None, description="Written by the backup step.")
    apply: ApplyResult | None = Field(default=None, description="Written by the migrate step.")
    progress: ApplyProgress | None = Field(
        default=None, description="Live progress, written by the running step."
    )
    verification: VerificationResult | None = Field(
        default=None, description="Written by the verify step."
    )
    rollback: RollbackRecord | None = Field(
        default=None, description="Written by the rollback step."
    )
    step_exit: StepExit | None = Field(
        default=None, description="How the last step's command ended, written by the step."
    )
    rollback_request: str | None = Field(
        default=None,
        description="The MigrationRollback that rolled this run back on demand (or is doing so).",
    )
    requested_rollback: RequestedRollback | None = Field(
        default=None, description="What that request asked for (strategy, workloads, reason)."
    )
    rollback_check: RollbackCheck | None = Field(
        default=None, description="Written by the rollback check Job of a rollback on demand."
    )
    last_handled_rollback: str | None = Field(
        default=None,
        description="The token of the last dbmigrate.io/rollback annotation handled.",
    )
    notifications: list[NotificationRecord] = Field(
        default_factory=list,
        description="Transitions notified to webhooks in this run, with each delivery's state.",
    )
