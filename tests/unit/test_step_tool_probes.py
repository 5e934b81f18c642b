"""What keeps a step's own cost small: version probes run together, work runs beside a client
program, Debian's wrapper is not probed when the real binaries are found, and the backup and
rollback commands do not load the modules of other commands."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbmigrate.engine.undo import pgtools


def _script(path: Path, body: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _version_script(path: Path, name: str, version: str) -> str:
    return _script(path, f'echo "{name} (PostgreSQL) {version}"\n')


def test_probes_choose_per_name_and_report_only_the_failing_name(tmp_path: Path) -> None:
    _version_script(tmp_path / "bin" / "pg_dump", "pg_dump", "16.2")
    _script(tmp_path / "bin" / "pg_restore", "exit 3\n")
    with pgtools.ToolProbes(("pg_dump", "pg_restore"), str(tmp_path / "bin")) as probes:
        assert probes.find("pg_dump", 15).version == "16.2"
        with pytest.raises(pgtools.ToolNotFound, match="pg_restore --version failed: exit code 3"):
            probes.find("pg_restore", 15)
        with pytest.raises(pgtools.ToolVersionError, match="older than the server"):
            probes.find("pg_dump", 17)


def test_probes_left_unread_are_stopped(tmp_path: Path) -> None:
    _script(tmp_path / "bin" / "pg_dump", "exec sleep 30\n")
    started = time.monotonic()
    with pgtools.ToolProbes(("pg_dump",), str(tmp_path / "bin")) as probes:
        (probe,) = probes._probes["pg_dump"]
    assert isinstance(probe.proc, subprocess.Popen) and probe.proc.returncode is not None
    assert time.monotonic() - started < 20


def test_debian_wrapper_is_skipped_when_the_versioned_binaries_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper = _script(tmp_path / "share" / "postgresql-common" / "pg_wrapper", "exit 0\n")
    (tmp_path / "path").mkdir()
    (tmp_path / "path" / "pg_dump").symlink_to(wrapper)
    monkeypatch.delenv(pgtools.TOOL_DIR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.setattr(pgtools, "SEARCH_GLOBS", (str(tmp_path / "lib" / "*" / "bin"),))
    assert pgtools.candidate_paths("pg_dump") == [str(tmp_path / "path" / "pg_dump")]
    real = _version_script(tmp_path / "lib" / "15" / "bin" / "pg_dump", "pg_dump", "15.8")
    assert pgtools.candidate_paths("pg_dump") == [real]
    (tmp_path / "path" / "pg_dump").unlink()
    own = _version_script(tmp_path / "path" / "pg_dump", "pg_dump", "17.1")
    assert pgtools.candidate_paths("pg_dump") == [own, real]


def test_work_runs_while_the_program_runs(tmp_path: Path) -> None:
    started = tmp_path / "started"
    program = _script(tmp_path / "prog", f'touch "{started}"\nsleep 0.2\necho listed\n')

    def wait_for_start() -> bool:
        deadline = time.monotonic() + 20
        while not started.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    proc, seen = pgtools.run_tool_while([program], dict(os.environ), "prog", wait_for_start)
    assert seen and proc.stdout == "listed\n"


def test_failing_work_stops_the_program_and_a_failing_program_fails(tmp_path: Path) -> None:
    slow = _script(tmp_path / "slow", "exec sleep 30\n")

    def broken() -> None:
        raise ValueError("hash failed")

    started = time.monotonic()
    with pytest.raises(ValueError, match="hash failed"):
        pgtools.run_tool_while([slow], dict(os.environ), "slow", broken)
    assert time.monotonic() - started < 20
    failing = _script(tmp_path / "failing", "echo 'bad archive' >&2\nexit 1\n")
    with pytest.raises(pgtools.ToolFailed, match="failing failed: bad archive"):
        pgtools.run_tool_while([failing], dict(os.environ), "failing", lambda: 1)


@pytest.mark.parametrize("command", ["backup", "rollback"])
def test_backup_and_rollback_do_not_load_other_commands_modules(command: str) -> None:
    code = (
        "import sys\nfrom dbmigrate.cli.main import build_parser\n"
        f"build_parser([{command!r}]).parse_args([{command!r}, '--help'])\n"
    )
    check = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(' '.join(sorted(sys.modules)), file=sys.stderr))\n" + code
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    loaded = set(done.stderr.split())
    assert f"dbmigrate.runner.{command}" in loaded
    unwanted = {"pglast", "yaml", "dbmigrate.engine.preflight", "dbmigrate.engine.verify"}
    assert not loaded & unwanted
