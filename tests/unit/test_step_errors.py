"""The step commands' failures: the documented exit code, the message without the password, and
anything unexpected left to propagate."""

from __future__ import annotations

import argparse

import psycopg
import pytest

from dbmigrate.engine.errors import LockTimeoutError
from dbmigrate.engine.pgtools import StepError, ToolFailed
from dbmigrate.engine.sources import MigrationSourceError
from dbmigrate.runner.failures import guarded

URL = "postgresql://app:hunter2@db.example:5432/analytics"


def _run(exc: Exception) -> int:
    def step(args: argparse.Namespace) -> int:
        raise exc

    return guarded(step)(argparse.Namespace(database_url=URL, command="backup"))


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
    assert err.startswith("error: ") and "hunter2" not in err


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
    kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dbmigrate job <step>`` maps failures through the same table as the hand-run commands:
    a model or SQL the step cannot read is bad input (2), not a crash with a traceback."""
    from dbmigrate.runner import job as step_jobs
    from dbmigrate.runner import tasks as step_runs

    def plan(ctx: object) -> int:
        raise _bad_input(kind)

    monkeypatch.setattr(step_runs, "job_plan", plan)
    args = argparse.Namespace(step="plan", report_to=None, database_url=URL, command="job")
    assert step_jobs.run_step(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dbmigrate job plan: ") and "hunter2" not in err
