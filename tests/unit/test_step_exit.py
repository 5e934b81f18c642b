"""A step's own exit report (status.stepExit) settles its Job early, for success only."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbmigrate.api.labels import JOB_NAME_ENV
from dbmigrate.api.status import StepExit
from dbmigrate.controller.handlers import _step_exit_pending
from dbmigrate.decision.model import JobObservation, settle_with_step_exit
from dbmigrate.runner import kubeapi
from dbmigrate.runner.context import StepContext
from dbmigrate.runner.kubeapi import ApiCallError, in_cluster_credentials
from dbmigrate.runner.lifecycle import report_exit
from dbmigrate.runner.status_report import KubernetesTransport, PatchError
from dbmigrate.specs.jobs import build_step_job
from tests.unit.controller_samples import make_spec

ENDED = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def _jobs(state: str = "Running") -> dict[str, JobObservation]:
    return {"plan": JobObservation("plan", "mig-plan-g1", 1, state)}  # type: ignore[arg-type]


def _exit(code: int = 0, job: str = "mig-plan-g1", step: str = "plan") -> StepExit:
    return StepExit(job=job, step=step, exit_code=code, finished_at=ENDED)


def test_a_running_job_whose_step_exited_zero_is_settled_succeeded() -> None:
    settled = settle_with_step_exit(_jobs(), _exit())  # type: ignore[arg-type]
    assert settled["plan"].state == "Succeeded"
    assert settled["plan"].finished_at == ENDED


@pytest.mark.parametrize(
    ("state", "step_exit"),
    [
        ("Running", None),
        ("Running", _exit(code=1)),  # a failure waits for the Job: it may be retried
        ("Running", _exit(code=3)),
        ("Running", _exit(job="mig-plan-g1-a2")),  # another attempt's word
        ("Running", _exit(job="mig-backup-g1", step="backup")),  # no Job of that step
        ("Failed", _exit()),  # the Job controller has the last word once it has spoken
    ],
)
def test_anything_else_leaves_the_jobs_as_observed(state: str, step_exit: StepExit | None) -> None:
    jobs = _jobs(state)
    assert settle_with_step_exit(jobs, step_exit) == jobs  # type: ignore[arg-type]


RUNNING = [{"name": "j", "outcome": "Running"}]
DONE = [{"name": "j", "outcome": "Succeeded"}]


@pytest.mark.parametrize(
    ("status", "pending"),
    [
        ({"stepExit": {"job": "j", "exitCode": 0}, "jobs": RUNNING}, True),
        ({"stepExit": {"job": "j", "exitCode": 0}, "jobs": DONE}, False),
        ({"stepExit": {"job": "j", "exitCode": 1}, "jobs": RUNNING}, False),
        ({"stepExit": {"job": "k", "exitCode": 0}, "jobs": RUNNING}, False),
        ({"jobs": RUNNING}, False),
    ],
)  # fmt: skip
def test_the_operator_is_woken_only_by_an_unsettled_successful_exit(
    status: dict[str, object], pending: bool
) -> None:
    assert _step_exit_pending(status=status) is pending  # type: ignore[arg-type]


def test_each_step_pod_is_told_its_job_name() -> None:
    job = build_step_job("mig", "ns", "uid-1", 4, "backup", make_spec(), "run-1", "img")
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env[JOB_NAME_ENV] == job["metadata"]["name"]


def _sa_dir(tmp_path: Path) -> Path:
    """A service-account folder whose CA file is a real certificate (any will do)."""
    cafile = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if not cafile.exists():
        pytest.skip(f"no CA bundle at {cafile}")
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "ca.crt").write_bytes(cafile.read_bytes())
    return tmp_path


def test_an_unreachable_api_server_is_a_transient_patch_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubeapi, "SERVICE_ACCOUNT_DIR", _sa_dir(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "9")  # discard: nothing listens
    with pytest.raises(PatchError, match="cannot reach the API server") as excinfo:
        KubernetesTransport().patch_status("ns", "mig", {"status": {}})
    assert excinfo.value.transient


def test_outside_a_pod_the_client_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ApiCallError, match="KUBERNETES_SERVICE_HOST is not set"):
        in_cluster_credentials(_sa_dir(tmp_path))


class RecordingReporter:
    """Keeps what a step reported."""

    def __init__(self) -> None:
        self.reported: dict[str, object] = {}

    def progress(self, key: str, model: object) -> None:
        raise AssertionError("no progress expected")

    def result(self, key: str, model: object) -> None:
        self.reported[key] = model

    def results(self, parts: dict[str, object]) -> None:
        self.reported.update(parts)


def _context(reporter: RecordingReporter) -> StepContext:
    args = argparse.Namespace(report_to="ns/mig", run_id="r1")
    return StepContext(args=args, reporter=reporter, conninfo="")  # type: ignore[arg-type]


def test_a_step_in_a_job_reports_how_it_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOB_NAME_ENV, "mig-apply-g2")
    reporter = RecordingReporter()
    report_exit(_context(reporter), "apply", 3)
    ended = reporter.reported["stepExit"]
    assert isinstance(ended, StepExit)
    assert (ended.job, ended.step, ended.exit_code) == ("mig-apply-g2", "apply", 3)


def test_a_step_run_by_hand_has_no_job_to_speak_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JOB_NAME_ENV, raising=False)
    reporter = RecordingReporter()
    report_exit(_context(reporter), "plan", 0)
    assert reporter.reported == {}
