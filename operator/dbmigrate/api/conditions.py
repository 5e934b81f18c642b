"""Conditions in Kubernetes style: their types and reasons, spelled here once, and the helper
that sets them.

``Ready``, ``Reconciling`` and ``Stalled`` follow kstatus, so Flux, Argo CD and
``kubectl wait --for=condition=Ready`` judge health without custom code; ``BackedUp``,
``Migrated``, ``Verified`` and ``RolledBack`` tell how each step that touches the database went.
A condition's ``lastTransitionTime`` changes only when its status flips.

Users, scripts, Argo CD health checks and notification receivers match on the types and reasons,
so they are part of the API like the CRD: docs/conditions.md documents each for users (what True,
False and Unknown mean, when a reason is set and what to do), and a unit test keeps it and this
module in step. ``Reason`` names why a condition has its status; the kstatus conditions also
carry the phase as their reason while a run works or has ended (``status.ConditionReason``).
``EventReason`` names the Events posted outside the state machine. Being a ``StrEnum``, a reason
is its wire spelling (``Reason.PLAN_FAILED == "PlanFailed"``), but mypy refuses a bare string
where a ``Reason`` is expected, so a misspelt reason cannot slip in.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum, unique
from typing import TYPE_CHECKING, Final, Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel

if TYPE_CHECKING:  # status.py imports this module
    from dbmigrate.api.status import ConditionReason

ConditionType = Literal[
    "Ready",
    "Reconciling",
    "Stalled",
    "BackedUp",
    "Migrated",
    "Verified",
    "RolledBack",
    "ReconciliationPaused",
]
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
BACKED_UP: Final = "BackedUp"
MIGRATED: Final = "Migrated"
VERIFIED: Final = "Verified"
ROLLED_BACK: Final = "RolledBack"
RECONCILIATION_PAUSED: Final = "ReconciliationPaused"

TYPES: dict[ConditionType, str] = {
    READY: "the run reached Succeeded for the current generation (kstatus Current)",
    RECONCILING: "the operator is working towards Ready, or waits for a gate to open",
    STALLED: "the operator cannot go on without a person: a missing prerequisite or a failure",
    BACKED_UP: "whether this run's backup was taken and read back (or why not)",
    MIGRATED: "whether the apply step applied the pending versions",
    VERIFIED: "whether the verify step found every index valid and every probe using it",
    ROLLED_BACK: "whether the rollback after a failed apply or verify restored a verified state",
    RECONCILIATION_PAUSED: "whether the operator starts no new step for this resource (paused)",
}


@unique
class Reason(StrEnum):
    """Why a condition has its status (see ``REASON_MEANINGS``)."""

    # the gates: Ready=False, Reconciling=True (the run goes on by itself once the gate opens)
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    APPROVAL_REFUSED = "ApprovalRefused"
    WAITING_FOR_WINDOW = "WaitingForWindow"
    WAITING_FOR_LOCK = "WaitingForLock"
    # a prerequisite is missing: Stalled=True in the current phase, heals once it is there
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_KEY_MISSING = "SecretKeyMissing"
    CONFIG_MAP_NOT_FOUND = "ConfigMapNotFound"
    INVALID_MAINTENANCE_WINDOW = "InvalidMaintenanceWindow"
    # decide() cannot be asked at all (set by the reconcile loop): Stalled=True
    INVALID_RESOURCE = "InvalidResource"
    API_ERROR = "ApiError"
    # the run failed before any change: phase Failed, Stalled=True
    DRIFT_DETECTED = "DriftDetected"
    LINT_FAILED = "LintFailed"
    PREFLIGHT_FAILED = "PreflightFailed"
    PLAN_FAILED = "PlanFailed"
    BACKUP_FAILED = "BackupFailed"
    BACKUP_NOT_VERIFIED = "BackupNotVerified"
    STEP_NOT_REPORTED = "StepNotReported"
    # a step that changed the database failed: phase RolledBack (or Failed), Stalled=True
    APPLY_FAILED = "ApplyFailed"
    VERIFICATION_FAILED = "VerificationFailed"
    STEP_FAILED = "StepFailed"
    ROLLBACK_IMPOSSIBLE = "RollbackImpossible"
    ROLLBACK_FAILED = "RollbackFailed"
    # the step conditions (BackedUp, Migrated, Verified, RolledBack) when their step went well
    BACKUP_VERIFIED = "BackupVerified"
    BACKUP_DISABLED = "BackupDisabled"
    APPLIED = "Applied"
    VERIFIED = "Verified"
    DROPPED_CREATED_OBJECTS = "DropCreatedObjects"
    RESTORED_BACKUP = "RestoreBackup"
    # a rollback on demand (a MigrationRollback): the migration's end, and the request's own
    ROLLBACK_REQUESTED = "RollbackRequested"
    ROLLBACK_PLANNING = "RollbackPlanning"
    ROLLBACK_PLANNED = "RollbackPlanned"
    CONFIRMATION_REQUIRED = "ConfirmationRequired"
    ROLLBACK_REFUSED = "RollbackRefused"
    ROLLBACK_RUNNING = "RollbackRunning"
    ROLLBACK_SUCCEEDED = "RollbackSucceeded"
    # pause and resume: ReconciliationPaused
    PAUSE_ANNOTATION = "PauseAnnotation"
    OPERATOR_PAUSED = "OperatorPaused"
    RESUMED = "Resumed"


@unique
class EventReason(StrEnum):
    """Reasons of the Events posted outside ``decide`` (its Events carry a phase or a Reason)."""

    WORKLOAD_NOT_FOUND = "WorkloadNotFound"
    NOTIFICATION_FAILED = "NotificationFailed"


REASON_MEANINGS: dict[Reason | EventReason, str] = {
    Reason.WAITING_FOR_APPROVAL: "the plan waits for the approve annotation with its hash",
    Reason.APPROVAL_REFUSED: "the approve annotation names another plan hash than the current",
    Reason.WAITING_FOR_WINDOW: "the plan waits for its maintenance window to open",
    Reason.WAITING_FOR_LOCK: "another migration is changing the same database",
    Reason.SECRET_NOT_FOUND: "the Secret of spec.database.secretRef does not exist",
    Reason.SECRET_KEY_MISSING: "the Secret lacks a key the spec names",
    Reason.CONFIG_MAP_NOT_FOUND: "the ConfigMap of spec.source.configMap does not exist",
    Reason.INVALID_MAINTENANCE_WINDOW: "spec.maintenanceWindow cannot be evaluated",
    Reason.INVALID_RESOURCE: "the resource does not match the operator's API model",
    Reason.API_ERROR: "an API call of the operator failed for good (not a transient error)",
    Reason.DRIFT_DETECTED: "the migration set disagrees with the database's history table",
    Reason.LINT_FAILED: "lint found errors under safety.lintPolicy strict",
    Reason.PREFLIGHT_FAILED: "a preflight check failed",
    Reason.PLAN_FAILED: "the plan Job failed",
    Reason.BACKUP_FAILED: "the backup Job failed",
    Reason.BACKUP_NOT_VERIFIED: "the backup could not be read back by pg_restore --list",
    Reason.STEP_NOT_REPORTED: "a step Job succeeded without writing its status report",
    Reason.APPLY_FAILED: "the apply step failed",
    Reason.VERIFICATION_FAILED: "the verify step failed",
    Reason.STEP_FAILED: "a step failed and its condition does not say why",
    Reason.ROLLBACK_IMPOSSIBLE: "the spec changed under the rollback so that none can run",
    Reason.ROLLBACK_FAILED: "the rollback did not restore a verified state",
    Reason.BACKUP_VERIFIED: "the backup was taken and read back",
    Reason.BACKUP_DISABLED: "spec.backup.enabled is false: no backup was taken",
    Reason.APPLIED: "the pending versions were applied",
    Reason.VERIFIED: "every index is valid and every probe uses its index",
    Reason.DROPPED_CREATED_OBJECTS: "rolled back by dropping what the run created",
    Reason.RESTORED_BACKUP: "rolled back by restoring the backup",
    Reason.ROLLBACK_REQUESTED: "the migration was rolled back because a MigrationRollback asked",
    Reason.ROLLBACK_PLANNING: "the request is being planned (the rollback check Job runs)",
    Reason.ROLLBACK_PLANNED: "a dry run: the plan and the data-loss check are in the status",
    Reason.CONFIRMATION_REQUIRED: "data would be lost: spec.confirm must name the migration",
    Reason.ROLLBACK_REFUSED: "the rollback cannot run; the message names why",
    Reason.ROLLBACK_RUNNING: "the migration's emergency rollback runs for this request",
    Reason.ROLLBACK_SUCCEEDED: "the rollback ran, was verified and the workloads are back",
    Reason.PAUSE_ANNOTATION: "the dbmigrate.io/pause annotation pauses this resource",
    Reason.OPERATOR_PAUSED: "the operator runs paused (operator.paused): no new step anywhere",
    Reason.RESUMED: "the pause was lifted; the operator goes on",
    EventReason.WORKLOAD_NOT_FOUND: "a workload of spec.rollback.scaleDown does not exist",
    EventReason.NOTIFICATION_FAILED: "a notification webhook could not be reached",
}


def known_reason(value: str) -> Reason | None:
    """The Reason spelt ``value`` (as read back from a condition), or None if there is none."""
    try:
        return Reason(value)
    except ValueError:
        return None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the resource's state, as in metav1.Condition."""

    type: str = Field(max_length=316, description="Type of condition in CamelCase.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
        description="Machine-readable CamelCase reason of the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this condition was set for."
    )


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: ConditionReason,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; keeps lastTransitionTime if status is unchanged."""
    previous = next((c for c in conditions if c.type == type_), None)
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=(
            previous.last_transition_time
            if previous is not None and previous.status == status
            else now
        ),
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: c.type)


def find_condition(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == type_), None)
