"""``dbmigrate wait`` against a real PostgreSQL, run as an init container runs it (a process)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from dbmigrate.engine import history
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.sources import load_directory
from tests.db.engine_support import EXAMPLE, example_set, fast, wait_until


class WaitProcess:
    """``dbmigrate wait ...`` started in the background; its output is read line by line."""

    def __init__(self, args: list[str], url: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["DATABASE_URL"] = url
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dbmigrate.cli.main", "wait", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return code, "\n".join(self.lines)


def no_password(url: str, output: str) -> None:
    password = urlsplit(url).password
    assert not password or password not in output


def test_waits_until_another_connection_records_the_version(database_url: str) -> None:
    assert apply_migrations(database_url, example_set(), fast(target=1)).status == "succeeded"
    waiter = WaitProcess(
        ["--version", "3", "--interval", "200ms", "--max-interval", "500ms"], database_url
    )
    wait_until(lambda: waiter.said("still to apply: 3"), 30, "the wait to report it is waiting")
    assert waiter.process.poll() is None, "it must wait while version 3 is missing"

    result = apply_migrations(database_url, example_set(), fast(target=3))
    assert result.status == "succeeded"
    finished_apply = time.monotonic()
    code, output = waiter.finish()
    assert code == 0, output
    assert time.monotonic() - finished_apply < 10
    assert "waiting for" in output.splitlines()[0]
    assert "every version up to 3 applied and not rolled back" in output.splitlines()[0]
    assert output.splitlines()[-1] == "dbmigrate wait: ready"
    no_password(database_url, output)


def test_a_mounted_folder_waits_for_its_highest_version(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(EXAMPLE, folder)
    for extra in ("004_add_users_email_encrypted.sql", "005_add_performance_indexes.sql"):
        (folder / extra).unlink()
    assert apply_migrations(database_url, example_set(), fast(target=2)).status == "succeeded"
    waiter = WaitProcess(["--migrations", str(folder), "--interval", "200ms"], database_url)
    wait_until(lambda: waiter.said("still to apply: 3"), 30, "the wait to name version 3")
    assert apply_migrations(database_url, load_directory(folder), fast()).status == "succeeded"
    code, output = waiter.finish()
    assert code == 0, output
    assert "versions 1, 2, 3 applied and not rolled back" in output


def test_rolled_back_version_fails_at_once(database_url: str) -> None:
    assert apply_migrations(database_url, example_set(), fast(target=3)).status == "succeeded"
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert history.mark_rolled_back(conn, [3], "run-rollback-7") == 1
    waiter = WaitProcess(["--version", "3", "--timeout", "60s"], database_url)
    code, output = waiter.finish(30)
    assert code == 1, output
    assert "FAILED: version 3 (add_pii_hash_columns) was rolled back by run-rollback-7" in output


def test_failed_run_fails_the_wait(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(EXAMPLE, folder)
    (folder / "006_broken.sql").write_text("CREATE TABLE t6 (a int);\nSELECT 1 / 0;\n")
    result = apply_migrations(database_url, load_directory(folder), fast())
    assert result.status == "failed"
    waiter = WaitProcess(["--migrations", str(folder), "--timeout", "60s"], database_url)
    code, output = waiter.finish(30)
    assert code == 1, output
    assert "FAILED: version 6 (broken) failed after" in output
    assert "division by zero" in output


def test_times_out_with_exit_3_while_nothing_happens(database_url: str) -> None:
    assert apply_migrations(database_url, example_set(), fast(target=2)).status == "succeeded"
    started = time.monotonic()
    waiter = WaitProcess(["--version", "5", "--timeout", "2s", "--interval", "300ms"], database_url)
    code, output = waiter.finish(30)
    took = time.monotonic() - started
    assert code == 3, output
    assert 2 <= took < 20
    assert "gave up after 2s, still waiting: highest applied 2; still to apply: 5" in output


def test_no_history_table_yet_is_waited_for(database_url: str) -> None:
    waiter = WaitProcess(["--version", "1", "--timeout", "1s", "--interval", "200ms"], database_url)
    code, output = waiter.finish(30)
    assert code == 3, output
    assert "no history table yet" in output
