"""The performance watch as the operator's Jobs run it, on a real server: the plan samples the
run start into status.watch, the apply waits for its before window and samples again before its
first statement (timing the probes), and ``dbmigrate watch --report-to`` reads that baseline from
the status, reports each sample (Watching) and the verdict (Done), exits 0 with any verdict, and
stops without a verdict when the resource has started another run. Without a baseline it reports
Unavailable, saying why."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import pytest

from dbmigrate.api.base import ApiModel
from dbmigrate.api.labels import PROBES_ENV, WATCH_ENV
from dbmigrate.api.stepnames import KEY_WATCH
from dbmigrate.cli.main import main
from tests.db.engine_support import EXAMPLE

JOB = ["--report-to", "ns/mig", "--run-id", "r1"]
WATCH = {"thresholds": {"minCalls": 1, "minBaselineSeconds": 1, "probeRuns": 1}}
PROBES = [
    {
        "name": "recent",
        "sql": "SELECT * FROM page_views WHERE path = '/a' ORDER BY timestamp DESC LIMIT 10",
        "expectIndex": "idx_page_views_timestamp_desc_path",
    }
]
WATCH_FLAGS = ["--duration", "1500ms", "--interval", "500ms", "--min-calls", "1"]


class StatusRecorder:
    """Stands in for the resource's status: each report is merged into it, as a merge patch
    merges; every report of status.watch is kept in order."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {"runId": "r1"}
        self.watch_reports: list[dict[str, Any]] = []

    def _merge(self, key: str, model: ApiModel) -> None:
        wire = model.model_dump(mode="json", by_alias=True, exclude_none=False)
        if key == KEY_WATCH:
            self.watch_reports.append(wire)
            merged = {**(self.status.get(KEY_WATCH) or {}), **wire}
            self.status[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            self.status[key] = wire

    def progress(self, key: str, model: ApiModel) -> None:
        self._merge(key, model)

    def result(self, key: str, model: ApiModel) -> None:
        self._merge(key, model)

    def results(self, parts: dict[str, ApiModel]) -> None:
        for key, model in parts.items():
            self._merge(key, model)

    def read_status(self) -> dict[str, Any]:
        return self.status


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> StatusRecorder:
    kept = StatusRecorder()
    monkeypatch.setattr("dbmigrate.runner.lifecycle.reporter_from_args", lambda args: kept)
    monkeypatch.setenv(WATCH_ENV, json.dumps(WATCH))
    monkeypatch.setenv(PROBES_ENV, json.dumps(PROBES))
    return kept


def _workload(url: str, stop: threading.Event) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            conn.execute("SELECT count(*) FROM users WHERE email LIKE 'u%'").fetchone()
            time.sleep(0.01)


def test_plan_apply_and_watch_as_the_jobs_run_them(
    database_url: str, recorder: StatusRecorder
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    folder = ["--migrations", str(EXAMPLE)]
    db = ["--database-url", database_url]
    assert main(["plan", *db, *JOB, *folder, "--watch-baseline", "--output", "json"]) == 0
    start = recorder.status[KEY_WATCH]["runStart"]
    assert start["statementsAvailable"] is True and start["takenAt"]

    began = time.monotonic()
    assert main(["apply", *db, *JOB, *folder, "--watch-baseline"]) == 0
    watch = recorder.status[KEY_WATCH]
    assert watch["baselineSeconds"] >= 1 and time.monotonic() - began >= 0.5  # it waited
    assert "baselineNote" not in watch and watch["runStart"] == start  # its own sub-keys only
    assert [p["name"] for p in watch["beforeApply"]["probes"]] == ["recent"]

    stop = threading.Event()
    load = threading.Thread(target=_workload, args=(database_url, stop), daemon=True)
    load.start()
    try:
        assert main(["watch", *db, *JOB, *WATCH_FLAGS, "--output", "json"]) == 0
    finally:
        stop.set()
        load.join(timeout=10)
    states = [r["state"] for r in recorder.watch_reports[-3:]]
    assert states[-1] == "Done" and "Watching" in states
    done = recorder.status[KEY_WATCH]
    report = done["report"]
    assert report["verdict"] in ("NoRegression", "Inconclusive") and report["samples"] >= 2
    assert done["runStart"] == start and done["beforeApply"] == watch["beforeApply"]
    created = {i["index"] for i in report["newIndexes"]}
    assert "idx_page_views_timestamp_desc_path" in created  # this run's, from status.apply


def test_a_watch_without_a_baseline_reports_unavailable(
    database_url: str, recorder: StatusRecorder
) -> None:
    assert main(["watch", "--database-url", database_url, *JOB, *WATCH_FLAGS]) == 0
    report = recorder.status[KEY_WATCH]["report"]
    assert recorder.status[KEY_WATCH]["state"] == "Done"
    assert report["verdict"] == "Unavailable" and "no baseline" in report["reason"]


def test_a_watch_stops_when_the_resource_starts_another_run(
    database_url: str, recorder: StatusRecorder
) -> None:
    db = ["--database-url", database_url]
    assert main(["plan", *db, *JOB, "--migrations", str(EXAMPLE), "--watch-baseline"]) == 0
    assert main(["apply", *db, *JOB, "--migrations", str(EXAMPLE), "--watch-baseline"]) == 0
    recorder.status["runId"] = "r2"  # a new generation started meanwhile
    assert main(["watch", *db, *JOB, *WATCH_FLAGS]) == 0
    assert recorder.status[KEY_WATCH].get("state") == "Watching"  # no verdict for run r2
