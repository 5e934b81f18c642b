"""A rollback on demand: the MigrationRollback resource, a one-shot request and its audit record.

A person (or a script) creates one to undo a DatabaseMigration whose run has ended, usually after
it succeeded and something went wrong in production. It names the migration, the strategy and the
workloads to stop (defaults: the migration's ``spec.rollback``) and why. The operator plans it
first, always: ``status.plan`` says what will be dropped or restored, which versions leave the
history and which workloads scale to what, and ``status.dataLoss`` what a check against the
database found would be lost. With data at stake nothing runs until ``spec.confirm`` carries the
migration's name; ``spec.dryRun`` only plans. Then it runs the migration's own emergency rollback
(stop the application, drop or restore, verify, scale back) and records who asked, when, why,
what was done and the evidence. Creating one needs ``create`` on ``migrationrollbacks``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel
from dbmigrate.api.conditions import Condition
from dbmigrate.api.dataloss import DataLoss, RequestStrategy
from dbmigrate.api.evidence import RollbackRecord, VerificationResult
from dbmigrate.api.spec import WorkloadRef
from dbmigrate.api.status import ScaledWorkload

ROLLBACK_KIND = "MigrationRollback"
ROLLBACK_PLURAL = "migrationrollbacks"
ROLLBACK_SHORT_NAME = "dbmr"

RequestPhase = Literal[
    "Planning", "Planned", "AwaitingConfirmation", "Running", "Succeeded", "Refused", "Failed"
]
REQUEST_DONE: tuple[RequestPhase, ...] = ("Planned", "Succeeded", "Refused", "Failed")


class MigrationRollbackSpec(ApiModel):
    """What to roll back, how, and why."""

    migration: str = Field(
        min_length=1,
        max_length=253,
        description="Name of the DatabaseMigration, in the same namespace, whose last run to undo.",
    )
    strategy: RequestStrategy | None = Field(
        default=None,
        description="DropCreatedObjects (drop what the run created and build again the indexes "
        "it dropped) or RestoreBackup (restore the backup taken before it). Default: the "
        "migration's spec.rollback.strategy.",
    )
    scale_down: list[WorkloadRef] | None = Field(
        default=None,
        max_length=20,
        description="Workloads scaled to zero during the rollback and scaled back after. "
        "Default: the migration's spec.rollback.scaleDown; [] scales nothing.",
    )
    reason: str = Field(default="", max_length=1024, description="Why the rollback is asked for.")
    requested_by: str | None = Field(
        default=None,
        max_length=253,
        description="Who asks (default: the manager that created the request, from managedFields).",
    )
    dry_run: bool = Field(
        default=False,
        description="Only plan: show the plan and the data-loss check, change nothing.",
    )
    confirm: str | None = Field(
        default=None,
        max_length=253,
        description="The migration's name, to confirm a rollback that loses data.",
    )


class RestorePlan(ApiModel):
    """The backup a RestoreBackup rollback restores."""

    path: str = Field(description="Path of the backup on its volume.")
    sha256: str = Field(description="Its sha256, as the backup step recorded it.")
    size_bytes: int = Field(description="Its size.")


class WorkloadPlan(ApiModel):
    """A workload the rollback scales down, and back."""

    kind: Literal["Deployment", "StatefulSet"] = Field(description="Kind of the workload.")
    name: str = Field(description="Name of the workload.")
    from_replicas: int | None = Field(
        default=None, alias="from", description="Replicas now (scaled back to this afterwards)."
    )
    to: int = Field(default=0, description="Replicas during the rollback.")


class RollbackPlan(ApiModel):
    """What the rollback will do, shown before it runs."""

    strategy: RequestStrategy = Field(description="The strategy that will run.")
    drop: list[str] = Field(
        default_factory=list, description="Objects that will be dropped (kind schema.name)."
    )
    rebuild: list[str] = Field(
        default_factory=list,
        description="Indexes the run dropped that will be built again (schema.name), from the "
        "rollback check.",
    )
    restore: RestorePlan | None = Field(default=None, description="The backup to restore.")
    versions: list[str] = Field(
        default_factory=list, description="Versions that leave the history (marked rolled back)."
    )
    workloads: list[WorkloadPlan] = Field(
        default_factory=list, description="Workloads scaled down during the rollback."
    )


class RequestEvidence(ApiModel):
    """What was done, with the evidence."""

    rollback: RollbackRecord | None = Field(
        default=None, description="The rollback step's record (what was dropped or restored)."
    )
    verification: VerificationResult | None = Field(
        default=None, description="The migration's verification as it stood before the rollback."
    )
    verified: bool = Field(default=False, description="The rollback checked the state it left.")
    workloads_restored: list[ScaledWorkload] = Field(
        default_factory=list, description="Workloads scaled down and back, with their replicas."
    )
    migration_phase: str | None = Field(
        default=None, description="The migration's phase when the request ended."
    )
    migration_message: str | None = Field(
        default=None, description="The migration's status message when the request ended."
    )


class MigrationRollbackStatus(ApiModel):
    """The request's life: its plan, the data-loss check, the confirmation, what was done."""

    phase: RequestPhase | None = Field(default=None, description="Where the request is.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the operator acted on last."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Reconciling and Stalled (kstatus)."
    )
    message: str | None = Field(default=None, description="A one-line summary of the state.")
    requested_by: str | None = Field(default=None, description="Who asked for the rollback.")
    requested_at: datetime | None = Field(default=None, description="When it was asked for.")
    started_at: datetime | None = Field(default=None, description="When the rollback started.")
    finished_at: datetime | None = Field(default=None, description="When the request ended.")
    plan: RollbackPlan | None = Field(default=None, description="What the rollback will do.")
    data_loss: DataLoss | None = Field(
        default=None, description="What the rollback would lose, checked against the database."
    )
    confirm_required: bool = Field(
        default=False, description="Whether spec.confirm must name the migration before it runs."
    )
    how_to_confirm: str | None = Field(
        default=None, description="The kubectl command that confirms this rollback."
    )
    check_job: str | None = Field(default=None, description="The Job that checked the database.")
    evidence: RequestEvidence | None = Field(default=None, description="What was done.")
