"""Sample specs and statuses for the controller's unit tests (pure data, no services)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dbmigrate.api.evidence import BackupEvidence, PreflightResult, TableEstimate
from dbmigrate.api.lint import LintReport
from dbmigrate.api.plan import AppliedVersion, ApplyResult, PlannedVersion, PlanResult
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseIdentity

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
PLAN_HASH = "a" * 64


def make_spec(**overrides: Any) -> DatabaseMigrationSpec:
    """A valid spec: host-key Secret, ConfigMap source, backup on a PVC; overrides in wire form."""
    wire: dict[str, Any] = {
        "database": {"secretRef": {"name": "analytics-db", "hostKey": "host"}},
        "source": {"configMap": {"name": "analytics-migrations"}},
        "backup": {"pvcName": "backups"},
    }
    wire.update(overrides)
    return DatabaseMigrationSpec.model_validate(wire)


def make_plan(pending: int = 2, *, plan_hash: str = PLAN_HASH, drift: bool = False) -> PlanResult:
    """A plan with ``pending`` versions after version 1, which is applied."""
    versions = [
        PlannedVersion(version=v, name=f"step{v}", checksum=f"{v:064x}")
        for v in range(2, 2 + pending)
    ]
    drift_errors = (
        [{"version": 1, "message": "checksum of 001 changed since it was applied"}] if drift else []
    )
    return PlanResult.model_validate(
        {
            "database": "analytics",
            "pending": [v.to_wire() for v in versions],
            "applied": [AppliedVersion(version=1, name="init", checksum="0" * 64).to_wire()],
            "planHash": plan_hash,
            "driftErrors": drift_errors,
            "computedAt": NOW.isoformat(),
        }
    )


def make_lint(passed: bool = True, policy: str = "strict") -> LintReport:
    return LintReport(policy=policy, files=3, error_count=0 if passed else 1, passed=passed)


def make_preflight(*, large: bool = False, passed: bool = True) -> PreflightResult:
    table = TableEstimate(
        schema_name="public", name="events", exists=True, estimated_rows=5_000_000, large=large
    )
    return PreflightResult(
        passed=passed, large_table_rows=1_000_000, touches_large_tables=large, tables=[table]
    )


def make_identity() -> DatabaseIdentity:
    return DatabaseIdentity(system_identifier="7300000000000000001", database="analytics")


def make_backup(verified: bool = True) -> BackupEvidence:
    return BackupEvidence(
        path="/backups/apps/orders/orders-g1.dump",
        format="custom",
        size_bytes=1024,
        sha256="b" * 64,
        duration_seconds=1.5,
        pg_dump_version="15.6",
        server_version="15.6",
        started_at=NOW,
        finished_at=NOW,
        restore_list_entries=12,
        verified=verified,
    )


def make_apply(status: str = "succeeded") -> ApplyResult:
    return ApplyResult.model_validate(
        {
            "runId": "orders-g1-abcdef12",
            "database": "analytics",
            "status": status,
            "planHash": PLAN_HASH,
            "versions": [
                {
                    "version": 2,
                    "name": "step2",
                    "checksum": "2" * 64,
                    "status": "applied" if status == "succeeded" else "failed",
                    "mode": "transaction",
                }
            ],
            "error": None if status == "succeeded" else "duplicate key value",
            "startedAt": NOW.isoformat(),
        }
    )
