"""Results of the plan and apply steps, as written into a DatabaseMigration's status.

These models are what ``dbmigrate plan`` and ``dbmigrate apply`` print with ``--output json`` and
report under the ``plan`` and ``apply`` status keys. The history table's manifest of created
objects (``CreatedObject``) is shared with the rollback step, which drops exactly those objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel

ObjectKind = Literal[
    "index", "table", "view", "materialized_view", "sequence", "schema", "type", "column"
]
VersionStatus = Literal["pending", "running", "applied", "failed", "rolled_back", "skipped"]


class CreatedObject(ApiModel):
    """One database object a migration version created (and a rollback may drop)."""

    kind: ObjectKind = Field(description="Kind of object: index, table, column, view, ...")
    schema_name: str | None = Field(
        default=None,
        alias="schema",
        description="Schema of the object; unset only before the apply resolved it",
    )
    name: str = Field(description="Name of the object (the column name for kind column)")
    table: str | None = Field(
        default=None, description="Table the object belongs to (indexes and columns)"
    )


class PlannedVersion(ApiModel):
    """A migration file that will run."""

    version: int = Field(description="Version number taken from the file name")
    name: str = Field(description="Name part of the file name")
    checksum: str = Field(description="sha256 of the file's SQL, hex")
    resume_from: int | None = Field(
        default=None,
        description="Statements already done by an earlier, interrupted run of this version",
    )


class AppliedVersion(ApiModel):
    """A version the history table records as applied."""

    version: int = Field(description="Version number")
    name: str = Field(description="Name recorded when it was applied")
    checksum: str = Field(description="sha256 recorded when it was applied")
    finished_at: datetime | None = Field(default=None, description="When it finished applying")


class DriftError(ApiModel):
    """A disagreement between the migration set and the history table that stops the plan."""

    version: int = Field(description="Version concerned")
    file: str | None = Field(default=None, description="File name in the migration set, if any")
    recorded_checksum: str | None = Field(
        default=None, description="Checksum recorded in the history table"
    )
    current_checksum: str | None = Field(
        default=None, description="Checksum of the file in the migration set"
    )
    message: str = Field(description="What is wrong and how to fix it")


class PlanResult(ApiModel):
    """What an apply would do now: the pending versions, and whatever stops it."""

    database: str = Field(description="Database the plan was computed against (no password)")
    target: int | None = Field(default=None, description="Highest version to apply")
    pending: list[PlannedVersion] = Field(default_factory=list, description="Versions to run")
    applied: list[AppliedVersion] = Field(default_factory=list, description="Versions done")
    plan_hash: str = Field(
        description="sha256 over the pending versions, their checksums and the target; "
        "an approval is bound to this value"
    )
    drift_errors: list[DriftError] = Field(
        default_factory=list, description="Problems that refuse the plan; empty when it is sound"
    )
    computed_at: datetime = Field(description="When the plan was computed")


class Blocker(ApiModel):
    """A session that holds up a statement of the migration."""

    pid: int = Field(description="Backend process id of the blocking session")
    state: str | None = Field(default=None, description="pg_stat_activity.state")
    application_name: str | None = Field(default=None, description="Its application_name")
    query: str | None = Field(default=None, description="Its current or last query (shortened)")
    transaction_age_seconds: float | None = Field(
        default=None, description="How long its transaction has been open"
    )


class VersionApplyRecord(ApiModel):
    """The outcome of one version in one apply run."""

    version: int = Field(description="Version number")
    name: str = Field(description="Name of the migration")
    checksum: str = Field(description="sha256 of the SQL that ran")
    status: VersionStatus = Field(description="applied, failed, running, ...")
    mode: Literal["transaction", "autocommit"] = Field(
        description="One transaction for the file, or statement by statement in autocommit"
    )
    started_at: datetime | None = Field(default=None, description="When this run started it")
    finished_at: datetime | None = Field(default=None, description="When it ended")
    duration_seconds: float | None = Field(default=None, description="Wall time in this run")
    statements_done: int = Field(default=0, description="Statements committed so far")
    statements_total: int = Field(default=0, description="Statements in the file")
    retries: int = Field(default=0, description="Retries after lock timeouts in this run")
    created_objects: list[CreatedObject] = Field(
        default_factory=list, description="Objects this version created"
    )
    error: str | None = Field(default=None, description="Why it failed")


class ApplyProgress(ApiModel):
    """Live progress of the statement being applied, sampled every second or two."""

    version: int = Field(description="Version being applied")
    name: str = Field(description="Its name")
    statement_index: int = Field(description="1-based number of the running statement")
    statements_total: int = Field(description="Statements in the file")
    statement: str = Field(description="First line of the running statement")
    phase: str | None = Field(
        default=None, description="Index build phase from pg_stat_progress_create_index"
    )
    blocks_done: int | None = Field(default=None, description="Blocks processed in this phase")
    blocks_total: int | None = Field(default=None, description="Blocks to process in this phase")
    tuples_done: int | None = Field(default=None, description="Tuples processed in this phase")
    tuples_total: int | None = Field(default=None, description="Tuples to process in this phase")
    lockers_done: int | None = Field(default=None, description="Lockers already waited for")
    lockers_total: int | None = Field(default=None, description="Lockers to wait for")
    percent: float | None = Field(
        default=None, description="Percent done of the measure that moves in this phase"
    )
    waiting: bool = Field(default=False, description="The statement waits for a lock")
    blockers: list[Blocker] = Field(
        default_factory=list, description="Sessions holding the statement up"
    )
    updated_at: datetime = Field(description="When this sample was taken")


class ApplyResult(ApiModel):
    """The outcome of an apply run."""

    run_id: str = Field(description="Id of the run, recorded as applied_by in the history")
    database: str = Field(description="Database applied to (no password)")
    status: Literal["succeeded", "failed", "nothing_to_do"] = Field(description="Outcome")
    plan_hash: str | None = Field(default=None, description="Hash of the plan that was applied")
    versions: list[VersionApplyRecord] = Field(
        default_factory=list, description="One record per version this run touched"
    )
    error: str | None = Field(default=None, description="Why the run failed")
    error_code: str | None = Field(
        default=None, description="SQLSTATE or dbmigrate error class of the failure"
    )
    blockers: list[Blocker] = Field(
        default_factory=list, description="Sessions that held the failing statement up"
    )
    started_at: datetime = Field(description="When the run started")
    finished_at: datetime | None = Field(default=None, description="When the run ended")
