"""The plan: which versions an apply would run, and whether anything forbids running them.

The migration set is compared with the history table. A changed checksum of an applied version
(drift), an applied version missing from the set, or a pending version older than an applied one
(out of order) refuse the plan. The plan hash covers the pending versions, their checksums and
the target, so an approval given for one plan cannot be spent on another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

from dbmigrate.api.plan import AppliedVersion, DriftError, PlannedVersion, PlanResult
from dbmigrate.engine import history
from dbmigrate.engine.connect import connect, database_label
from dbmigrate.engine.sources import Migration, MigrationSet

RESUMABLE = ("failed", "running")


def plan_hash(pending: Sequence[PlannedVersion], target: int | None) -> str:
    """sha256 over the ordered pending versions with their checksums, and the target."""
    digest = hashlib.sha256()
    for item in pending:
        digest.update(f"{item.version}:{item.checksum}\n".encode())
    digest.update(f"target:{target if target is not None else 'latest'}\n".encode())
    return digest.hexdigest()


def _drift(rows: Sequence[history.HistoryRow], migration_set: MigrationSet) -> list[DriftError]:
    errors = []
    for row in rows:
        if row.status != "applied":
            continue
        migration = migration_set.get(row.version)
        if migration is None:
            errors.append(
                DriftError(
                    version=row.version,
                    recorded_checksum=row.checksum,
                    message=f"version {row.version} ({row.name}) is applied in the database but "
                    "missing from the migration set; restore its file (the set must contain every "
                    "applied version)",
                )
            )
        elif migration.checksum != row.checksum:
            errors.append(
                DriftError(
                    version=row.version,
                    file=migration.filename,
                    recorded_checksum=row.checksum,
                    current_checksum=migration.checksum,
                    message=f"{migration.filename} changed after it was applied: the history "
                    f"records checksum {row.checksum}, the file now has {migration.checksum}. "
                    "Restore the applied content and put the change in a new migration file",
                )
            )
    return errors


def _out_of_order(pending: Sequence[PlannedVersion], applied: Sequence[int]) -> list[DriftError]:
    if not applied:
        return []
    highest = max(applied)
    return [
        DriftError(
            version=p.version,
            file=None,
            message=f"version {p.version} ({p.name}) is pending but the newer version {highest} "
            "is already applied; out-of-order migrations are refused: renumber it above "
            f"{highest}",
        )
        for p in pending
        if p.version < highest
    ]


def resume_point(migration: Migration, previous: history.HistoryRow | None) -> int:
    """Where an autocommit file resumes: after the statements its interrupted run committed,
    unless the file changed since (then from the start, 0)."""
    if previous is None or previous.status not in RESUMABLE:
        return 0
    return previous.statements_done if previous.checksum == migration.checksum else 0


def _pending(
    rows: Sequence[history.HistoryRow], migration_set: MigrationSet, applied: Sequence[int]
) -> list[PlannedVersion]:
    """The versions not applied, each with where an interrupted earlier run stopped."""
    by_version = {r.version: r for r in rows}
    pending = []
    for migration in migration_set.pending(applied):
        start = resume_point(migration, by_version.get(migration.version))
        pending.append(
            PlannedVersion(
                version=migration.version,
                name=migration.name,
                checksum=migration.checksum,
                resume_from=start or None,
            )
        )
    return pending


def compute_plan(
    rows: Sequence[history.HistoryRow],
    migration_set: MigrationSet,
    target: int | None,
    database: str,
) -> PlanResult:
    """The plan from history rows and a migration set (pure: no database)."""
    applied_rows = [r for r in rows if r.status == "applied"]
    pending = _pending(rows, migration_set.up_to(target), [r.version for r in applied_rows])
    effective_target = target if target is not None else migration_set.latest
    errors = _drift(applied_rows, migration_set)
    errors += _out_of_order(pending, [r.version for r in applied_rows])
    return PlanResult(
        database=database,
        target=effective_target,
        pending=pending,
        applied=[
            AppliedVersion(
                version=r.version, name=r.name, checksum=r.checksum, finished_at=r.finished_at
            )
            for r in applied_rows
        ],
        plan_hash=plan_hash(pending, effective_target),
        drift_errors=errors,
        computed_at=datetime.now(UTC),
    )


def plan_on(
    conn: psycopg.Connection, migration_set: MigrationSet, target: int | None, database: str
) -> tuple[PlanResult, list[history.HistoryRow]]:
    """The plan against an open connection, with the history rows it was computed from."""
    rows = history.read_history(conn)
    return compute_plan(rows, migration_set, target, database), rows


def plan(conninfo: str, migration_set: MigrationSet, target: int | None = None) -> PlanResult:
    """Connect, read the history (creating nothing) and compute the plan."""
    with connect(conninfo, "plan") as conn:
        result, _ = plan_on(conn, migration_set, target, database_label(conninfo))
    return result
