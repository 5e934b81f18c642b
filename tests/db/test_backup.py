"""The backup step on real PostgreSQL: verified artefacts, retention, refusals that fail closed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbmigrate.engine.undo import archive, backup, pgtools
from tests.db.data import MIGRATIONS, load_sample_data, migrate, run_cli


def _prepared(url: str) -> None:
    migrate(url, MIGRATIONS, 4)
    with psycopg.connect(url, autocommit=True) as conn:
        load_sample_data(conn, users=50, sessions=200, views=500)


def _fake_bin(folder: Path, pg_dump_script: str, real_bin: str) -> str:
    """A folder with a scripted pg_dump (a test double of the CLI) and the real pg_restore."""
    folder.mkdir()
    script = folder / "pg_dump"
    script.write_text(pg_dump_script)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (folder / "pg_restore").symlink_to(Path(real_bin) / "pg_restore")
    return str(folder)


def test_custom_backup_is_read_back_hashed_and_recorded(
    database_url: str, tmp_path: Path, pg_major: int, pg_tool_bin: str
) -> None:
    _prepared(database_url)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ev = backup.take_backup(
        database_url, backup.BackupOptions(folder=str(tmp_path), identity="team-a/add-idx"), when
    )
    path = Path(ev.path)
    assert path.name == "team-a_add-idx-20260102T030405Z.dump"
    assert ev.verified and ev.restore_list_entries > 20
    assert ev.sha256 == archive.sha256_of(path) and ev.size_bytes == path.stat().st_size
    pg_dump = pgtools.find_tool("pg_dump", pg_major)
    assert ev.pg_dump_version == pg_dump.version and pg_dump.major >= pg_major
    assert ev.server_version.startswith(f"{pg_major}.")
    listing = subprocess.run(
        [f"{pg_tool_bin}/pg_restore", "--list", ev.path], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public page_views" in listing
    assert not list(tmp_path.glob("*.partial"))


def test_a_new_empty_database_can_be_backed_up(
    database_url: str, tmp_path: Path, pg_major: int
) -> None:
    """A first migration runs on an empty database: its dump rightly lists no entries (but schema
    public and its grants where pg_dump 15 or newer dumps a server of 14 or older, whose defaults
    for them were changed in 15), and only then is an archive that lists nothing accepted."""
    assert backup.database_is_empty(database_url)
    options = backup.BackupOptions(folder=str(tmp_path), identity="new-app")
    ev = backup.take_backup(database_url, options)
    listing, _ = archive.read_back(
        Path(ev.path), pgtools.find_tool("pg_restore", pg_major), pgtools.nothing
    )
    listed = [ln.split(" ", 3)[3] for ln in listing.splitlines() if ln and not ln.startswith(";")]
    pg_dump_major = pgtools.find_tool("pg_dump", pg_major).major
    public_rewritten = pg_dump_major >= 15 and pg_major <= 14
    assert listed == (
        ["SCHEMA - public postgres", "ACL - SCHEMA public postgres"] if public_rewritten else []
    )
    assert ev.verified and ev.restore_list_entries == len(listed)
    if not listed:
        with pytest.raises(backup.BackupError, match="read no entries"):
            archive.listed_entries(listing, Path(ev.path))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
    assert not backup.database_is_empty(database_url)


def test_directory_backup_with_jobs_has_a_stable_hash(database_url: str, tmp_path: Path) -> None:
    _prepared(database_url)
    options = backup.BackupOptions(folder=str(tmp_path), identity="db", format="directory", jobs=2)
    ev = backup.take_backup(database_url, options)
    path = Path(ev.path)
    assert path.is_dir() and (path / "toc.dat").is_file() and ev.jobs == 2
    assert archive.sha256_of(path) == ev.sha256
    (path / "toc.dat").write_bytes((path / "toc.dat").read_bytes() + b"x")
    assert archive.sha256_of(path) != ev.sha256


def test_retention_keeps_newest_and_protected(database_url: str, tmp_path: Path) -> None:
    _prepared(database_url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made: list[str] = []
    for i in range(4):
        options = backup.BackupOptions(folder=str(tmp_path), identity="ns/m", keep=2)
        if i == 1:  # the oldest-but-one is the backup a pending rollback needs
            Path(made[0] + backup.KEEP_MARKER).write_text("rollback of run r1\n")
        made.append(backup.take_backup(database_url, options, start + timedelta(hours=i)).path)
    other = tmp_path / "ns_other-20200101T000000Z.dump"
    other.write_bytes(b"PGDMP")
    names = {p.name for p in tmp_path.iterdir()}
    assert Path(made[0]).name in names  # protected by its marker
    assert Path(made[1]).name not in names  # deleted: older than the newest 2
    assert {Path(made[2]).name, Path(made[3]).name} <= names
    ev = backup.take_backup(
        database_url,
        backup.BackupOptions(folder=str(tmp_path), identity="ns/m", keep=1, protect=(made[2],)),
        start + timedelta(hours=5),
    )
    assert ev.retention is not None
    assert set(ev.retention.deleted) == {Path(made[3]).name}
    assert Path(made[2]).name in ev.retention.protected
    assert other.exists()  # another resource's backups are never touched


def test_missing_folder_is_refused(database_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    with pytest.raises(backup.BackupError, match="does not exist") as info:
        backup.take_backup(database_url, backup.BackupOptions(folder=str(missing), identity="x"))
    assert info.value.exit_code == 2 and not missing.exists()


def test_older_pg_dump_is_refused_before_running(
    database_url: str, tmp_path: Path, pg_major: int, pg_tool_bin: str
) -> None:
    ran = tmp_path / "ran"
    older = f"{pg_major - 1}.9"
    fake = _fake_bin(
        tmp_path / "bin",
        "#!/bin/sh\n"
        f'if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) {older}"; exit 0; fi\n'
        f"touch {ran}\nexit 0\n",
        pg_tool_bin,
    )
    out = tmp_path / "out"
    out.mkdir()
    options = backup.BackupOptions(folder=str(out), identity="x", pg_bin=fake)
    with pytest.raises(
        pgtools.ToolVersionError, match=rf"{pg_major - 1}\.9 .* older than the server"
    ):
        backup.take_backup(database_url, options)
    assert not ran.exists() and not list(out.iterdir())


def _newer_dump_script(real: str) -> str:
    """A pg_dump reporting 99.0 whose archive header claims a format newer than any pg_restore's."""
    return (
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi\n'
        f'{real}/pg_dump "$@" || exit $?\n'
        'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
        "printf '\\143' | dd of=\"$f\" bs=1 seek=6 conv=notrunc 2>/dev/null\n"
    )


