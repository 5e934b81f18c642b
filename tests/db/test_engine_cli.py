"""``dbmigrate plan | apply | status | history`` as a person or a Job runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from dbmigrate.api.exitcodes import help_text
from dbmigrate.engine import locking
from tests.db.engine_support import EXAMPLE


def run(args: list[str], url: str | None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "dbmigrate.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _password(url: str) -> str:
    password = urlsplit(url).password
    if not password:
        pytest.skip("the test server's URL has no password to leak")
    return password


def test_plan_apply_status_history_json(database_url: str) -> None:
    planned = run(["plan", "--migrations", str(EXAMPLE), "--output", "json"], database_url)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert [p["version"] for p in plan["pending"]] == [1, 2, 3, 4, 5]

    applied = run(
        [
            "apply",
            "--migrations",
            str(EXAMPLE),
            "--output",
            "json",
            "--plan-hash",
            plan["planHash"],
            "--run-id",
            "cli-run",
            "--lock-timeout",
            "3s",
        ],
        database_url,
    )
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert (result["status"], result["runId"]) == ("succeeded", "cli-run")
    assert [v["status"] for v in result["versions"]] == ["applied"] * 5

    again = run(["apply", "--migrations", str(EXAMPLE), "--output", "json"], database_url)
    assert again.returncode == 0
    assert json.loads(again.stdout)["status"] == "nothing_to_do"

    rows = json.loads(run(["history", "--output", "json"], database_url).stdout)
    assert [(r["version"], r["status"], r["applied_by"]) for r in rows] == [
        (n, "applied", "cli-run") for n in range(1, 6)
    ]
    status = run(["status", "--migrations", str(EXAMPLE), "--output", "json"], database_url)
    assert status.returncode == 0
    assert json.loads(status.stdout)["plan"]["pending"] == []


def test_text_output_never_shows_the_password(database_url: str) -> None:
    applied = run(["apply", "--migrations", str(EXAMPLE)], database_url)
    assert applied.returncode == 0, applied.stderr
    assert "succeeded" in applied.stdout
    assert "created index public.idx_page_views_timestamp_desc_path on page_views" in applied.stdout
    history = run(["history"], database_url)
    status = run(["status", "--migrations", str(EXAMPLE)], database_url)
    for out in (applied, history, status):
        assert _password(database_url) not in out.stdout + out.stderr


def test_drift_exits_1_naming_the_file(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(EXAMPLE, folder)
    assert run(["apply", "--migrations", str(folder)], database_url).returncode == 0
    changed = folder / "004_add_users_email_encrypted.sql"
    changed.write_text(changed.read_text() + "\n-- edited after it was applied\n")
    planned = run(["plan", "--migrations", str(folder)], database_url)
    assert planned.returncode == 1
    assert "DRIFT: 004_add_users_email_encrypted.sql changed after it was applied" in planned.stdout
    applied = run(["apply", "--migrations", str(folder)], database_url)
    assert applied.returncode == 1
    assert "004_add_users_email_encrypted.sql" in applied.stdout


def test_bad_input_exits_2(database_url: str, tmp_path: Path) -> None:
    no_url = run(["plan", "--migrations", str(EXAMPLE)], None)
    assert no_url.returncode == 2
    assert "DATABASE_URL" in no_url.stderr
    (tmp_path / "add_index.sql").write_text("SELECT 1;")
    bad_name = run(["plan", "--migrations", str(tmp_path)], database_url)
    assert bad_name.returncode == 2
    assert "NNN_name.sql" in bad_name.stderr
    bad_option = run(
        ["apply", "--migrations", str(EXAMPLE), "--lock-timeout", "soon"], database_url
    )
    assert bad_option.returncode == 2


def test_unavailable_exits_3_without_the_password(database_url: str) -> None:
    parts = urlsplit(database_url)
    closed = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:1").geturl()
    down = run(["apply", "--migrations", str(EXAMPLE)], closed)
    assert down.returncode == 3
    assert "cannot connect" in down.stdout + down.stderr
    assert _password(database_url) not in down.stdout + down.stderr

    with psycopg.connect(database_url, autocommit=True, application_name="other-run") as holder:
        assert locking.try_lock(holder)
        held = run(["apply", "--migrations", str(EXAMPLE), "--lock-wait", "1s"], database_url)
    assert held.returncode == 3
    assert "application_name 'other-run'" in held.stdout
    assert "pg_terminate_backend" in held.stdout


def test_help_documents_exit_codes() -> None:
    for command in ("plan", "apply", "status", "history"):
        out = run([command, "--help"], None)
        assert out.returncode == 0
        assert help_text() in out.stdout


def test_text_mode_names_the_blocker_while_waiting(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE busy (id int)")
    (tmp_path / "001_alter.sql").write_text("ALTER TABLE busy ADD COLUMN IF NOT EXISTS n int;\n")
    with psycopg.connect(database_url, application_name="nightly-report") as blocker:
        blocker.execute("SELECT * FROM busy")  # leaves the transaction open, holding its lock
        out = run(
            [
                "apply",
                "--migrations",
                str(tmp_path),
                "--lock-timeout",
                "700ms",
                "--lock-retries",
                "1",
                "--retry-backoff",
                "100ms",
            ],
            database_url,
        )
        pid = blocker.info.backend_pid
    assert out.returncode == 3
    assert f"waiting for pid {pid}" in out.stderr
    assert "app=nightly-report" in out.stderr
    assert "retry 1/1" in out.stderr
    assert "error [55P03]" in out.stdout
