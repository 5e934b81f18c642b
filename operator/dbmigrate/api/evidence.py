"""The evidence of the preflight, backup, verify and rollback steps, as written into the status.

Each step returns one of these models; the CLI prints it (text or JSON) and, in a Job, the
reporter patches it under the step's own status key. Everything is declared field by field (no
free-form dicts), because the API server prunes status fields the CRD schema does not declare.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel
from dbmigrate.api.dataloss import TableCounters

CheckStatus = Literal["ok", "warn", "fail"]


class Check(ApiModel):
    """One preflight check and what to do about it."""

    name: str = Field(description="What was checked, such as privileges or long-transactions.")
    status: CheckStatus = Field(description="ok, warn (go on with care) or fail (stop).")
    message: str = Field(description="What was found and what to do about it.")


class SessionBlocker(ApiModel):
    """A session that would hold up a CONCURRENTLY index build or a lock."""

    pid: int = Field(description="Backend process id (pg_terminate_backend takes it).")
    state: str = Field(description="pg_stat_activity.state, such as idle in transaction.")
    application_name: str = Field(default="", description="The session's application_name.")
    user: str = Field(default="", description="The role the session is logged in as.")
    transaction_age_seconds: float | None = Field(
        default=None, description="How long its transaction has been open."
    )
    query: str = Field(default="", description="Its current or last query (truncated).")
    reason: str = Field(description="Why it would hold up the migration.")


class TableEstimate(ApiModel):
    """Size and row estimate of a table the pending SQL touches."""

    schema_name: str = Field(description="Schema of the table.")
    name: str = Field(description="Table name.")
    exists: bool = Field(description="False when the pending SQL creates the table itself.")
    size_bytes: int = Field(default=0, description="pg_table_size: heap and TOAST.")
    total_size_bytes: int = Field(default=0, description="pg_total_relation_size: with indexes.")
    estimated_rows: int = Field(default=0, description="Estimated number of rows.")
    row_estimate_source: Literal["reltuples", "planner", "none"] = Field(
        default="none",
        description="reltuples (statistics) or planner (never analysed: from the file size).",
    )
    large: bool = Field(default=False, description="Estimated rows above the large threshold.")
    updates: int | None = Field(
        default=None, description="n_tup_upd from pg_stat_user_tables since the last reset."
    )
    hot_updates: int | None = Field(default=None, description="n_tup_hot_upd (HOT updates).")
    hot_update_percent: float | None = Field(
        default=None, description="Share of updates that were HOT, in percent."
    )


class IndexEstimate(ApiModel):
    """An index the pending SQL builds, with its disk and time estimates and risks."""

    name: str = Field(description="Index name (empty when the file leaves it to PostgreSQL).")
    schema_name: str = Field(description="Schema of the indexed table.")
    table: str = Field(description="Indexed table.")
    method: str = Field(description="Access method, such as btree.")
    columns: list[str] = Field(
        default_factory=list, description="Key and INCLUDE columns the index refers to."
    )
    unique: bool = Field(default=False, description="Whether it is a UNIQUE index.")
    partial: bool = Field(default=False, description="Whether it has a WHERE predicate.")
    concurrently: bool = Field(default=False, description="Built with CONCURRENTLY.")
    estimated_rows: int = Field(default=0, description="Rows the index will hold (planner).")
    estimated_size_bytes: int = Field(default=0, description="Estimated size on disk.")
    estimated_build_seconds: float = Field(default=0.0, description="Estimated build time.")
    estimate_basis: str = Field(default="", description="How both estimates were made.")
    unique_duplicates_found: bool | None = Field(
        default=None, description="UNIQUE only: duplicates exist (None: not checked/timed out)."
    )
    ends_hot_updates: bool | None = Field(
        default=None,
        description="Whether the index likely ends HOT updates on its table (None: no updates).",
    )
    newly_indexed_columns: list[str] = Field(
        default_factory=list, description="Columns no existing index of the table refers to."
    )


class ProbeResult(ApiModel):
    """A probe query's plan, and whether it uses the expected index."""

    name: str = Field(description="Probe name.")
    expected_index: str = Field(description="The index the plan must use.")
    used_indexes: list[str] = Field(default_factory=list, description="Indexes the plan uses.")
    node_types: list[str] = Field(default_factory=list, description="Plan node types, in order.")
    estimated_cost: float | None = Field(default=None, description="Total cost of the top node.")
    execution_ms: float | None = Field(
        default=None, description="Execution time (only with EXPLAIN ANALYZE)."
    )
    passed: bool = Field(description="Whether the plan uses the expected index.")
    message: str = Field(default="", description="Why it passed or failed.")
    baseline_used_indexes: list[str] | None = Field(
        default=None, description="Indexes the plan used before the migration."
    )
    baseline_estimated_cost: float | None = Field(
        default=None, description="Total cost before the migration."
    )
    baseline_execution_ms: float | None = Field(
        default=None, description="Execution time before the migration (EXPLAIN ANALYZE)."
    )


