"""The step commands as the Job runs them (``dbmigrate <step> --report-to ...``) on a real server:
each reports exactly its status keys, takes its context from the status, and reaches the database
through libpq's PG* variables alone."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from dbmigrate.api.base import ApiModel
from dbmigrate.api.stepnames import (
    KEY_APPLY,
    KEY_PROMOTION,
    KEY_ROLLBACK,
    KEY_VERIFICATION,
    REPORTS,
)
from dbmigrate.cli.main import main
from tests.db.engine_support import EXAMPLE
from tests.db.test_engine_cli import run


class Recorder:
    """Stands in for the resource's status: keeps what the step reported, hands out ``status``."""

    def __init__(self, status: dict[str, Any] | None = None) -> None:
        self.status = status or {}
        self.reported: dict[str, ApiModel] = {}

    def progress(self, key: str, model: ApiModel) -> None:
        self.reported[key] = model

    def result(self, key: str, model: ApiModel) -> None:
        self.reported[key] = model

    def results(self, parts: dict[str, ApiModel]) -> None:
        self.reported.update(parts)

    def read_status(self) -> dict[str, Any]:
        return self.status


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    kept = Recorder()
    monkeypatch.setattr("dbmigrate.runner.lifecycle.reporter_from_args", lambda args: kept)
    return kept


JOB = ["--report-to", "ns/mig", "--run-id", "r1"]


def test_the_plan_job_reports_every_key_of_its_contract(
    database_url: str, recorder: Recorder
) -> None:
    argv = ["plan", "--database-url", database_url, *JOB, "--migrations", str(EXAMPLE)]
    argv += ["--preflight", "--lint-policy", "warn", "--auto-concurrently", "--output", "json"]
    assert main(argv) == 0
    # promotion is reported only when the plan checks staging (--require-applied-in)
    assert set(recorder.reported) == set(REPORTS["plan"]) - {KEY_PROMOTION}


def test_plan_by_hand_prints_just_the_plan(database_url: str) -> None:
    done = run(["plan", "--migrations", str(EXAMPLE), "--output", "json"], database_url)
    assert done.returncode == 0, done.stderr
    assert "planHash" in json.loads(done.stdout)
    asked = run(
        ["plan", "--migrations", str(EXAMPLE), "--output", "json", "--lint-policy", "warn"],
        database_url,
    )
    assert asked.returncode == 0, asked.stderr
    assert set(json.loads(asked.stdout)) == {"plan", "lint"}


def test_verify_and_rollback_take_this_runs_versions(database_url: str, recorder: Recorder) -> None:
    folder = ["--migrations", str(EXAMPLE)]
    assert main(["apply", "--database-url", database_url, *JOB, *folder]) == 0
    assert recorder.reported[KEY_APPLY].status == "succeeded"  # type: ignore[attr-defined]
    recorder.status = {KEY_APPLY: {"versions": [{"version": "5", "status": "applied"}]}}
    assert main(["verify", "--database-url", database_url, *JOB, *folder]) == 0
    checked = recorder.reported[KEY_VERIFICATION].to_wire()
    assert [int(v) for v in checked["versions"]] == [5]  # this run's, as the status says

    other = ["--report-to", "ns/mig", "--run-id", "another-run"]
    assert main(["rollback", "--database-url", database_url, *other]) == 0
    record = recorder.reported[KEY_ROLLBACK]
    assert "nothing to roll back" in record.message  # type: ignore[attr-defined]


def test_libpq_variables_alone_reach_the_database(database_url: str) -> None:
    parts = urlsplit(database_url)
    env = {
        "PGHOST": parts.hostname or "",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": unquote(parts.username or ""),
        "PGPASSWORD": unquote(parts.password or ""),
        "PGDATABASE": parts.path.lstrip("/"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        done = run(["plan", "--migrations", str(EXAMPLE), "--output", "json"], None)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert done.returncode == 0, done.stderr
    assert [p["version"] for p in json.loads(done.stdout)["pending"]] == [1, 2, 3, 4, 5]
