"""The step commands' failures: the documented exit code, the message without the password, and
anything unexpected left to propagate."""

from __future__ import annotations

import argparse

import psycopg
import pytest

from dbmigrate.engine.errors import LockTimeoutError
from dbmigrate.engine.sources import MigrationSourceError
from dbmigrate.engine.undo.pgtools import StepError, ToolFailed
from dbmigrate.runner.context import StepContext
from dbmigrate.runner.lifecycle import run_step

URL = "postgresql://app:hunter2@db.example:5432/analytics"


def _args(command: str) -> argparse.Namespace:
    return argparse.Namespace(
        database_url=URL, command=command, report_to=None, log_format=None, run_id=None
    )


def _run(exc: Exception, command: str = "backup") -> int:
    def step(ctx: StepContext) -> int:
        raise exc

    return run_step("backup", step, _args(command))


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (StepError("bad input hunter2"), 2),
        (ToolFailed("pg_dump failed: password hunter2 refused"), 1),
        (LockTimeoutError("lock wait for hunter2"), 3),
        (MigrationSourceError("001_x.sql: no such file"), 2),
    ],
)
def test_expected_failures_exit_with_their_code_and_no_password(
    exc: Exception, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(exc) == code
    err = capsys.readouterr().err
    assert err.startswith("dbmigrate backup: ") and "hunter2" not in err


def test_database_errors_are_mapped(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(psycopg.OperationalError("server closed the connection")) == 3
    assert "dbmigrate backup" in capsys.readouterr().err


def test_unexpected_errors_propagate() -> None:
    with pytest.raises(KeyError):
        _run(KeyError("bug"))


def _bad_input(kind: str) -> Exception:
    from pglast import parse_sql

    from dbmigrate.api.spec import DatabaseMigrationSpec

    try:
        if kind == "model":
            DatabaseMigrationSpec.model_validate({"database": "hunter2"})
        else:
            parse_sql("SELEC 1")
    except Exception as exc:  # the error itself is what the test needs
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize("kind", ["model", "sql"])
def test_a_step_job_exits_like_the_command_on_bad_input(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dbmigrate job <step>`` (the alias) maps failures through the same table as ``dbmigrate
    <step>``: a model or SQL the step cannot read is bad input (2), not a crash with a traceback;
    the message names the command as it was called."""

    def plan(ctx: StepContext) -> int:
        raise _bad_input(kind)

    for command, prefix in (("job", "dbmigrate job plan: "), ("plan", "dbmigrate plan: ")):
        assert run_step("plan", plan, _args(command)) == 2
        err = capsys.readouterr().err
        assert err.startswith(prefix) and "hunter2" not in err
