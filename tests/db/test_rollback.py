"""The rollback step on real PostgreSQL: bad inputs change nothing, restores for inspection, and
hostile identifiers (quotes, spaces, unicode) through every step."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dbmigrate.engine import history, preflight, verify
from dbmigrate.engine.probes import Probe
from dbmigrate.engine.sources import load_directory
from dbmigrate.engine.undo import backup, restore, rollback
from tests.db.data import (
    MIGRATIONS,
    app_tables,
    fingerprint,
    load_sample_data,
    migrate,
    run_cli,
)


@pytest.fixture
def migrated(database_url: str, tmp_path: Path) -> tuple[str, str]:
    """001-004 with data, a backup, then 005 applied: (url, backup path)."""
    migrate(database_url, MIGRATIONS, 4)
    with psycopg.connect(database_url, autocommit=True) as conn:
        load_sample_data(conn, users=50, sessions=200, views=1000)
    options = backup.BackupOptions(folder=str(tmp_path), identity="ns/m")
    path = backup.take_backup(database_url, options).path
    migrate(database_url, MIGRATIONS)
    return database_url, path


def _corrupt(tmp_path: Path, good: str) -> Path:
    data = Path(good).read_bytes()
    bad = tmp_path / "corrupt.dump"
    bad.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 64)
    return bad


def _newer(tmp_path: Path, good: str) -> Path:
    data = bytearray(Path(good).read_bytes())
    data[6] = 99  # archive format 1.99: written by a pg_dump newer than this pg_restore
    newer = tmp_path / "newer.dump"
    newer.write_bytes(bytes(data))
    return newer


def test_bad_backups_change_nothing(migrated: tuple[str, str], tmp_path: Path) -> None:
    url, good = migrated
    tables = app_tables(url)
    before = fingerprint(url, tables)
    cases = {
        "missing": (str(tmp_path / "gone.dump"), "does not exist"),
        # the rollback drops the run's objects before pg_restore: the whole archive is read first
        "corrupt": (str(_corrupt(tmp_path, good)), "damaged or truncated"),
        "newer": (str(_newer(tmp_path, good)), "unsupported version"),
        "not-a-dump": (str(tmp_path / "plain.sql"), "not a pg_dump custom-format archive"),
    }
    (tmp_path / "plain.sql").write_text("DROP TABLE users;")
    for name, (path, reason) in cases.items():
        with pytest.raises(restore.RestoreError, match=reason):
            rollback.rollback(url, "restoreBackup", f"rb-{name}", backup_path=path)
    with pytest.raises(restore.RestoreError, match="damaged or truncated"):  # read before -j
        rollback.rollback(url, "restoreBackup", "rb-j", backup_path=cases["corrupt"][0], jobs=2)
    with pytest.raises(restore.RestoreError, match=r"could not read .* nothing was changed"):
        restore.restore(url, cases["corrupt"][0])  # one transaction, no full read first
    with pytest.raises(restore.RestoreError, match="does not match the recorded sha256"):
        rollback.rollback(
            url, "restoreBackup", "rb-sha", backup_path=good, expected_sha256="0" * 64
        )
    assert fingerprint(url, tables) == before
    with psycopg.connect(url, autocommit=True) as conn:
        assert all(r.status == "applied" for r in history.read_history(conn))


def test_cli_rollback_errors(
    migrated: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, good = migrated
    argv = ["rollback", "--database-url", url, "--strategy", "restore"]
    assert run_cli([*argv, "--backup", str(tmp_path / "nope.dump")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_cli([*argv, "--backup", str(_corrupt(tmp_path, good))]) == 2  # read before it
    assert "damaged or truncated" in capsys.readouterr().err
    unreachable = make_conninfo(url, port="1", connect_timeout="3")
    assert run_cli(["rollback", "--database-url", unreachable]) == 3
    wrong = make_conninfo(url, password="wrong-password")
    assert run_cli(["rollback", "--database-url", wrong, "--output", "json"]) == 3
    err = capsys.readouterr().err
    assert "password authentication failed" in err and "wrong-password" not in err


def test_restore_into_new_database_for_inspection(
    migrated: tuple[str, str], pg_admin_url: str
) -> None:
    url, good = migrated
    before = fingerprint(url, app_tables(url))
    record = rollback.rollback(
        url, "restoreBackup", "inspect", backup_path=good, into_database='inspect "copy" ü', jobs=2
    )
    copy_url = make_conninfo(url, dbname='inspect "copy" ü')
    try:
        assert record.verified and record.target_database == 'inspect "copy" ü'
        assert fingerprint(url, app_tables(url)) == before  # the source is untouched
        assert fingerprint(copy_url, app_tables(copy_url)).counts == before.counts
        with pytest.raises(restore.RestoreError, match="exists already"):
            rollback.rollback(url, "restoreBackup", "again", backup_path=good,
                              into_database='inspect "copy" ü')  # fmt: skip
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier('inspect "copy" ü')
                )
            )


HOSTILE_SCHEMA = 'we"ird schéma'
HOSTILE_TABLE = 'pâge "views" ✓'
HOSTILE_INDEX = 'idx "quoted" spaced ü'

HOSTILE_001 = """
CREATE SCHEMA IF NOT EXISTS "we""ird schéma";
CREATE TABLE IF NOT EXISTS "we""ird schéma"."pâge ""views"" ✓" (
    "ïd" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "pa th" text NOT NULL,
    "when" timestamptz NOT NULL
);
"""
HOSTILE_002 = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx ""quoted"" spaced ü"
    ON "we""ird schéma"."pâge ""views"" ✓" ("when" DESC, "pa th");
"""


