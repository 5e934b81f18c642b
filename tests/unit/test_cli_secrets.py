"""No command ever prints the password of its database URL, whatever shape the URL has.

A property test builds database URLs and libpq strings around a random password, well formed and
malformed (scheme left out, one slash, a port that is not a number, an unterminated quote, the
password in the query...), passes each through --database-url and through DATABASE_URL, and runs
every command that takes one, in text and JSON output: stdout and stderr must not contain the
password, a URL that cannot be parsed must exit 2, and --output json must print JSON on stdout on
every path. The URLs point at a closed port, so no database is needed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbmigrate import logging_setup
from dbmigrate.api.plan import ApplyResult
from dbmigrate.cli.main import EXIT_BROKEN_PIPE, main
from dbmigrate.runner.status_report import StatusReporter

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = str(REPO / "database" / "migrations")
NOWHERE = "postgresql://u:pw-nowhere@127.0.0.1:1/db"
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_.~!*$+"

# (shape, whether a parser can read it): {pw} is the password. Port 1 is closed.
SHAPES = [
    ("postgres:{pw}@127.0.0.1:1/db", False),
    ("{pw}@127.0.0.1:1/db", False),
    ("u:{pw}@127.0.0.1", False),
    ("postgresql:/u:{pw}@127.0.0.1:1/db", False),
    ("postgresql//u:{pw}@127.0.0.1/db", False),
    ("host=127.0.0.1 port=1 password='{pw} dbname=db", False),
    ("host=127.0.0.1 port=1 password={pw} dbname", False),
    ("postgresql://u:{pw}@127.0.0.1:abc/db", False),
    ("postgresql://u:{pw}@127.0.0.1:99999/db", False),
    ("host=127.0.0.1 port=x password={pw}", False),
    ("postgresql://u:{pw}@127.0.0.1:1/db", True),
    ("postgresql://u:{pw}@127.0.0.1:1/db?sslmode=disable", True),
    ("postgresql://u@127.0.0.1:1/db?password={pw}", True),
    ("host=127.0.0.1 port=1 password={pw} dbname=db", True),
    ("host=127.0.0.1 port=1 password='{pw}' dbname=db", True),
]
COMMANDS = {
    "plan": ["--migrations", MIGRATIONS],
    "apply": ["--migrations", MIGRATIONS, "--lock-wait", "0"],
    "status": [],
    "history": [],
    "preflight": ["--migrations", MIGRATIONS],
    "verify": ["--migrations", MIGRATIONS],
    "backup": ["--dir", "/nonexistent-backup-folder"],
    "rollback": [],
}


@contextlib.contextmanager
def _environment(url: str | None) -> Iterator[None]:
    saved = os.environ.get("DATABASE_URL")
    literals = set(logging_setup._literals)
    if url is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
        logging_setup._literals.clear()
        logging_setup._literals.update(literals)


def _run(argv: list[str], env_url: str | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with _environment(env_url), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _check_command(command: str, url: str, password: str, parseable: bool, output: str) -> None:
    # one argument, as a password may start with "-" (argparse would take it for an option)
    passed_as_flag = [command, f"--database-url={url}", *COMMANDS[command], "--output", output]
    from_env = [command, *COMMANDS[command], "--output", output]
    for argv, env_url in ((passed_as_flag, None), (from_env, url)):
        code, out, err = _run(argv, env_url)
        where = f"{argv} (DATABASE_URL={env_url!r})"
        assert password not in out + err, f"{where} printed the password:\n{out}\n{err}"
        if not parseable:
            assert code == 2, f"{where} exited {code}, not 2:\n{err}"
        if output == "json":
            json.loads(out)  # the JSON contract holds on failures too


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    password=st.text(PASSWORD_ALPHABET, min_size=8, max_size=24),
    shape=st.sampled_from(SHAPES),
    output=st.sampled_from(["text", "json"]),
)
def test_no_command_prints_the_password_of_any_url(
    password: str, shape: tuple[str, bool], output: str
) -> None:
    template, parseable = shape
    url = template.format(pw=password)
    for command in COMMANDS:
        _check_command(command, url, password, parseable, output)


def test_every_shape_with_every_command() -> None:
    """The property test samples; this runs each shape once, so none is ever left out."""
    for index, (template, parseable) in enumerate(SHAPES):
        password = f"Pw{index:02d}-x7Qz!k9"
        for output in ("text", "json"):
            for command in COMMANDS:
                _check_command(command, template.format(pw=password), password, parseable, output)


def test_connection_failure_keeps_the_json_contract() -> None:
    code, out, err = _run(
        ["plan", "--database-url", NOWHERE, "--migrations", MIGRATIONS, "--output", "json"], None
    )
    assert code == 3
    assert json.loads(out)["errorCode"] == "08000"
    assert "cannot connect" in err


def test_a_malformed_database_url_in_the_environment_is_masked_in_logs() -> None:
    with _environment(None):
        logging_setup.register_env_secrets({"DATABASE_URL": "postgres:Hunter2-xyz@db:5432/app"})
        assert "Hunter2-xyz" not in logging_setup.redact("libpq said: postgres:Hunter2-xyz@db")


class _Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.bodies.append(body)


def test_status_patches_are_masked() -> None:
    recorder = _Recorder()
    reporter = StatusReporter("ns", "m", transport=recorder)
    with _environment(None):
        logging_setup.register_conninfo("postgres:S3cret-pass@db/app")
        failed = ApplyResult(
            run_id="r",
            database="db",
            status="failed",
            error="bad URL postgres:S3cret-pass@db/app",
            started_at=datetime.now(UTC),
        )
        reporter.result("apply", failed)
    assert "S3cret-pass" not in json.dumps(recorder.bodies)
    assert recorder.bodies[0]["status"]["apply"]["status"] == "failed"


def test_a_closed_stdout_ends_the_command_quietly() -> None:
    """``dbmigrate crd | head -0``: the reader is gone before the command writes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbmigrate.cli.main", "crd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert err == ""
