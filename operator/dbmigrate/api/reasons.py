"""The reasons the operator writes into conditions and Events: spelled here once, with meanings.

Users, scripts, Argo CD health checks and notification receivers match on these strings, so they
are part of the API like the CRD (docs/conditions.md documents each for users; a unit test keeps
the two in step). ``Reason`` names why a condition has its status; the kstatus conditions (Ready,
Reconciling, Stalled) also carry the phase as their reason while a run works or has ended, hence
``ConditionReason``. ``EventReason`` names the Events posted outside the state machine.

Being a ``StrEnum``, a reason is its wire spelling (``Reason.PLAN_FAILED == "PlanFailed"``) but
mypy refuses a bare string where a ``Reason`` is expected, so a misspelt reason cannot slip in.
"""

from __future__ import annotations

from enum import StrEnum, unique

from dbmigrate.api.status import Phase


@unique
class Reason(StrEnum):
    """Why a condition has its status (see ``MEANINGS``)."""

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


@unique
class EventReason(StrEnum):
    """Reasons of the Events posted outside ``decide`` (its Events carry a phase or a Reason)."""

    WORKLOAD_NOT_FOUND = "WorkloadNotFound"
    NOTIFICATION_FAILED = "NotificationFailed"


# What a kstatus condition may carry as its reason: a Reason, or the phase of a run that works
# (Ready=False/Reconciling=True: Planning, BackingUp, ...) or has ended (Succeeded, Failed, ...).
ConditionReason = Reason | Phase

MEANINGS: dict[Reason | EventReason, str] = {
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
    EventReason.WORKLOAD_NOT_FOUND: "a workload of spec.rollback.scaleDown does not exist",
    EventReason.NOTIFICATION_FAILED: "a notification webhook could not be reached",
}


def known_reason(value: str) -> Reason | None:
    """The Reason spelt ``value`` (as read back from a condition), or None if there is none."""
    try:
        return Reason(value)
    except ValueError:
        return None