def test_hostile_identifiers_survive_every_step(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "001_hostile.sql").write_text(HOSTILE_001)
    (folder / "002_hostile_index.sql").write_text(HOSTILE_002)
    migrate(database_url, str(folder), 1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                'INSERT INTO {} ("pa th", "when") SELECT \'/p/\' || g, '
                "timestamptz '2024-01-01' + g * interval '1 minute' FROM generate_series(1, 3000) g"
            ).format(sql.Identifier(HOSTILE_SCHEMA, HOSTILE_TABLE))
        )
        conn.execute("ANALYZE")
        pending = list(load_directory(folder))[1:]
        pre = preflight.run_preflight(conn, pending, preflight.PreflightOptions())
    assert pre.passed, pre.checks
    assert pre.new_indexes[0].name == HOSTILE_INDEX
    assert "sample" in pre.new_indexes[0].estimate_basis  # the sample build quoted the names
    assert pre.tables[0].schema_name == HOSTILE_SCHEMA and pre.tables[0].estimated_rows == 3000
    tables = app_tables(database_url)
    before = fingerprint(database_url, tables)
    evidence = backup.take_backup(
        database_url, backup.BackupOptions(folder=str(tmp_path), identity='ns/"odd" näme')
    )
    migrate(database_url, str(folder))
    probe = Probe(
        "hostile",
        'SELECT * FROM "we""ird schéma"."pâge ""views"" ✓" ORDER BY "when" DESC LIMIT 5',
        HOSTILE_INDEX,
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        checked = verify.verify(conn, list(load_directory(folder)), [probe])
    assert checked.passed, checked.message
    assert checked.indexes[0].definition_matches and checked.probes[0].passed

    dropped = rollback.rollback(database_url, "dropCreatedObjects", "rb-1", versions=[2])
    assert dropped.verified and dropped.dropped_objects[0].name == HOSTILE_INDEX
    assert fingerprint(database_url, tables) == before
    migrate(database_url, str(folder))
    restored = rollback.rollback(
        database_url, "restoreBackup", "rb-2", versions=[2], backup_path=evidence.path
    )
    assert restored.verified, restored.message
    assert fingerprint(database_url, tables) == before


def test_a_held_lock_stops_the_drop_and_says_so(migrated: tuple[str, str]) -> None:
    url, _ = migrated
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE page_views IN SHARE UPDATE EXCLUSIVE MODE")
        record = rollback.rollback(url, "dropCreatedObjects", "rb-locked", lock_timeout="200ms")
    assert not record.verified
    assert "stopped: DROP of index" in record.message and "lock timeout" in record.message
    assert record.versions_marked_rolled_back == []
    again = rollback.rollback(url, "dropCreatedObjects", "rb-free")
    assert again.verified, again.message


def test_cli_rollback_json(migrated: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, good = migrated
    code = run_cli(["rollback", "--database-url", url, "--strategy", "restore", "--backup", good,
                    "--output", "json", "--run-id", "cli-run"])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["strategy"] == "restoreBackup" and data["verified"]
    assert data["versionsMarkedRolledBack"] == ["5"] and data["restoredFrom"] == good
    assert Path(good).stat().st_mode & stat.S_IFREG


def test_restore_when_a_new_table_references_a_restored_one(
    database_url: str, tmp_path: Path
) -> None:
    """A table the run created with a foreign key to a table in the backup would stop
    ``pg_restore --clean`` (it cannot drop the referenced table): the run's objects go first."""
    migrate(database_url, MIGRATIONS, 4)
    with psycopg.connect(database_url, autocommit=True) as conn:
        load_sample_data(conn, users=30, sessions=60, views=200)
    before = fingerprint(database_url, app_tables(database_url))
    options = backup.BackupOptions(folder=str(tmp_path), identity="ns/m")
    path = backup.take_backup(database_url, options).path
    notes = tmp_path / "migrations"
    notes.mkdir()
    for source in sorted(Path(MIGRATIONS).glob("00[1-4]_*.sql")):
        (notes / source.name).write_text(source.read_text())
    (notes / "005_user_notes.sql").write_text(
        "CREATE TABLE IF NOT EXISTS user_notes (\n"
        "    id bigint PRIMARY KEY,\n"
        "    user_id bigint NOT NULL REFERENCES users (id)\n"
        ");\n"
    )
    migrate(database_url, str(notes))
    record = rollback.rollback(database_url, "restoreBackup", "rb-fk", backup_path=path)
    assert record.verified, record.message
    assert fingerprint(database_url, app_tables(database_url)) == before
    dropped = {(d.kind, d.name) for d in record.dropped_objects if d.existed}
    assert ("table", "user_notes") in dropped and all(d.gone for d in record.dropped_objects)
    assert record.versions_marked_rolled_back == ["5"]