class PreflightResult(ApiModel):
    """Everything checked before anything changes."""

    passed: bool = Field(description="False when any check failed.")
    checks: list[Check] = Field(default_factory=list, description="Each check and its verdict.")
    pending_versions: list[str] = Field(
        default_factory=list, description="Versions whose SQL was examined."
    )
    role: str = Field(default="", description="The role the checks ran as.")
    server_version: str = Field(default="", description="PostgreSQL server version.")
    database_size_bytes: int = Field(default=0, description="pg_database_size before migrating.")
    large_table_rows: int = Field(description="Threshold of estimated rows for a large table.")
    touches_large_tables: bool = Field(default=False, description="Any table touched is large.")
    tables: list[TableEstimate] = Field(default_factory=list, description="Tables touched.")
    new_indexes: list[IndexEstimate] = Field(default_factory=list, description="Indexes built.")
    estimated_disk_bytes: int = Field(default=0, description="Sum of the new indexes' sizes.")
    estimated_build_seconds: float = Field(default=0.0, description="Sum of the build times.")
    blockers: list[SessionBlocker] = Field(
        default_factory=list, description="Sessions that would hold up CONCURRENTLY builds."
    )
    probe_baseline: list[ProbeResult] = Field(
        default_factory=list, description="Probe plans before the migration, for comparison."
    )
    checked_at: datetime | None = Field(default=None, description="When the checks ran.")


class RetentionRecord(ApiModel):
    """What the retention pass kept and deleted among this resource's backups."""

    keep: int = Field(description="How many newest backups are kept.")
    kept: list[str] = Field(default_factory=list, description="Backups kept (file names).")
    deleted: list[str] = Field(default_factory=list, description="Backups deleted.")
    protected: list[str] = Field(
        default_factory=list, description="Backups kept because a rollback may need them."
    )


class BackupEvidence(ApiModel):
    """A verified pg_dump artefact, and how it was made."""

    path: str = Field(description="Path of the dump file or directory.")
    format: Literal["custom", "directory"] = Field(description="pg_dump format.")
    jobs: int = Field(default=1, description="Parallel pg_dump jobs.")
    database: str = Field(default="", description="Name of the dumped database.")
    resource: str = Field(default="", description="Identity of the resource the backup is for.")
    size_bytes: int = Field(description="Size of the artefact (sum of files for directory).")
    sha256: str = Field(
        description="sha256 of the file; for a directory, over sorted names and file hashes."
    )
    duration_seconds: float = Field(description="Time taken by pg_dump and the check.")
    pg_dump_version: str = Field(description="Version of the pg_dump that wrote it.")
    pg_restore_version: str = Field(default="", description="pg_restore that read it back.")
    server_version: str = Field(description="PostgreSQL server version dumped.")
    started_at: datetime = Field(description="When pg_dump started.")
    finished_at: datetime = Field(description="When the check finished.")
    restore_list_entries: int = Field(description="Entries pg_restore --list read back.")
    verified: bool = Field(description="pg_restore --list read the whole archive back.")
    retention: RetentionRecord | None = Field(default=None, description="The retention pass.")
    wal_lsn: str | None = Field(
        default=None, description="pg_current_wal_lsn() just before the dump (data-loss check)."
    )
    table_counters: list[TableCounters] = Field(
        default_factory=list,
        description="Each table's write counters just before the dump (data-loss check).",
    )


