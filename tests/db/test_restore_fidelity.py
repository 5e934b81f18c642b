"""Proof that a rollback loses nothing: data and schema identical to before the migration.

On a database with data in every table, the fingerprint (per-table row counts, a content hash of
each table ordered by primary key, and ``pg_dump --schema-only`` without the history schema) is
captured before migrating, and compared after each rollback strategy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from dbmigrate.engine import history
from dbmigrate.engine.undo import backup, restore, rollback
from testbed import pgversions
from testbed.postgres import drop_database, replace_dbname
from tests.db.data import MIGRATIONS, app_tables, fingerprint, load_sample_data, migrate

EXTRA = """
CREATE TABLE IF NOT EXISTS page_view_rollups (
    day date PRIMARY KEY,
    views bigint NOT NULL
);
ALTER TABLE users ADD COLUMN IF NOT EXISTS nickname text;
UPDATE users SET display_name = upper(display_name) WHERE id % 2 = 0;
INSERT INTO page_view_rollups (day, views)
SELECT timestamp::date, count(*) FROM page_views GROUP BY 1 ON CONFLICT DO NOTHING;
"""


def _with_extra(tmp_path: Path) -> str:
    """001-005 plus a 006 that creates a table, adds a column and changes data."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / "006_rollups_and_nickname.sql").write_text(EXTRA)
    return str(folder)


def _ready(url: str) -> None:
    migrate(url, MIGRATIONS, 4)
    with psycopg.connect(url, autocommit=True) as conn:
        load_sample_data(conn)


@pytest.mark.parametrize(("fmt", "jobs"), [("custom", 1), ("directory", 2)])
def test_restore_strategy_returns_data_and_schema(
    database_url: str, tmp_path: Path, fmt: backup.BackupFormat, jobs: int
) -> None:
    _ready(database_url)
    folder = _with_extra(tmp_path)
    tables = app_tables(database_url)
    before = fingerprint(database_url, tables)
    options = backup.BackupOptions(folder=str(tmp_path), identity="ns/m", format=fmt, jobs=jobs)
    evidence = backup.take_backup(database_url, options)

    applied = migrate(database_url, folder)
    assert [v.version for v in applied.versions] == [5, 6]
    changed = fingerprint(database_url, tables)
    assert changed.hashes != before.hashes and changed.schema != before.schema

    record = rollback.rollback(
        database_url,
        "restoreBackup",
        run_id="rb-restore",
        backup_path=evidence.path,
        expected_sha256=evidence.sha256,
        jobs=jobs,
    )
    assert record.verified, record.message
    after = fingerprint(database_url, tables)
    assert after.counts == before.counts
    assert after.hashes == before.hashes
    assert after.schema == before.schema
    assert app_tables(database_url) == tables  # page_view_rollups, outside the dump, is gone
    assert Path(evidence.path).exists()  # a rollback never deletes the backup
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = {r.version: r for r in history.read_history(conn)}
    assert rows[5].status == rows[6].status == "rolled_back"
    assert rows[6].rolled_back_by == "rb-restore"
    assert record.versions_marked_rolled_back == ["5", "6"]


def test_the_newest_client_programs_back_up_and_restore_every_server(
    database_url: str, tmp_path: Path, pg_major: int
) -> None:
    """pg_dump and pg_restore 18 (what an image with the newest client programs runs) on the
    server under test. pg_restore 17 and newer cannot restore straight into a server older than
    17, so there the restore goes through its script and psql, in one job and one transaction."""
    newest = pgversions.install(pgversions.SUPPORTED_MAJORS[-1]).client_bin
    _ready(database_url)
    tables = app_tables(database_url)
    before = fingerprint(database_url, tables)
    options = backup.BackupOptions(
        folder=str(tmp_path), identity="ns/m", format="directory", jobs=2, pg_bin=str(newest)
    )
    evidence = backup.take_backup(database_url, options)
    assert evidence.pg_dump_version.startswith(f"{pgversions.SUPPORTED_MAJORS[-1]}.")

    copy_name = f"{database_url.rsplit('/', 1)[1]}_copy"
    try:
        copy = restore.restore(
            database_url, evidence.path, jobs=2, into_database=copy_name, pg_bin=str(newest)
        )
        copied = fingerprint(replace_dbname(database_url, copy_name), tables)
    finally:
        drop_database(database_url, copy_name)
    through_script = pg_major < 17
    assert (copy.jobs, copy.atomic) == ((1, True) if through_script else (2, False))
    assert (copied.counts, copied.hashes, copied.schema) == (
        before.counts,
        before.hashes,
        before.schema,
    )

    migrate(database_url, _with_extra(tmp_path))
    record = rollback.rollback(
        database_url,
        "restoreBackup",
        run_id="rb-newest",
        backup_path=evidence.path,
        expected_sha256=evidence.sha256,
        jobs=2,
        pg_bin=str(newest),
    )
    assert record.verified, record.message
    after = fingerprint(database_url, tables)
    assert (after.counts, after.hashes, after.schema) == (
        before.counts,
        before.hashes,
        before.schema,
    )


def test_drop_strategy_keeps_data_and_returns_schema(database_url: str) -> None:
    _ready(database_url)
    tables = app_tables(database_url)
    before = fingerprint(database_url, tables)
    applied = migrate(database_url, MIGRATIONS)
    assert [v.version for v in applied.versions] == [5]
    assert fingerprint(database_url, tables).schema != before.schema

    record = rollback.rollback(database_url, "dropCreatedObjects", run_id="rb-drop")
    assert record.verified, record.message
    assert {d.name for d in record.dropped_objects if d.existed} == {
        "idx_page_views_timestamp_desc_path",
        "idx_page_views_session_timestamp_desc",
        "idx_visitor_sessions_active_last_activity",
        "idx_visitor_sessions_last_activity_at",
        "idx_system_metrics_recorded_at",
    }
    after = fingerprint(database_url, tables)
    assert after.counts == before.counts
    assert after.hashes == before.hashes
    assert after.schema == before.schema
    assert record.versions_marked_rolled_back == ["5"]


def test_drop_strategy_removes_created_tables_and_columns(
    database_url: str, tmp_path: Path
) -> None:
    _ready(database_url)
    migrate(database_url, MIGRATIONS)
    tables = app_tables(database_url)
    before = fingerprint(database_url, tables)
    folder = _with_extra(tmp_path)
    migrate(database_url, folder)
    record = rollback.rollback(database_url, "dropCreatedObjects", "rb", versions=[6])
    assert record.verified, record.message
    kinds = {(d.kind, d.name) for d in record.dropped_objects}
    assert {("table", "page_view_rollups"), ("column", "nickname")} <= kinds
    assert fingerprint(database_url, tables).schema == before.schema
