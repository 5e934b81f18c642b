"""What a rollback on demand would lose: the data-loss preflight's models.

The backup step records, at the moment of the dump, each table's write counters
(``pg_stat_user_tables``: rows inserted, updated and deleted) and the WAL position
(``TableCounters``, ``BackupEvidence.tableCounters`` and ``walLsn``). The rollback check, a step
Job run before any rollback on demand, compares them with the counters now
(``RollbackCheck``, written into the DatabaseMigration's ``status.rollbackCheck``): the rows
written since the backup into the tables a restore would overwrite, or the rows in the tables
and columns a drop would remove (``DataLoss``), plus what makes the rollback impossible (the
backup missing or failing its checksum, a newer migration applied on top, the migration lock
held by another run).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel

RequestStrategy = Literal["DropCreatedObjects", "RestoreBackup"]


class TableCounters(ApiModel):
    """One table's cumulative write counters at a moment (from pg_stat_user_tables)."""

    table: str = Field(description="schema.table.")
    inserted: int = Field(ge=0, description="n_tup_ins: rows inserted since the stats began.")
    updated: int = Field(ge=0, description="n_tup_upd: rows updated since the stats began.")
    deleted: int = Field(ge=0, description="n_tup_del: rows deleted since the stats began.")
    live_rows: int = Field(default=0, ge=0, description="n_live_tup: estimated live rows.")

    @property
    def written(self) -> int:
        """Rows inserted, updated or deleted."""
        return self.inserted + self.updated + self.deleted


class TableLoss(ApiModel):
    """Data in one table that a rollback would lose."""

    table: str = Field(description="schema.table (or schema.table.column for a created column).")
    rows: int = Field(ge=0, description="Rows in it now (live rows, or non-null column values).")
    rows_written_since_backup: int | None = Field(
        default=None,
        ge=0,
        description="Rows inserted, updated or deleted since the backup (RestoreBackup only).",
    )


class DataLoss(ApiModel):
    """The data-loss preflight of a rollback: what it would throw away."""

    checked: bool = Field(description="Whether the check ran against the database.")
    loss_found: bool = Field(default=False, description="Whether data would be lost.")
    tables: list[TableLoss] = Field(
        default_factory=list, description="The tables (and columns) whose data would be lost."
    )
    wal_bytes_since_backup: int | None = Field(
        default=None,
        description="WAL written since the backup (RestoreBackup): every write, this run's too.",
    )
    summary: str = Field(default="", description="One line: what would be lost, or nothing.")


class RollbackCheck(ApiModel):
    """The rollback check's report: the data-loss preflight and what refuses the rollback."""

    request: str = Field(description="Name of the MigrationRollback this check was run for.")
    strategy: RequestStrategy = Field(description="The strategy checked.")
    data_loss: DataLoss = Field(description="What the rollback would lose.")
    problems: list[str] = Field(
        default_factory=list,
        description="Why the rollback cannot run (empty when it can), each naming the cause.",
    )
    versions: list[str] = Field(
        default_factory=list, description="The versions of the run that would leave the history."
    )
    indexes_to_rebuild: list[str] = Field(
        default_factory=list,
        description="DropCreatedObjects: the indexes the run dropped that the rollback will build "
        "again (schema.name), those missing or INVALID now.",
    )
    checked_at: datetime = Field(description="When the check ran.")