def test_dump_from_newer_pg_dump_fails_the_read_back(
    database_url: str, tmp_path: Path, pg_tool_bin: str
) -> None:
    _prepared(database_url)
    fake = _fake_bin(tmp_path / "bin", _newer_dump_script(pg_tool_bin), pg_tool_bin)
    out = tmp_path / "out"
    out.mkdir()
    options = backup.BackupOptions(folder=str(out), identity="x", pg_bin=fake)
    with pytest.raises(backup.BackupError, match="newer pg_dump") as info:
        backup.take_backup(database_url, options)
    assert "unsupported version" in str(info.value)
    assert not list(out.iterdir())  # the partial artefact is removed: nothing looks like a backup


def test_password_reaches_pg_dump_only_through_the_environment(
    database_url: str, tmp_path: Path, pg_tool_bin: str
) -> None:
    _prepared(database_url)
    log = tmp_path / "argv"
    fake = _fake_bin(
        tmp_path / "bin",
        f'#!/bin/sh\necho "$@" >> {log}\necho "PGPASSWORD=$PGPASSWORD" >> {log}\n'
        f'exec {pg_tool_bin}/pg_dump "$@"\n',
        pg_tool_bin,
    )
    out = tmp_path / "out"
    out.mkdir()
    backup.take_backup(
        database_url, backup.BackupOptions(folder=str(out), identity="x", pg_bin=fake)
    )
    password = str(conninfo_to_dict(database_url)["password"])
    lines = log.read_text().splitlines()
    argv_lines = [ln for ln in lines if not ln.startswith("PGPASSWORD=")]
    assert f"PGPASSWORD={password}" in lines
    assert argv_lines and all(password not in ln for ln in argv_lines)


def test_cli_backup_json_and_exit_codes(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _prepared(database_url)
    code = run_cli(["backup", "--database-url", database_url, "--dir", str(tmp_path),
                 "--name", "ns/cli", "--output", "json"])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verified"] is True and data["restoreListEntries"] > 0
    assert os.path.exists(data["path"])

    missing = run_cli(["backup", "--database-url", database_url, "--dir", str(tmp_path / "nope")])
    assert missing == 2 and "does not exist" in capsys.readouterr().err


def test_unreachable_and_wrong_password(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = conninfo_to_dict(database_url)
    unreachable = make_conninfo(database_url, host="127.0.0.1", port="1", connect_timeout="3")
    assert run_cli(["backup", "--database-url", unreachable, "--dir", str(tmp_path)]) == 3
    assert "cannot connect" in capsys.readouterr().err
    wrong = make_conninfo(database_url, password="not-the-password")
    assert run_cli(["backup", "--database-url", wrong, "--dir", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "password authentication failed" in err
    assert "not-the-password" not in err and str(params["password"]) not in err
    assert not list(tmp_path.iterdir())


def _truncating_dump_script(real: str) -> str:
    """A pg_dump whose archive loses the second half of its data (the TOC at the start stays)."""
    return (
        "#!/bin/sh\n"
        f'if [ "$1" = --version ]; then exec {real}/pg_dump --version; fi\n'
        f'{real}/pg_dump "$@" || exit $?\n'
        'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
        'size=$(stat -c %s "$f")\n'
        'truncate -s $((size / 2)) "$f"\n'
        'head -c 512 /dev/zero >> "$f"\n'
    )


def test_verify_data_reads_every_block_and_hashes_meanwhile(
    database_url: str, tmp_path: Path, pg_tool_bin: str
) -> None:
    _prepared(database_url)
    good = tmp_path / "good"
    good.mkdir()
    options = backup.BackupOptions(folder=str(good), identity="x", verify_data=True)
    ev = backup.take_backup(database_url, options)
    assert ev.verified and ev.sha256 == archive.sha256_of(Path(ev.path))
    fake = _fake_bin(tmp_path / "bin", _truncating_dump_script(pg_tool_bin), pg_tool_bin)
    out = tmp_path / "out"
    out.mkdir()
    truncated = backup.BackupOptions(folder=str(out), identity="x", pg_bin=fake, verify_data=True)
    with pytest.raises(backup.BackupError, match="damaged or truncated"):
        backup.take_backup(database_url, truncated)
    assert not list(out.iterdir())
