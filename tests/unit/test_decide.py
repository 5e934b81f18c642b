"""The pure state machine, transition by transition, and the rules every decision keeps."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbmigrate.api.conditions import ConditionType, find_condition
from dbmigrate.api.evidence import Check, RollbackRecord, VerificationResult
from dbmigrate.api.spec import WorkloadRef
from dbmigrate.api.status import (
    TERMINAL_PHASES,
    DatabaseMigrationStatus,
    JobRecord,
    Phase,
    ScaledWorkload,
    Step,
)
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import (
    Decision,
    JobObservation,
    JobState,
    Observed,
    SecretObservation,
    index_jobs,
    status_patch,
)
from dbmigrate.decision.recovery import needs_workload_pods
from tests.unit.controller_samples import (
    NOW,
    PLAN_HASH,
    make_apply,
    make_backup,
    make_identity,
    make_lint,
    make_plan,
    make_preflight,
    make_spec,
)

UID = "3f2c1a9e-0000-4000-8000-000000000000"
SECRET_OK = SecretObservation(exists=True)
FINISHED = NOW - timedelta(minutes=1)
PLANNED = {"plan", "lint", "preflight", "database"}
REPORTS_BY_PHASE: dict[str, set[str]] = {
    "WaitingForApproval": PLANNED,
    "WaitingForWindow": PLANNED,
    "WaitingForLock": PLANNED,
    "BackingUp": PLANNED,
    "Migrating": PLANNED | {"backup"},
    "Verifying": PLANNED | {"backup", "apply"},
    "RollingBack": PLANNED | {"backup", "apply"},
}
WINDOW_CLOSED = {"maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "1h"}}  # NOW: Sat 12:00
WINDOW_OPEN = {"maintenanceWindow": {"schedule": "0 12 * * 6", "duration": "1h"}}
SCALE = {"rollback": {"scaleDown": [{"kind": "Deployment", "name": "web"}]}}
MANUAL = {"approval": {"mode": "Manual"}}


def report(key: str, **variant: Any) -> Any:
    makers = {
        "plan": lambda: make_plan(
            pending=variant.get("pending", 2), drift=variant.get("drift", False)
        ),
        "lint": lambda: make_lint(passed=variant.get("lint_passed", True)),
        "preflight": lambda: make_preflight(
            large=variant.get("large", False), passed=variant.get("preflight_passed", True)
        ),
        "database": make_identity,
        "backup": lambda: make_backup(verified=variant.get("verified", True)),
        "apply": lambda: make_apply(variant.get("apply_status", "succeeded")),
        "verification": lambda: VerificationResult(
            passed=variant.get("verify_passed", True), message="1 index valid"
        ),
        "rollback": lambda: RollbackRecord(
            strategy="dropCreatedObjects",
            target_database="analytics",
            duration_seconds=1.0,
            verified=variant.get("rollback_verified", True),
            message="dropped 1 index",
        ),
    }
    return makers[key]()


def obs(
    phase: str = "Pending",
    *,
    jobs: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    reports: set[str] | None = None,
    variant: dict[str, Any] | None = None,
    generation: int = 1,
    run_gen: int | None = 1,
    annotations: dict[str, str] | None = None,
    secret: SecretObservation = SECRET_OK,
    config_map_ok: bool | None = None,
    backup_volume_ok: bool | None = None,
    lock_holder: str | None = None,
    now_offset: timedelta = timedelta(0),
    jobs_records: list[JobRecord] | None = None,
    **status_fields: Any,
) -> Observed:
    """An observation of the resource ``orders`` in ``phase`` of run ``run_gen``."""
    keys = REPORTS_BY_PHASE.get(phase, set()) if reports is None else reports
    fields = {key: report(key, **(variant or {})) for key in keys}
    failure = "BackoffLimitExceeded: Job has reached the specified backoff limit"
    observations: dict[Step, JobObservation] = {
        cast(Step, step): JobObservation(
            step=cast(Step, step),
            name=f"orders-{step}-g{run_gen}",
            generation=run_gen or generation,
            state=cast(JobState, state),
            finished_at=None if state == "Running" else FINISHED,
            message=failure if state == "Failed" else "",
        )
        for step, state in (jobs or {}).items()
    }
    status = DatabaseMigrationStatus(
        phase=cast(Phase, phase),
        observed_generation=run_gen,
        run_id=None if run_gen is None else f"orders-g{run_gen}-3f2c1a9e",
        jobs=jobs_records or [],
        **fields,
        **status_fields,
    )
    return Observed(
        name="orders",
        namespace="apps",
        uid=UID,
        generation=generation,
        spec=make_spec(**(spec or {})),
        status=status,
        now=NOW + now_offset,
        annotations=annotations or {},
        jobs=observations,
        secret=secret,
        config_map_ok=config_map_ok,
        backup_volume_ok=backup_volume_ok,
        lock_holder=lock_holder,
    )


@dataclass
class Case:
    """One row of the transition table."""

    id: str
    observed: Observed
    phase: str
    job: str | None = None
    conditions: dict[ConditionType, tuple[str, str]] = field(default_factory=dict)
    message: str = ""


S = {"Stalled": ("True", "")}

CASES = [
    # --- starting a run and its prerequisites ----------------------------------------------------
    Case(
        "new resource plans",
        obs(run_gen=None),
        "Planning",
        "plan",
        {
            "Ready": ("False", "Planning"),
            "Reconciling": ("True", "Planning"),
            "Stalled": ("False", "Planning"),
        },
    ),
    Case(
        "secret missing stalls",
        obs(secret=SecretObservation(False), run_gen=None),
        "Pending",
        None,
        {
            "Stalled": ("True", "SecretNotFound"),
            "Reconciling": ("False", "Pending"),
            "Ready": ("False", "SecretNotFound"),
        },
        "Secret analytics-db",
    ),
    Case(
        "secret key missing stalls",
        obs(secret=SecretObservation(True, ("password",)), run_gen=None),
        "Pending",
        None,
        {"Stalled": ("True", "SecretKeyMissing")},
        "lacks the key(s) password",
    ),
    Case(
        "config map missing stalls",
        obs(config_map_ok=False, run_gen=None),
        "Pending",
        None,
        {"Stalled": ("True", "ConfigMapNotFound")},
        "kubectl create configmap analytics-migrations",
    ),
    Case(
        "backup volume missing stalls before any Job",
        obs(backup_volume_ok=False, run_gen=None),
        "Pending",
        None,
        {"Stalled": ("True", "BackupVolumeNotFound")},
        "PersistentVolumeClaim backups (spec.backup.pvcName) was not found in namespace apps",
    ),
    Case(
        "backup volume missing stalls before the backup Job",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, backup_volume_ok=False),
        "BackingUp",
        None,
        {"Stalled": ("True", "BackupVolumeNotFound")},
        "create it",
    ),
    Case(
        "a backup volume gone does not hold up the apply",
        obs("Migrating", backup_volume_ok=False),
        "Migrating",
        "apply",
    ),
    Case(
        "a backup volume gone does not hold up a rollback that does not restore",
        obs("RollingBack", backup_volume_ok=False, failed_step="apply"),
        "RollingBack",
        "rollback",
    ),
    Case(
        "backup volume there goes on",
        obs("BackingUp", backup_volume_ok=True),
        "BackingUp",
        "backup",
    ),
    Case(
        "invalid time zone stalls",
        obs(
            spec={
                "maintenanceWindow": {
                    "schedule": "0 2 * * 6",
                    "duration": "1h",
                    "timeZone": "Nowhere/City",
                }
            },
            run_gen=None,
        ),
        "Pending",
        None,
        {"Stalled": ("True", "InvalidMaintenanceWindow")},
        "Nowhere/City",
    ),
    Case(
        "a probe that deletes stalls before any Job",
        obs(
            spec={
                "verification": {
                    "probes": [
                        {"name": "ok", "sql": "SELECT 1", "expectIndex": "i"},
                        {
                            "name": "purge",
                            "sql": "WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d",
                            "expectIndex": "i",
                        },
                    ]
                }
            },
            run_gen=None,
        ),
        "Pending",
        None,
        {"Stalled": ("True", "InvalidSpec")},
        "spec.verification.probes[1].sql (probe purge)",
    ),
    Case(
        "a probe that does not parse stalls before any Job",
        obs(
            spec={
                "verification": {
                    "probes": [{"name": "p", "sql": "SELECT FROM WHERE", "expectIndex": "i"}]
                }
            },
            run_gen=None,
        ),
        "Pending",
        None,
        {"Stalled": ("True", "InvalidSpec")},
        "does not parse",
    ),
    Case(
        "a bad probe is reported before a missing Secret",
        obs(
            spec={
                "verification": {
                    "probes": [{"name": "p", "sql": "SELECT 1 FOR UPDATE", "expectIndex": "i"}]
                }
            },
            run_gen=None,
            secret=SecretObservation(exists=False),
        ),
        "Pending",
        None,
        {"Stalled": ("True", "InvalidSpec")},
        "FOR UPDATE",
    ),
    Case(
        "stalled pending heals when the secret appears",
        obs("Pending"),
        "Planning",
        "plan",
        {"Stalled": ("False", "Planning")},
    ),
    # --- planning --------------------------------------------------------------------------------
    Case(
        "plan running",
        obs("Planning", jobs={"plan": "Running"}),
        "Planning",
        None,
        {"Reconciling": ("True", "Planning")},
    ),
    Case("plan job missing is created again", obs("Planning"), "Planning", "plan"),
    Case(
        "sound plan backs up",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED),
        "BackingUp",
        "backup",
        {"Ready": ("False", "BackingUp")},
    ),
    Case(
        "lint errors under strict fail before the backup",
        obs(
            "Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, variant={"lint_passed": False}
        ),
        "Failed",
        None,
        {
            "Stalled": ("True", "LintFailed"),
            "Ready": ("False", "Failed"),
            "Reconciling": ("False", "Failed"),
        },
        "Nothing was changed",
    ),
    Case(
        "lint errors reported by a failed plan Job are still LintFailed",
        obs("Planning", jobs={"plan": "Failed"}, reports=PLANNED, variant={"lint_passed": False}),
        "Failed",
        None,
        {"Stalled": ("True", "LintFailed")},
    ),
    Case(
        "lint policy warn goes on",
        obs(
            "Planning",
            jobs={"plan": "Succeeded"},
            reports=PLANNED,
            spec={"safety": {"lintPolicy": "warn"}},
        ),
        "BackingUp",
        "backup",
    ),
    Case(
        "lint policy off needs no lint report",
        obs(
            "Planning",
            jobs={"plan": "Succeeded"},
            reports=PLANNED - {"lint"},
            spec={"safety": {"lintPolicy": "off"}},
        ),
        "BackingUp",
        "backup",
    ),
    Case(
        "failed plan Job",
        obs("Planning", jobs={"plan": "Failed"}),
        "Failed",
        None,
        {"Stalled": ("True", "PlanFailed")},
        "BackoffLimitExceeded",
    ),
    Case(
        "drift stops",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, variant={"drift": True}),
        "Failed",
        None,
        {"Stalled": ("True", "DriftDetected")},
        "checksum of 001 changed",
    ),
    Case(
        "failed preflight stops",
        obs(
            "Planning",
            jobs={"plan": "Succeeded"},
            reports=PLANNED,
            variant={"preflight_passed": False},
        ),
        "Failed",
        None,
        {"Stalled": ("True", "PreflightFailed")},
    ),
    Case(
        "nothing pending succeeds at once",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, variant={"pending": 0}),
        "Succeeded",
        None,
        {
            "Ready": ("True", "Succeeded"),
            "Reconciling": ("False", "Succeeded"),
            "Stalled": ("False", "Succeeded"),
        },
        "nothing to apply",
    ),
    Case(
        "report not yet visible: wait",
        obs(
            "Planning", jobs={"plan": "Succeeded"}, reports=set(), now_offset=-timedelta(seconds=50)
        ),
        "Planning",
        None,
        {"Reconciling": ("True", "Planning")},
        "waiting for its report",
    ),
    Case(
        "report never came: fail closed",
        obs("Planning", jobs={"plan": "Succeeded"}, reports={"plan"}),
        "Failed",
        None,
        {"Stalled": ("True", "StepNotReported")},
        "status.preflight, status.database, status.lint",
    ),
    # --- gates -----------------------------------------------------------------------------------
    Case(
        "manual approval waits",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, spec=MANUAL),
        "WaitingForApproval",
        None,
        {
            "Ready": ("False", "WaitingForApproval"),
            "Reconciling": ("True", "WaitingForApproval"),
            "Stalled": ("False", "WaitingForApproval"),
        },
        f"dbmigrate.io/approve={PLAN_HASH}",
    ),
    Case(
        "stale approval is refused",
        obs("WaitingForApproval", spec=MANUAL, annotations={"dbmigrate.io/approve": "c" * 64}),
        "WaitingForApproval",
        None,
        {"Reconciling": ("True", "ApprovalRefused")},
        "approval refused",
    ),
    Case(
        "an approval of the shown plan reads the files again before the backup",
        obs("WaitingForApproval", spec=MANUAL, annotations={"dbmigrate.io/approve": PLAN_HASH}),
        "Planning",
        "plan",
        {},
        "reading the migration files again",
    ),
    Case(
        "a plan approved as it is reported goes on",
        obs(
            "Planning",
            jobs={"plan": "Succeeded"},
            reports=PLANNED,
            spec=MANUAL,
            annotations={"dbmigrate.io/approve": PLAN_HASH},
        ),
        "BackingUp",
        "backup",
    ),
    Case(
        "closed window waits for large tables",
        obs(
            "Planning",
            jobs={"plan": "Succeeded"},
            reports=PLANNED,
            spec=WINDOW_CLOSED,
            variant={"large": True},
        ),
        "WaitingForWindow",
        None,
        {"Reconciling": ("True", "WaitingForWindow")},
        "2024-06-08T02:00:00+00:00",
    ),
    Case(
        "closed window does not matter for small tables",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, spec=WINDOW_CLOSED),
        "BackingUp",
        "backup",
    ),
    Case(
        "window opens",
        obs("WaitingForWindow", spec=WINDOW_OPEN, variant={"large": True}),
        "BackingUp",
        "backup",
    ),
    Case(
        "another migration holds the database",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, lock_holder="shop/other"),
        "WaitingForLock",
        None,
        {"Reconciling": ("True", "WaitingForLock")},
        "waiting for shop/other",
    ),
    Case(
        "lock released: plan again before any change",
        obs("WaitingForLock"),
        "Planning",
        "plan",
        {"Reconciling": ("True", "Planning"), "Stalled": ("False", "Planning")},
        "planning again",
    ),
    Case(
        "lock still held: keep waiting, no new plan",
        obs("WaitingForLock", lock_holder="shop/other"),
        "WaitingForLock",
        None,
        {"Reconciling": ("True", "WaitingForLock")},
        "waiting for shop/other",
    ),
    Case(
        "lock released but the secret is gone: stalled, still waiting",
        obs("WaitingForLock", secret=SecretObservation(False)),
        "WaitingForLock",
        None,
        {"Stalled": ("True", "SecretNotFound")},
    ),
    Case(
        "backup disabled goes straight to apply",
        obs(
            "Planning",
            jobs={"plan": "Succeeded"},
            reports=PLANNED,
            spec={"backup": {"enabled": False}},
        ),
        "Migrating",
        "apply",
        {"BackedUp": ("False", "BackupDisabled")},
    ),
    # --- backup ----------------------------------------------------------------------------------
    Case("backup running", obs("BackingUp", jobs={"backup": "Running"}), "BackingUp"),
    Case(
        "backup done applies",
        obs("BackingUp", jobs={"backup": "Succeeded"}, reports=PLANNED | {"backup"}),
        "Migrating",
        "apply",
        {"BackedUp": ("True", "BackupVerified"), "Ready": ("False", "Migrating")},
    ),
    Case(
        "unverified backup fails closed",
        obs(
            "BackingUp",
            jobs={"backup": "Succeeded"},
            reports=PLANNED | {"backup"},
            variant={"verified": False},
        ),
        "Failed",
        None,
        {"BackedUp": ("False", "BackupNotVerified"), "Stalled": ("True", "BackupNotVerified")},
    ),
    Case(
        "failed backup changes nothing",
        obs("BackingUp", jobs={"backup": "Failed"}),
        "Failed",
        None,
        {"BackedUp": ("False", "BackupFailed"), "Stalled": ("True", "BackupFailed")},
        "Nothing was changed",
    ),
    Case(
        "window closed while backing up: wait before apply",
        obs(
            "BackingUp",
            jobs={"backup": "Succeeded"},
            reports=PLANNED | {"backup"},
            spec=WINDOW_CLOSED,
            variant={"large": True},
        ),
        "WaitingForWindow",
        None,
        {"BackedUp": ("True", "BackupVerified")},
    ),
    Case(
        "window reopens after the backup: apply, no second backup",
        obs(
            "WaitingForWindow",
            jobs={"backup": "Succeeded"},
            reports=PLANNED | {"backup"},
            spec=WINDOW_OPEN,
            variant={"large": True},
            lock_holder=None,
        ),
        "Migrating",
        "apply",
    ),
    Case(
        "secret gone when the backup should start: stalled in BackingUp",
        obs("WaitingForWindow", spec=WINDOW_OPEN, secret=SecretObservation(False)),
        "BackingUp",
        None,
        {"Stalled": ("True", "SecretNotFound")},
    ),
    Case(
        "secret back: the backup Job is created",
        obs("BackingUp"),
        "BackingUp",
        "backup",
        {"Stalled": ("False", "BackingUp")},
    ),
    # --- apply and verify ------------------------------------------------------------------------
    Case("apply running", obs("Migrating", jobs={"apply": "Running"}), "Migrating"),
    Case(
        "apply done verifies",
        obs("Migrating", jobs={"apply": "Succeeded"}, reports=PLANNED | {"backup", "apply"}),
        "Verifying",
        "verify",
        {"Migrated": ("True", "Applied")},
    ),
    Case(
        "failed apply rolls back",
        obs("Migrating", jobs={"apply": "Failed"}),
        "RollingBack",
        "rollback",
        {"Migrated": ("False", "ApplyFailed"), "Reconciling": ("True", "RollingBack")},
    ),
    Case(
        "apply reporting failure rolls back",
        obs(
            "Migrating",
            jobs={"apply": "Succeeded"},
            reports=PLANNED | {"backup", "apply"},
            variant={"apply_status": "failed"},
        ),
        "RollingBack",
        "rollback",
        {"Migrated": ("False", "ApplyFailed")},
        "duplicate key value",
    ),
    Case(
        "failed apply without rollback strategy fails, saying so",
        obs("Migrating", jobs={"apply": "Failed"}, spec={"rollback": {"strategy": "None"}}),
        "Failed",
        None,
        {"Stalled": ("True", "ApplyFailed"), "Migrated": ("False", "ApplyFailed")},
        "nothing was rolled back",
    ),
    Case(
        "verified: succeeded",
        obs(
            "Verifying",
            jobs={"verify": "Succeeded"},
            reports=PLANNED | {"backup", "apply", "verification"},
        ),
        "Succeeded",
        None,
        {
            "Ready": ("True", "Succeeded"),
            "Verified": ("True", "Verified"),
            "Stalled": ("False", "Succeeded"),
        },
    ),
    Case(
        "verification failed rolls back",
        obs(
            "Verifying",
            jobs={"verify": "Succeeded"},
            reports=PLANNED | {"backup", "apply", "verification"},
            variant={"verify_passed": False},
        ),
        "RollingBack",
        "rollback",
        {"Verified": ("False", "VerificationFailed")},
    ),
    Case(
        "verify Job failed rolls back",
        obs("Verifying", jobs={"verify": "Failed"}),
        "RollingBack",
        "rollback",
        {"Verified": ("False", "VerificationFailed")},
    ),
    # --- emergency rollback ----------------------------------------------------------------------
    Case(
        "rollback scales down first",
        obs("Migrating", jobs={"apply": "Failed"}, spec=SCALE),
        "RollingBack",
        None,
        {"Migrated": ("False", "ApplyFailed")},
        "scaling down Deployment/web",
    ),
    Case(
        "replicas recorded: rollback Job",
        obs(
            "RollingBack",
            spec=SCALE,
            failed_step="apply",
            scaled_workloads=[ScaledWorkload(kind="Deployment", name="web", replicas=3)],
        ),
        "RollingBack",
        "rollback",
    ),
    Case(
        "rollback running",
        obs("RollingBack", jobs={"rollback": "Running"}, failed_step="apply"),
        "RollingBack",
    ),
    Case(
        "rolled back: scale back up",
        obs(
            "RollingBack",
            jobs={"rollback": "Succeeded"},
            reports=PLANNED | {"backup", "apply", "rollback"},
            spec=SCALE,
            failed_step="apply",
            scaled_workloads=[ScaledWorkload(kind="Deployment", name="web", replicas=3)],
        ),
        "RollingBack",
        None,
        {"RolledBack": ("True", "DropCreatedObjects")},
        "scaling back Deployment/web to 3",
    ),
    Case(
        "rolled back and restored",
        obs(
            "RollingBack",
            jobs={"rollback": "Succeeded"},
            reports=PLANNED | {"backup", "apply", "rollback"},
            spec=SCALE,
            failed_step="apply",
            scaled_workloads=[
                ScaledWorkload(kind="Deployment", name="web", replicas=3, restored=True)
            ],
        ),
        "RolledBack",
        None,
        {
            "Ready": ("False", "RolledBack"),
            "Reconciling": ("False", "RolledBack"),
            "RolledBack": ("True", "DropCreatedObjects"),
        },
    ),
    Case(
        "failed rollback keeps workloads down",
        obs(
            "RollingBack",
            jobs={"rollback": "Failed"},
            spec=SCALE,
            failed_step="apply",
            scaled_workloads=[ScaledWorkload(kind="Deployment", name="web", replicas=3)],
        ),
        "Failed",
        None,
        {"Stalled": ("True", "RollbackFailed"), "RolledBack": ("False", "RollbackFailed")},
        "stay scaled down",
    ),
    Case(
        "failed rollback gives the command that scales each workload back",
        obs(
            "RollingBack",
            jobs={"rollback": "Failed"},
            spec=SCALE,
            failed_step="apply",
            scaled_workloads=[ScaledWorkload(kind="Deployment", name="web", replicas=3)],
        ),
        "Failed",
        None,
        {"Stalled": ("True", "RollbackFailed")},
        "deployment/web --replicas=3",
    ),
    Case(
        "unverified rollback is a failed rollback",
        obs(
            "RollingBack",
            jobs={"rollback": "Succeeded"},
            reports=PLANNED | {"backup", "apply", "rollback"},
            variant={"rollback_verified": False},
            failed_step="apply",
        ),
        "Failed",
        None,
        {"Stalled": ("True", "RollbackFailed")},
    ),
    # --- generations -----------------------------------------------------------------------------
    Case(
        "new generation after success starts a new run",
        obs("Succeeded", generation=2),
        "Planning",
        "plan",
    ),
    Case(
        "new generation after failure starts a new run",
        obs("Failed", generation=2),
        "Planning",
        "plan",
    ),
    Case(
        "new generation while migrating is queued",
        obs("Migrating", jobs={"apply": "Running"}, generation=2),
        "Migrating",
        None,
        {"Reconciling": ("True", "Migrating")},
        "generation 2 is queued",
    ),
    Case(
        "new generation while rolling back is queued",
        obs("RollingBack", jobs={"rollback": "Running"}, generation=2, failed_step="apply"),
        "RollingBack",
        None,
        {},
        "generation 2 is queued",
    ),
    Case(
        "new generation supersedes a wait for approval",
        obs("WaitingForApproval", spec=MANUAL, generation=3),
        "Planning",
        "plan",
    ),
    Case(
        "new generation waits for a running plan",
        obs("Planning", jobs={"plan": "Running"}, generation=2),
        "Planning",
        None,
        {},
        "generation 2 is queued",
    ),
    Case(
        "new generation supersedes a finished plan",
        obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, generation=2),
        "Planning",
        "plan",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_transition(case: Case) -> None:
    decision = decide(case.observed)
    status = decision.status
    assert status.phase == case.phase
    assert decision.create_job == case.job
    for type_, (value, reason) in case.conditions.items():
        condition = find_condition(status.conditions, type_)
        assert condition is not None, f"no {type_} condition"
        assert condition.status == value, (type_, condition)
        if reason:
            assert condition.reason == reason, (type_, condition)
    assert case.message in (status.message or "")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_input_twice_gives_the_same_output(case: Case) -> None:
    assert decide(case.observed) == decide(case.observed)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kstatus_rules_hold_in_every_decision(case: Case) -> None:
    decision = decide(case.observed)
    status = decision.status
    ready, reconciling, stalled = (
        find_condition(status.conditions, t) for t in ("Ready", "Reconciling", "Stalled")
    )
    assert ready and reconciling and stalled
    assert (ready.status == "True") == (status.phase == "Succeeded")
    if status.phase in ("Failed", "RolledBack"):
        assert (stalled.status, reconciling.status, ready.status) == ("True", "False", "False")
    if stalled.status == "True":
        assert reconciling.status == "False"
    elif status.phase not in TERMINAL_PHASES:
        assert reconciling.status == "True"
    assert ready.message == status.message
    expected_gen = case.observed.status.observed_generation or case.observed.generation
    if status.phase == "Planning" and decision.create_job == "plan":
        expected_gen = case.observed.generation
    assert status.observed_generation == expected_gen
    assert all(c.observed_generation == expected_gen for c in status.conditions)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_an_event_on_every_phase_transition(case: Case) -> None:
    decision = decide(case.observed)
    if decision.status.phase != case.observed.status.phase:
        ready = find_condition(decision.status.conditions, "Ready")
        assert ready is not None
        assert [e.reason for e in decision.events] == [ready.reason]
        stalled = find_condition(decision.status.conditions, "Stalled")
        if stalled is not None and stalled.status == "True":
            terminal = decision.status.phase in TERMINAL_PHASES
            assert ready.reason == (decision.status.phase if terminal else stalled.reason)
        warning = decision.status.phase in ("Failed", "RolledBack", "RollingBack") or (
            stalled is not None and stalled.status == "True"
        )
        assert decision.events[0].type == ("Warning" if warning else "Normal")


def settle(observed: Observed, decision: Decision) -> Observed:
    """The observation after the runtime patched ``decision.status`` (nothing else changed)."""
    status = decision.status
    if decision.clear_step_keys:
        status = status.model_copy(update=dict.fromkeys(decision.clear_step_keys))
    return replace(observed, status=status)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_deciding_again_on_the_result_is_quiet(case: Case) -> None:
    """Re-reconciling after the patch (the Job not yet seen) emits no new Event."""
    first = decide(case.observed)
    again = decide(settle(case.observed, first))
    if first.status.phase == again.status.phase and again.create_job is None:
        assert again.events == ()


@pytest.mark.parametrize("phase", TERMINAL_PHASES)
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"jobs": {"plan": "Succeeded", "apply": "Failed"}},
        {"secret": SecretObservation(False)},
        {"annotations": {"dbmigrate.io/approve": PLAN_HASH}},
        {"lock_holder": "x/y", "now_offset": timedelta(days=30)},
    ],
)
def test_no_transition_from_a_terminal_phase_without_a_new_generation(
    phase: str, extra: dict[str, Any]
) -> None:
    observed = obs(phase, **extra)
    decision = decide(observed)
    assert decision == Decision(status=observed.status)


def test_a_new_run_clears_the_previous_runs_reports_and_records_its_start() -> None:
    observed = obs(
        "Succeeded",
        generation=2,
        reports=PLANNED | {"backup", "apply", "verification"},
        failed_step="verify",
        finished_at=NOW - timedelta(days=1),
    )
    decision = decide(observed)
    status = decision.status
    assert status.observed_generation == 2
    assert status.run_id == "orders-g2-3f2c1a9e"
    assert status.started_at == NOW and status.finished_at is None and status.failed_step is None
    assert status.plan is None and status.backup is None
    assert set(decision.clear_step_keys) >= {
        "plan",
        "lint",
        "preflight",
        "backup",
        "apply",
        "progress",
        "verification",
        "rollback",
        "database",
    }
    patch = status_patch(decision)["status"]
    assert patch["plan"] is None and patch["database"] is None and patch["finishedAt"] is None
    assert patch["observedGeneration"] == 2 and patch["phase"] == "Planning"
    assert patch["jobs"][-1]["name"] == "orders-plan-g2"


def test_a_new_run_expires_the_jobs_of_old_runs() -> None:
    records = [
        JobRecord(step=step, name=f"orders-{step}-g{gen}", generation=gen, created_at=NOW)
        for gen in (1, 2, 3)
        for step in ("plan", "apply")
    ]
    decision = decide(obs("Succeeded", generation=4, run_gen=3, jobs_records=records))
    assert decision.delete_jobs == ("orders-plan-g1", "orders-apply-g1")
    assert [r.name for r in decision.status.jobs] == [
        "orders-plan-g2",
        "orders-apply-g2",
        "orders-plan-g3",
        "orders-apply-g3",
        "orders-plan-g4",
    ]
    assert (
        decide(obs("Migrating", jobs={"apply": "Running"}, jobs_records=records)).delete_jobs == ()
    )


def test_status_patch_never_writes_step_keys_except_to_clear_them() -> None:
    decision = decide(obs("Migrating", jobs={"apply": "Running"}))
    patch = status_patch(decision)["status"]
    for key in (
        "plan",
        "lint",
        "preflight",
        "backup",
        "apply",
        "verification",
        "rollback",
        "database",
    ):
        assert key not in patch
    assert patch["waitingFor"] is None  # unset operator fields are sent as null: stale values go
    assert "lastTransitionTime" in patch["conditions"][0]


def test_job_records_follow_the_jobs() -> None:
    record = JobRecord(step="backup", name="orders-backup-g1", generation=1, created_at=NOW)
    observed = obs("BackingUp", jobs={"backup": "Failed"}, jobs_records=[record])
    status = decide(observed).status
    assert status.jobs[0].outcome == "Failed" and status.jobs[0].finished_at == FINISHED
    assert "BackoffLimitExceeded" in (status.jobs[0].message or "")


def test_rollback_scale_handshake() -> None:
    start = decide(obs("Migrating", jobs={"apply": "Failed"}, spec=SCALE))
    assert start.scale_down == (WorkloadRef(kind="Deployment", name="web"),)
    assert start.create_job is None and start.requeue_after
    recorded = [ScaledWorkload(kind="Deployment", name="web", replicas=3)]
    create = decide(obs("RollingBack", spec=SCALE, failed_step="apply", scaled_workloads=recorded))
    assert create.create_job == "rollback" and create.scale_down == start.scale_down
    back = decide(
        obs(
            "RollingBack",
            jobs={"rollback": "Succeeded"},
            reports=PLANNED | {"backup", "apply", "rollback"},
            spec=SCALE,
            failed_step="apply",
            scaled_workloads=recorded,
        )
    )
    assert back.scale_up == tuple(recorded) and back.create_job is None


def test_rollback_waits_until_the_scaled_down_pods_are_gone() -> None:
    recorded = [ScaledWorkload(kind="Deployment", name="web", replicas=3)]
    base = obs("RollingBack", spec=SCALE, failed_step="apply", scaled_workloads=recorded)
    terminating = replace(base, workload_pods={"Deployment/web": ("web-1", "web-2")})
    waiting = decide(terminating)
    assert waiting.create_job is None and waiting.requeue_after
    assert waiting.scale_down == (WorkloadRef(kind="Deployment", name="web"),)  # again, if undone
    assert waiting.status.phase == "RollingBack"
    assert "Deployment/web (2 pods: web-1, web-2)" in (waiting.status.message or "")
    gone = decide(replace(base, workload_pods={"Deployment/web": ()}))
    assert gone.create_job == "rollback"


def test_workload_pods_are_observed_only_while_a_rollback_scales_down() -> None:
    scaling = obs("RollingBack", spec=SCALE, failed_step="apply")
    assert needs_workload_pods(scaling.spec, scaling.status)
    plain = obs("RollingBack", failed_step="apply")
    assert not needs_workload_pods(plain.spec, plain.status)
    migrating = obs("Migrating", spec=SCALE)
    assert not needs_workload_pods(migrating.spec, migrating.status)
    record = JobRecord(step="rollback", name="orders-rollback-g1", generation=1, created_at=NOW)
    started = obs("RollingBack", spec=SCALE, failed_step="apply", jobs_records=[record])
    assert not needs_workload_pods(started.spec, started.status)  # the rollback Job exists


def test_rolled_back_keeps_the_cause() -> None:
    failed = decide(obs("Migrating", jobs={"apply": "Failed"}))
    base = obs(
        "RollingBack",
        jobs={"rollback": "Succeeded"},
        reports=PLANNED | {"backup", "apply", "rollback"},
    )
    status = base.status.model_copy(
        update={"conditions": failed.status.conditions, "failed_step": "apply"}
    )
    done = decide(replace(base, status=status)).status
    stalled = find_condition(done.conditions, "Stalled")
    assert done.phase == "RolledBack" and stalled is not None
    assert stalled.reason == "ApplyFailed" and "BackoffLimitExceeded" in stalled.message
    assert done.failed_step == "apply" and done.finished_at == NOW


@pytest.mark.parametrize(
    ("spec", "reports"),
    [
        ({"rollback": {"strategy": "RestoreBackup"}}, PLANNED | {"apply"}),
        ({"rollback": {"strategy": "None"}}, PLANNED | {"backup", "apply"}),
    ],
)
def test_a_rollback_that_cannot_be_built_fails_closed(
    spec: dict[str, Any], reports: set[str]
) -> None:
    observed = obs("RollingBack", spec=spec, reports=reports, failed_step="apply")
    decision = decide(observed)
    assert decision.create_job is None and decision.status.phase == "Failed"
    stalled = find_condition(decision.status.conditions, "Stalled")
    assert stalled is not None and stalled.reason == "RollbackImpossible"


def test_a_rollback_that_cannot_be_built_says_how_to_bring_the_workloads_back() -> None:
    observed = obs(
        "RollingBack",
        spec={**SCALE, "rollback": {**SCALE["rollback"], "strategy": "None"}},
        reports=PLANNED | {"apply"},
        failed_step="apply",
        scaled_workloads=[ScaledWorkload(kind="Deployment", name="web", replicas=3)],
    )
    decision = decide(observed)
    stalled = find_condition(decision.status.conditions, "Stalled")
    assert stalled is not None and stalled.reason == "RollbackImpossible"
    assert "dbmigrate history" in stalled.message
    assert "deployment/web --replicas=3" in stalled.message


def test_restore_backup_rollback_is_requested_for_a_failed_verify() -> None:
    decision = decide(
        obs(
            "Verifying", jobs={"verify": "Failed"}, spec={"rollback": {"strategy": "RestoreBackup"}}
        )
    )
    assert decision.create_job == "rollback" and decision.status.failed_step == "verify"


def test_waiting_events_are_announced_once() -> None:
    observed = obs(
        "WaitingForApproval", spec=MANUAL, annotations={"dbmigrate.io/approve": "c" * 64}
    )
    first = decide(observed)
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "ApprovalRefused")]
    assert decide(settle(observed, first)).events == ()


def test_preflight_failures_are_named() -> None:
    observed = obs(
        "Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, variant={"preflight_passed": False}
    )
    preflight = make_preflight(passed=False).model_copy(
        update={"checks": [Check(name="privileges", status="fail", message="role cannot CREATE")]}
    )
    observed = replace(observed, status=observed.status.model_copy(update={"preflight": preflight}))
    assert "privileges: role cannot CREATE" in (decide(observed).status.message or "")


def test_versions_for_the_printer_columns() -> None:
    status = decide(
        obs("Migrating", jobs={"apply": "Succeeded"}, reports=PLANNED | {"backup", "apply"})
    ).status
    assert (status.target_version, status.current_version) == ("3", "2")


def test_index_jobs_keeps_the_newest_generation_per_step() -> None:
    def job(step: str, gen: int) -> JobObservation:
        return JobObservation(step=step, name=f"o-{step}-g{gen}", generation=gen, state="Succeeded")  # type: ignore[arg-type]

    indexed = index_jobs([job("plan", 2), job("plan", 1), job("apply", 1), job("plan", 3)])
    assert indexed["plan"].generation == 3 and indexed["apply"].generation == 1


def test_a_job_of_another_generation_does_not_count() -> None:
    observed = obs("Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, run_gen=2, generation=2)
    old = JobObservation(step="plan", name="orders-plan-g1", generation=1, state="Succeeded")
    decision = decide(replace(observed, jobs={"plan": old}))
    assert decision.status.phase == "Planning" and decision.create_job == "plan"


STEP_REPORTS: dict[str, set[str]] = {
    "plan": PLANNED,
    "backup": {"backup"},
    "apply": {"apply"},
    "verify": {"verification"},
    "rollback": {"rollback"},
}


def run_flow(
    spec: dict[str, Any] | None = None,
    outcomes: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> tuple[list[str], DatabaseMigrationStatus]:
    """Drive decide() like the runtime would, with Jobs that finish at once as ``outcomes`` say.

    Every decision is taken twice (an operator restarted at that point) and must be the same.
    """
    observed = obs(spec=spec, run_gen=None)
    jobs: dict[Step, JobObservation] = {}
    phases: list[str] = []
    for minute in range(40):
        observed = replace(observed, jobs=dict(jobs), now=NOW + timedelta(minutes=minute))
        decision, before = decide(observed), observed.status
        assert decision == decide(observed)
        status = settle(observed, decision).status
        status = _apply_scaling(status, decision)
        if decision.create_job is not None:
            step = decision.create_job
            state, variant = (outcomes or {}).get(step, ("Succeeded", {}))
            name = f"orders-{step}-g1"
            jobs[step] = JobObservation(
                step=step,
                name=name,
                generation=1,
                state=state,  # type: ignore[arg-type]
                finished_at=observed.now,
                message="exit code 1",
            )
            written = {
                key: report(key, **variant)
                for key in STEP_REPORTS[step]
                if state == "Succeeded" or key == "apply"
            }
            status = status.model_copy(update=written)
        observed = replace(observed, status=status)
        phases.append(status.phase)
        if status.phase in TERMINAL_PHASES and decision.create_job is None:
            assert decide(replace(observed, now=observed.now + timedelta(days=1))).status == status
            return phases, status
        actions = decision.create_job or decision.scale_down or decision.scale_up
        if not actions and status == before:
            return phases, status  # waiting for something outside (an approval, a window)
    raise AssertionError(f"the flow did not end: {phases}")


def _apply_scaling(status: DatabaseMigrationStatus, decision: Decision) -> DatabaseMigrationStatus:
    scaled = list(status.scaled_workloads)
    for ref in decision.scale_down:
        if not any(w.kind == ref.kind and w.name == ref.name for w in scaled):
            scaled.append(ScaledWorkload(kind=ref.kind, name=ref.name, replicas=3))
    restored = {(w.kind, w.name) for w in decision.scale_up}
    scaled = [
        w.model_copy(update={"restored": True}) if (w.kind, w.name) in restored else w
        for w in scaled
    ]
    return status.model_copy(update={"scaled_workloads": scaled})


def test_flow_happy_path() -> None:
    phases, status = run_flow()
    assert phases == ["Planning", "BackingUp", "Migrating", "Verifying", "Succeeded"]
    conditions = {c.type: c.status for c in status.conditions}
    assert conditions == {
        "BackedUp": "True",
        "Migrated": "True",
        "Verified": "True",
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    assert [j.name for j in status.jobs] == [
        f"orders-{s}-g1" for s in ("plan", "backup", "apply", "verify")
    ]
    assert all(j.outcome == "Succeeded" for j in status.jobs[:-1])


def test_flow_failed_apply_scales_down_rolls_back_and_scales_back() -> None:
    phases, status = run_flow(SCALE, {"apply": ("Failed", {"apply_status": "failed"})})
    assert phases == [
        "Planning",
        "BackingUp",
        "Migrating",
        "RollingBack",
        "RollingBack",
        "RollingBack",
        "RolledBack",
    ]
    assert status.scaled_workloads == [
        ScaledWorkload(kind="Deployment", name="web", replicas=3, restored=True)
    ]
    assert status.failed_step == "apply"
    stalled = find_condition(status.conditions, "Stalled")
    assert stalled is not None and stalled.reason == "ApplyFailed"
    assert "duplicate key value" in stalled.message


def test_flow_lint_failure_stops_before_any_backup() -> None:
    phases, status = run_flow(None, {"plan": ("Succeeded", {"lint_passed": False})})
    assert phases == ["Planning", "Failed"]
    assert [j.step for j in status.jobs] == ["plan"]


def test_flow_without_backup_and_with_manual_approval_waits() -> None:
    phases, status = run_flow({"backup": {"enabled": False}, **MANUAL})
    assert phases[:2] == ["Planning", "WaitingForApproval"] and phases[-1] == "WaitingForApproval"
    assert status.approval is not None and status.approval.how_to_approve


PHASES = [
    "Pending", "Planning", "WaitingForApproval", "WaitingForWindow", "WaitingForLock",
    "BackingUp", "Migrating", "Verifying", "Succeeded", "Failed", "RollingBack", "RolledBack",
]  # fmt: skip
SPEC_VARIANTS = [{}, MANUAL, WINDOW_CLOSED, SCALE, {"backup": {"enabled": False}},
                 {"rollback": {"strategy": "None"}}, {"rollback": {"strategy": "RestoreBackup"}},
                 {"source": {"image": {"path": "/app/migrations"}}}]  # fmt: skip
ALL_REPORTS = sorted(PLANNED | {"backup", "apply", "verification", "rollback"})


@settings(max_examples=300, deadline=None)
@given(
    phase=st.sampled_from(PHASES),
    job_states=st.dictionaries(
        st.sampled_from(["plan", "backup", "apply", "verify", "rollback"]),
        st.sampled_from(["Running", "Succeeded", "Failed"]),
    ),
    reports=st.sets(st.sampled_from(ALL_REPORTS)),
    spec=st.sampled_from(SPEC_VARIANTS),
    variant=st.fixed_dictionaries(
        {},
        optional={
            "lint_passed": st.booleans(),
            "large": st.booleans(),
            "verified": st.booleans(),
            "apply_status": st.sampled_from(["succeeded", "failed"]),
            "verify_passed": st.booleans(),
            "rollback_verified": st.booleans(),
            "pending": st.integers(0, 2),
        },
    ),
    bump=st.integers(0, 1),
    secret=st.sampled_from([SECRET_OK, SecretObservation(False), SecretObservation(True, ("pw",))]),
    holder=st.sampled_from([None, "shop/other"]),
    failed_step=st.sampled_from([None, "apply", "verify"]),
)
def test_any_observation_gives_a_sound_decision(
    phase: str,
    job_states: dict[str, str],
    reports: set[str],
    spec: dict[str, Any],
    variant: dict[str, Any],
    bump: int,
    secret: SecretObservation,
    holder: str | None,
    failed_step: str | None,
) -> None:
    """Whatever is observed: deterministic, kstatus-consistent, and any Job asked for builds."""
    from dbmigrate.specs.jobs import build_step_job

    observed = obs(
        phase, jobs=job_states, spec=spec, reports=reports, variant=variant, generation=1 + bump,
        secret=secret, lock_holder=holder, failed_step=failed_step,
    )  # fmt: skip
    decision = decide(observed)
    assert decision == decide(observed)
    status = decision.status
    ready = find_condition(status.conditions, "Ready")
    if status.phase != phase or decision.create_job or status != observed.status:
        assert ready is not None and (ready.status == "True") == (status.phase == "Succeeded")
    if decision.create_job is not None:
        job = build_step_job(
            "orders", "apps", UID, status.observed_generation or 1, decision.create_job,
            observed.spec, status.run_id or "r", "img", status=status,
        )  # fmt: skip
        records = {(r.name, r.step, r.generation) for r in status.jobs}
        assert (job["metadata"]["name"], decision.create_job, status.observed_generation) in records
        assert job["metadata"]["name"].startswith(
            f"orders-{decision.create_job}-g{status.observed_generation}"
        )
    if phase in TERMINAL_PHASES and not bump:
        assert decision == Decision(status=observed.status)


# --- planning again after the database lock ---------------------------------------------------


def _plan_job(state: str, attempt: int = 1) -> JobObservation:
    name = "orders-plan-g1" + (f"-a{attempt}" if attempt > 1 else "")
    return JobObservation(
        step="plan",
        name=name,
        generation=1,
        state=cast(JobState, state),
        finished_at=None if state == "Running" else NOW,
        attempt=attempt,
    )


def _waiting_for_lock() -> Observed:
    record = JobRecord(
        step="plan", name="orders-plan-g1", generation=1, created_at=FINISHED,
        outcome="Succeeded", finished_at=FINISHED,
    )  # fmt: skip
    observed = obs("WaitingForLock", jobs={"plan": "Succeeded"}, jobs_records=[record])
    return replace(observed, status=observed.status.model_copy(update={"waiting_for": "x/y"}))


def test_leaving_the_lock_plans_again_under_a_new_job_name() -> None:
    from dbmigrate.api.labels import LABEL_ATTEMPT
    from dbmigrate.specs.jobs import build_step_job

    observed = _waiting_for_lock()
    decision = decide(observed)
    assert decision == decide(observed)
    status = decision.status
    assert (status.phase, decision.create_job) == ("Planning", "plan")
    # every key the plan step may write is cleared
    assert set(decision.clear_step_keys) == PLANNED | {"promotion"}
    assert status.plan is None and status.lint is None and status.preflight is None
    assert status.waiting_for is None
    assert [r.name for r in status.jobs] == ["orders-plan-g1", "orders-plan-g1-a2"]
    assert "orders-plan-g1-a2" in (status.message or "")
    job = build_step_job("orders", "apps", UID, 1, "plan", observed.spec, "r", "img", status=status)
    assert job["metadata"]["name"] == "orders-plan-g1-a2"
    assert job["metadata"]["labels"][LABEL_ATTEMPT] == "2"


def test_the_new_plan_attempt_survives_a_restart_and_its_reports_are_used() -> None:
    first = decide(_waiting_for_lock())
    settled = settle(_waiting_for_lock(), first)
    # restarted before the Job was created: the old attempt's Job does not count, same name again
    again = decide(settled)
    assert (again.status.phase, again.create_job) == ("Planning", "plan")
    assert again.status.jobs == first.status.jobs
    assert again.clear_step_keys == ()
    # the new attempt runs
    running = replace(settled, jobs={"plan": _plan_job("Running", attempt=2)})
    decision = decide(running)
    assert (decision.status.phase, decision.create_job) == ("Planning", None)
    assert "orders-plan-g1-a2 is running" in (decision.status.message or "")
    # it finished: without its reports the old (cleared) ones do not count
    done = replace(settled, jobs={"plan": _plan_job("Succeeded", attempt=2)})
    assert decide(done).status.phase == "Planning"
    assert decide(replace(done, now=NOW + timedelta(minutes=5))).status.phase == "Failed"
    # with its reports the run goes through the gates to the backup
    reports = {key: report(key) for key in PLANNED}
    reported = replace(done, status=done.status.model_copy(update=reports))
    decision = decide(reported)
    assert (decision.status.phase, decision.create_job) == ("BackingUp", "backup")
    # a holder again: wait again; when it is gone, a third attempt
    held = decide(replace(reported, lock_holder="shop/other"))
    assert held.status.phase == "WaitingForLock"
    third = decide(replace(reported, status=held.status))
    assert third.status.jobs[-1].name == "orders-plan-g1-a3"


def test_index_jobs_prefers_the_newest_attempt() -> None:
    old, new = _plan_job("Succeeded"), _plan_job("Running", attempt=2)
    assert index_jobs([old, new])["plan"] == new
    assert index_jobs([new, old])["plan"] == new


def test_a_jobs_attempt_is_read_from_its_label() -> None:
    from dbmigrate.decision.model import observe_job
    from dbmigrate.specs.naming import attempt_of, step_labels

    labels = step_labels("orders", "plan", 1, attempt=2)
    seen = observe_job({"metadata": {"name": "orders-plan-g1-a2", "labels": labels}})
    assert seen is not None and seen.attempt == 2
    assert attempt_of("orders-plan-g1-a2", "plan", 1) == 2
    assert attempt_of("orders-plan-g1", "plan", 1) == 1