class IndexCheck(ApiModel):
    """An index the applied SQL created, as found in the catalog."""

    name: str = Field(description="Index name.")
    schema_name: str = Field(description="Schema of the index.")
    table: str = Field(description="Indexed table.")
    exists: bool = Field(description="Whether the index exists.")
    valid: bool | None = Field(default=None, description="pg_index.indisvalid.")
    ready: bool | None = Field(default=None, description="pg_index.indisready.")
    definition_matches: bool | None = Field(
        default=None, description="Whether the definition is what the file asked for."
    )
    expected_definition: str | None = Field(
        default=None, description="The file's definition, as PostgreSQL renders it."
    )
    actual_definition: str | None = Field(default=None, description="pg_get_indexdef.")
    size_bytes: int | None = Field(default=None, description="pg_relation_size of the index.")
    passed: bool = Field(description="Exists, valid, ready and matching.")
    message: str = Field(default="", description="What is wrong and what to do.")


class VerificationResult(ApiModel):
    """The state after the migration: indexes, probe plans, sizes."""

    passed: bool = Field(description="Whether every index and probe check passed.")
    versions: list[str] = Field(default_factory=list, description="Versions whose SQL was checked.")
    indexes: list[IndexCheck] = Field(default_factory=list, description="Created indexes.")
    probes: list[ProbeResult] = Field(default_factory=list, description="Probe query plans.")
    analyzed_tables: list[str] = Field(default_factory=list, description="Tables ANALYZEd.")
    database_size_before: int | None = Field(
        default=None, description="Database size before the migration (from the baseline)."
    )
    database_size_after: int | None = Field(default=None, description="Database size now.")
    message: str = Field(default="", description="A one-line summary.")
    checked_at: datetime | None = Field(default=None, description="When verification ran.")


class DroppedObject(ApiModel):
    """An object the rollback dropped (or found already gone)."""

    kind: str = Field(description="Object kind, such as index or table.")
    schema_name: str = Field(description="Schema of the object.")
    name: str = Field(description="Object name.")
    table: str | None = Field(default=None, description="Table of an index, column or constraint.")
    existed: bool = Field(description="Whether it existed when the rollback reached it.")
    gone: bool = Field(default=False, description="Verified absent afterwards.")


class RebuiltIndex(ApiModel):
    """An index the run dropped, as the rollback found it and built it again."""

    schema_name: str = Field(description="Schema of the index (and of its table).")
    name: str = Field(description="Index name.")
    table: str = Field(description="Table of the index.")
    definition: str = Field(
        description="pg_get_indexdef of the index, recorded by the apply step before the drop."
    )
    state: Literal["rebuilt", "present", "tableGone", "notRebuilt"] = Field(
        description="rebuilt (CREATE INDEX CONCURRENTLY from its definition); present (an index "
        "of that name existed and was valid); tableGone (the rollback dropped its table, a table "
        "the run created); notRebuilt (see message)."
    )
    valid: bool = Field(default=False, description="Present, valid and ready afterwards.")
    message: str | None = Field(default=None, description="Why it was not rebuilt, or a note.")


class RollbackRecord(ApiModel):
    """What the emergency rollback did, and whether the database is back."""

    strategy: Literal["dropCreatedObjects", "restoreBackup"] = Field(
        description="Drop what the run created, or restore the backup."
    )
    versions: list[str] = Field(default_factory=list, description="Versions rolled back.")
    dropped_objects: list[DroppedObject] = Field(
        default_factory=list, description="Objects dropped from the apply step's manifest."
    )
    rebuilt_indexes: list[RebuiltIndex] = Field(
        default_factory=list,
        description="Indexes the run dropped, built again by a dropCreatedObjects rollback from "
        "the definitions recorded before the drops.",
    )
    restored_from: str | None = Field(default=None, description="Backup restored (path).")
    restored_sha256: str | None = Field(default=None, description="sha256 of that backup.")
    target_database: str = Field(description="Database rolled back or restored into.")
    parallel_jobs: int = Field(default=1, description="pg_restore jobs used.")
    duration_seconds: float = Field(description="Time taken.")
    verified: bool = Field(description="The state after the rollback was checked and is right.")
    versions_marked_rolled_back: list[str] = Field(
        default_factory=list, description="Versions the history table marks rolled back."
    )
    message: str = Field(description="What happened and what to check.")
    started_at: datetime | None = Field(default=None, description="When the rollback started.")
    finished_at: datetime | None = Field(default=None, description="When it finished.")
