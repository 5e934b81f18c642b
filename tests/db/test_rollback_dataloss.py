"""The data-loss preflight of a rollback on demand, on a real server: rows written since the
backup found (and none when nothing was written), rows in what the run created, and the refusals
(backup missing or changed, a version applied on top, the migration lock held)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from dbmigrate.api.dataloss import RollbackCheck
from dbmigrate.engine import locking
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.settings import ApplySettings
from dbmigrate.engine.sources import load_mapping
from dbmigrate.engine.undo import backup, dataloss

BASE = {
    "001_items.sql": "CREATE TABLE items (id bigint PRIMARY KEY, label text);\n"
    "INSERT INTO items SELECT g, 'x' || g FROM generate_series(1, 20) g;",
}
RUN = {
    "002_notes.sql": "CREATE TABLE notes (id bigint PRIMARY KEY, body text);\n"
    "ALTER TABLE items ADD COLUMN nickname text;",
}
ON_TOP = {"003_more.sql": "CREATE TABLE more_things (id bigint);"}


def _apply(url: str, files: dict[str, str], run_id: str) -> None:
    result = apply_migrations(
        url, load_mapping(files), ApplySettings(lint_policy="warn"), run_id=run_id
    )
    assert result.status == "succeeded", result.error


def _check(url: str, strategy: str, **backup_args: object) -> RollbackCheck:
    given = dataloss.CheckInput(request="req", strategy=strategy, run_id="run-2", **backup_args)  # type: ignore[arg-type]
    with psycopg.connect(url, autocommit=True) as conn:
        return dataloss.check(conn, given)


def _write(url: str, *statements: str) -> None:
    """Write in a session of its own, which ends (so its statistics are flushed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _until(url: str, strategy: str, found: int, **backup_args: object) -> RollbackCheck:
    """The check once the statistics show ``found`` tables with losses (before PostgreSQL 15,
    another session's counters reach the statistics up to half a second late)."""
    deadline = time.monotonic() + 10
    while True:
        result = _check(url, strategy, **backup_args)
        if len(result.data_loss.tables) >= found or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _stats_settled(url: str, table: str, inserted: int) -> None:
    """Wait until the table statistics show ``inserted`` rows in ``table``: before PostgreSQL
    15 they reach other sessions up to half a second late, and a backup taken before that
    records counters too low (the check then counts those rows as written since the backup:
    more loss, never less)."""
    deadline = time.monotonic() + 10
    query = "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = %s"
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(query, (table,)).fetchone()
        if row is not None and row[0] >= inserted:
            return
        time.sleep(0.2)
    raise AssertionError(f"the statistics never showed {inserted} rows inserted in {table}")


@pytest.fixture
def after_run(database_url: str, tmp_path: Path) -> tuple[str, backup.BackupEvidence]:
    """001 applied with data, a backup (recording the counters), then run-2 applied 002."""
    _apply(database_url, BASE, "run-1")
    _stats_settled(database_url, "items", inserted=20)
    options = backup.BackupOptions(folder=str(tmp_path), identity="ns/m")
    evidence = backup.take_backup(database_url, options)
    _apply(database_url, {**BASE, **RUN}, "run-2")
    return database_url, evidence


def test_restore_finds_rows_written_since_the_backup(
    after_run: tuple[str, backup.BackupEvidence],
) -> None:
    url, evidence = after_run
    assert evidence.wal_lsn and {c.table for c in evidence.table_counters} == {"public.items"}
    quiet = _check(url, "RestoreBackup", backup=evidence)
    assert quiet.problems == [] and quiet.versions == ["2"]
    assert quiet.data_loss.checked and not quiet.data_loss.loss_found, quiet.data_loss
    assert (quiet.data_loss.wal_bytes_since_backup or 0) > 0  # the run's own DDL
    _write(
        url,
        "INSERT INTO items VALUES (21, 'new'), (22, 'new')",
        "UPDATE items SET label = 'y' WHERE id = 1",
    )
    _write(url, "INSERT INTO notes VALUES (1, 'a note')")
    found = _until(url, "RestoreBackup", 2, backup=evidence)
    loss = {t.table: t for t in found.data_loss.tables}
    assert found.data_loss.loss_found and set(loss) == {"public.items", "public.notes"}
    assert loss["public.items"].rows_written_since_backup == 3
    assert loss["public.notes"].rows_written_since_backup == 1
    assert "4 row(s) were written since the backup in 2 table(s)" in found.data_loss.summary


def test_drop_finds_rows_in_what_the_run_created(
    after_run: tuple[str, backup.BackupEvidence],
) -> None:
    url, _ = after_run
    quiet = _check(url, "DropCreatedObjects")
    assert quiet.problems == [] and not quiet.data_loss.loss_found, quiet.data_loss
    _write(
        url,
        "INSERT INTO notes VALUES (1, 'a'), (2, 'b')",
        "UPDATE items SET nickname = 'n' WHERE id < 4",
    )
    found = _check(url, "DropCreatedObjects")
    loss = {t.table: t.rows for t in found.data_loss.tables}
    assert found.data_loss.loss_found and loss == {"public.notes": 2, "public.items.nickname": 3}


def test_refusals_name_their_cause(
    after_run: tuple[str, backup.BackupEvidence], tmp_path: Path
) -> None:
    url, evidence = after_run
    moved = tmp_path / "elsewhere.dump"
    missing = _check(url, "RestoreBackup", backup=evidence, backup_path=str(moved))
    assert any("is missing" in p for p in missing.problems), missing.problems
    Path(evidence.path).write_bytes(Path(evidence.path).read_bytes() + b"tampered")
    changed = _check(url, "RestoreBackup", backup=evidence)
    assert any("fails its checksum" in p for p in changed.problems), changed.problems
    _apply(url, {**BASE, **RUN, **ON_TOP}, "run-3")
    with psycopg.connect(url, autocommit=True, application_name="other-migration") as holder:
        assert locking.try_lock(holder)
        blocked = _check(url, "DropCreatedObjects")
    problems = " | ".join(blocked.problems)
    assert "version 3 (more) was applied on top by run-3" in problems
    assert "'other-migration'" in problems
