"""A step pod's SIGTERM (eviction, drain, `kubectl delete pod`): the step stops at once, the
statement running on the server is cancelled and rolled back, the step exits 3 (unavailable), and
the next run resumes. Before, the step had no handler: as a container's PID 1 it ignored SIGTERM
(the kernel shields PID 1) and was killed mid-statement at the end of the grace period; as any
other process it died at once and left its statement running on the server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.db.test_engine_cli import run

SLOW = "CREATE TABLE slow_notes (id bigint PRIMARY KEY);\nSELECT pg_sleep(60);\n"


def _sleepers(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pg_sleep(60)%%' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
        return int(row[0]) if row else 0


def test_sigterm_cancels_the_running_statement_and_exits_3(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "001_slow.sql").write_text(SLOW)
    planned = run(["plan", "--migrations", str(tmp_path), "--output", "json"], database_url)
    plan_hash = json.loads(planned.stdout)["planHash"]
    argv = [sys.executable, "-m", "dbmigrate.cli.main", "job", "apply", "--run-id", "r1"]
    argv += ["--migrations", str(tmp_path), "--plan-hash", plan_hash]
    argv += ["--database-url", database_url, "--statement-timeout", "5m"]
    step = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while _sleepers(database_url) == 0:
        assert time.monotonic() < deadline, "the apply never reached its pg_sleep"
        assert step.poll() is None, step.communicate()
        time.sleep(0.2)

    step.send_signal(signal.SIGTERM)
    _, err = step.communicate(timeout=15)
    assert step.returncode == 3, err
    assert "stopped by SIGTERM" in err and "resumes" in err
    assert _sleepers(database_url) == 0  # cancelled on the server, not left running
    with psycopg.connect(database_url) as conn:
        table = conn.execute("SELECT to_regclass('slow_notes')").fetchone()
    assert table == (None,)  # its transaction rolled back

    (tmp_path / "001_slow.sql").write_text(SLOW.replace("60", "0"))  # rerun, quickly this time
    done = run(["apply", "--migrations", str(tmp_path), "--output", "json"], database_url)
    assert done.returncode == 0, done.stdout + done.stderr
