"""A failed step says what and why in its own words: the step writes its error as the container's
termination message, the operator reads it from the pod, and the status, the conditions and the
Warning Event carry it with the Job controller's reason only as a suffix."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dbmigrate.api.conditions import find_condition
from dbmigrate.api.evidence import ProbeResult, VerificationResult
from dbmigrate.api.labels import TERMINATION_LOG_ENV
from dbmigrate.controller.failedpods import container_end, last_failure
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import JobObservation
from dbmigrate.runner import termination
from dbmigrate.runner.failures import print_failure
from dbmigrate.specs.jobs import build_step_job
from tests.unit.controller_samples import NOW, make_spec
from tests.unit.test_decide import obs

AUTH = (
    "dbmigrate plan: cannot connect to db:5432/app: connection failed: connection to server at "
    '"10.0.0.7", port 5432 failed: FATAL:  password authentication failed for user "app". '
    "Check the URL, that the server runs and accepts connections from here, and the credentials"
)
BACKOFF = "BackoffLimitExceeded: Job has reached the specified backoff limit"


def _failed(step: str, words: str, message: str = BACKOFF) -> JobObservation:
    return JobObservation(
        step=step,  # type: ignore[arg-type]
        name=f"orders-{step}-g1",
        generation=1,
        state="Failed",
        message=message,
        finished_at=NOW,
        exit_code=3,
        termination_message=words,
    )


def test_a_refused_login_names_the_secret_and_its_key_and_the_jobs_reason_comes_last() -> None:
    observed = obs("Planning", jobs={"plan": "Failed"}, reports=set())
    observed = replace(observed, jobs={"plan": _failed("plan", f"some log line\n{AUTH}\n")})
    decision = decide(observed)
    status = decision.status
    assert status.phase == "Failed"
    message = status.message or ""
    assert "password authentication failed" in message
    assert "Secret analytics-db" in message and "keys user, password" in message
    assert message.index("authentication failed") < message.index("BackoffLimitExceeded")
    assert message.endswith("Nothing was changed")
    stalled = find_condition(status.conditions, "Stalled")
    assert stalled is not None and stalled.reason == "PlanFailed" and stalled.message == message
    assert decision.events[0].type == "Warning" and decision.events[0].message == message


def test_a_uri_secret_names_its_key() -> None:
    spec = {"database": {"secretRef": {"name": "db", "uriKey": "uri"}}}
    observed = obs("Planning", jobs={"plan": "Failed"}, reports=set(), spec=spec)
    observed = replace(observed, jobs={"plan": _failed("plan", AUTH)})
    message = decide(observed).status.message or ""
    assert "Secret db (key uri" in message


def test_without_the_steps_words_the_jobs_reason_is_said() -> None:
    observed = obs("Planning", jobs={"plan": "Failed"}, reports=set())
    observed = replace(observed, jobs={"plan": _failed("plan", "")})
    assert f"failed: {BACKOFF}. Nothing was changed" in (decide(observed).status.message or "")


def test_a_probe_that_misses_its_index_is_named_with_the_index_in_message_and_event() -> None:
    probe = ProbeResult(
        name="by-email",
        expected_index="idx_users_email_lower",
        used_indexes=[],
        node_types=["Seq Scan"],
        passed=False,
        message="the plan does not use idx_users_email_lower (it uses no index; nodes: Seq Scan)",
    )
    result = VerificationResult(passed=False, probes=[probe], message="failed: by-email")
    failure = "PodFailurePolicy: Container step for pod orders-verify-g1-x failed"
    observed = obs("Verifying", jobs={"verify": "Failed"}, verification=result)
    observed = replace(observed, jobs={"verify": _failed("verify", "", failure)})
    decision = decide(observed)
    message = decision.status.message or ""
    assert decision.status.phase == "RollingBack"
    assert "probe by-email (expects index idx_users_email_lower)" in message
    assert message.index("by-email") < message.index("PodFailurePolicy")
    event = decision.events[0]
    assert event.type == "Warning" and "idx_users_email_lower" in event.message


def _pod(code: int, message: str, finished: str) -> dict[str, Any]:
    terminated = {"exitCode": code, "message": message, "finishedAt": finished}
    return {
        "status": {"containerStatuses": [{"name": "step", "state": {"terminated": terminated}}]}
    }


def test_the_last_failed_pod_of_a_job_is_the_one_read() -> None:
    pods: list[dict[str, Any]] = [
        _pod(3, "first try", "2024-06-08T12:00:00Z"),
        _pod(3, "second try", "2024-06-08T12:00:09Z"),
        {"status": {"containerStatuses": [{"name": "step", "state": {"running": {}}}]}},
    ]
    end = last_failure(pods)
    assert end is not None and (end.exit_code, end.message) == (3, "second try")
    assert container_end({"status": {}}) is None
    assert last_failure([_pod(0, "", "2024-06-08T12:00:00Z")]) is None


def test_a_failed_step_writes_its_error_as_the_termination_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "termination-log"
    target.touch()
    args = argparse.Namespace(output="text")
    print_failure(args, "dbmigrate plan", "by hand", "X")
    assert target.read_text() == ""  # no env: run by hand, nothing written
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(target))
    print_failure(args, "dbmigrate plan", "cannot connect", "ConnectionFailedError")
    assert target.read_text() == "dbmigrate plan: cannot connect"
    termination.write("x" * 10_000)
    assert len(target.read_bytes()) == termination.MAX_BYTES


def test_the_step_container_names_its_termination_message_file() -> None:
    job = build_step_job("orders", "apps", "u", 1, "plan", make_spec(), "r", "img")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[TERMINATION_LOG_ENV] == "/dev/termination-log"
