"""One reading of a migrations folder for every command: what apply refuses, lint and plan refuse.

Each case is a folder some command used to accept silently: empty (an empty ConfigMap mount), a
0-byte file, a file that cannot be read (dangling symlink, no permission), a name without a
version, two files with one version. Each must be refused with exit 2 by plan, apply, lint,
preflight and verify alike, with the offending file named. No database is needed: the folder is
read before any connection (the URL points at a closed port).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dbmigrate.cli.main import main
from dbmigrate.engine.sources import MigrationSourceError, load_directory

NOWHERE = "postgresql://someone@127.0.0.1:1/nothing"


def _empty(folder: Path) -> str:
    (folder / "README.md").write_text("no migrations here")
    return str(folder)


def _zero_bytes(folder: Path) -> str:
    (folder / "001_a.sql").write_text("SELECT 1;")
    (folder / "002_empty.sql").write_bytes(b"")
    return "002_empty.sql"


def _dangling_symlink(folder: Path) -> str:
    (folder / "001_a.sql").write_text("SELECT 1;")
    (folder / "002_gone.sql").symlink_to(folder / "no-such-target.sql")
    (folder / "003_c.sql").write_text("SELECT 3;")
    return "002_gone.sql"


def _folder_named_sql(folder: Path) -> str:
    (folder / "001_a.sql").write_text("SELECT 1;")
    (folder / "002_dir.sql").mkdir()
    return "002_dir.sql"


def _no_version(folder: Path) -> str:
    (folder / "001_a.sql").write_text("SELECT 1;")
    (folder / "add_users.sql").write_text("SELECT 2;")
    return "add_users.sql"


def _duplicate_version(folder: Path) -> str:
    (folder / "001_a.sql").write_text("SELECT 1;")
    (folder / "1_b.sql").write_text("SELECT 2;")
    return "1_b.sql"


BAD_FOLDERS: dict[str, Callable[[Path], str]] = {
    "empty": _empty,
    "zero-byte file": _zero_bytes,
    "dangling symlink": _dangling_symlink,
    "folder named .sql": _folder_named_sql,
    "name without version": _no_version,
    "duplicate version": _duplicate_version,
}

COMMANDS = {
    "plan": ["plan", "--database-url", NOWHERE, "--migrations"],
    "apply": ["apply", "--database-url", NOWHERE, "--migrations"],
    "lint": ["lint", "--migrations"],
    "preflight": ["preflight", "--database-url", NOWHERE, "--migrations"],
    "verify": ["verify", "--database-url", NOWHERE, "--migrations"],
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_bad_folder_with_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    named = BAD_FOLDERS[case](tmp_path)
    assert main([*COMMANDS[command], str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert named in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    locked = tmp_path / "002_locked.sql"
    locked.write_text("SELECT 2;")
    locked.chmod(0)
    with pytest.raises(MigrationSourceError, match=r"002_locked\.sql"):
        load_directory(tmp_path)


def test_an_empty_set_is_allowed_only_when_asked(tmp_path: Path) -> None:
    assert len(load_directory(tmp_path, allow_empty=True)) == 0
    with pytest.raises(MigrationSourceError, match="no migration files"):
        load_directory(tmp_path)


def test_a_file_of_only_whitespace_is_empty_too(tmp_path: Path) -> None:
    (tmp_path / "001_blank.sql").write_text("\n  \n")
    with pytest.raises(MigrationSourceError, match=r"'001_blank\.sql' is empty"):
        load_directory(tmp_path)
