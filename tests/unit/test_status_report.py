"""StatusReporter: throttled progress, final results always sent, retries, never raising."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from dbmigrate.api.base import ApiModel
from dbmigrate.runner.status_report import PatchError, StatusReporter


class Sample(ApiModel):
    """A small model standing in for a step's result."""

    done: int = Field(description="Units done.")
    current_index: str | None = Field(default=None, description="Index being built.")


class Recorder:
    """A transport that records patches and fails as scripted (a list of errors to raise first)."""

    def __init__(self, errors: list[Exception] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.errors = list(errors or [])

    def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        assert (namespace, name) == ("ns", "mig")
        if self.errors:
            raise self.errors.pop(0)
        self.bodies.append(body)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(transport: Recorder, clock: Clock | None = None) -> tuple[StatusReporter, list[float]]:
    slept: list[float] = []
    reporter = StatusReporter(
        "ns", "mig", transport=transport, clock=clock or Clock(), sleep=slept.append
    )
    return reporter, slept


def test_result_is_a_merge_patch_under_the_key_with_nulls_for_unset_fields() -> None:
    rec = Recorder()
    reporter, _ = make(rec)
    reporter.result("apply", Sample(done=3))
    assert rec.bodies == [{"status": {"apply": {"done": 3, "currentIndex": None}}}]


def test_several_results_go_in_one_patch() -> None:
    rec = Recorder([PatchError("HTTP 503", transient=True)])
    reporter, slept = make(rec)
    reporter.results({"plan": Sample(done=1), "lint": Sample(done=2, current_index="i")})
    assert rec.bodies == [
        {
            "status": {
                "plan": {"done": 1, "currentIndex": None},
                "lint": {"done": 2, "currentIndex": "i"},
            }
        }
    ]
    assert len(slept) == 1 and reporter.sent == 1  # retried as one, like a single result


def test_progress_is_throttled_to_one_patch_every_two_seconds() -> None:
    rec, clock = Recorder(), Clock()
    reporter, _ = make(rec, clock)
    for step in range(10):  # 10 reports over 4.5 s: sent at t=0, 2.0, 4.0
        reporter.progress("progress", Sample(done=step))
        clock.now += 0.5
    assert [b["status"]["progress"]["done"] for b in rec.bodies] == [0, 4, 8]
    assert reporter.skipped == 7


def test_result_is_sent_even_right_after_a_progress_patch() -> None:
    rec = Recorder()
    reporter, _ = make(rec)
    reporter.progress("progress", Sample(done=1))
    reporter.result("apply", Sample(done=2))
    assert len(rec.bodies) == 2


def test_transient_errors_are_retried_with_backoff() -> None:
    errors: list[Exception] = [PatchError("503", transient=True)] * 3
    rec = Recorder(errors)
    reporter, slept = make(rec)
    reporter.result("backup", Sample(done=1))
    assert len(rec.bodies) == 1
    assert slept == [0.5, 1.0, 2.0]
    assert reporter.failures == []


def test_permanent_error_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder([PatchError("HTTP 403 Forbidden", transient=False)])
    reporter, slept = make(rec)
    reporter.result("verification", Sample(done=1))
    assert rec.bodies == [] and slept == []
    assert "403" in reporter.failures[0] and "verification" in reporter.failures[0]
    assert "could not write status result 'verification' of ns/mig" in caplog.text


def test_unexpected_exception_never_crashes_the_step() -> None:
    rec = Recorder([ValueError("boom")])
    reporter, _ = make(rec)
    reporter.progress("progress", Sample(done=1))
    assert reporter.failures and "ValueError: boom" in reporter.failures[0]


def test_progress_gives_up_quickly_result_persists() -> None:
    always: list[Exception] = [PatchError("503", transient=True)] * 20
    rec = Recorder(always)
    reporter, slept = make(rec)
    reporter.progress("progress", Sample(done=1))
    assert len(slept) == 1  # two attempts for progress
    reporter.result("apply", Sample(done=1))
    assert len(slept) == 1 + 5  # six attempts for a result
    assert len(reporter.failures) == 2
