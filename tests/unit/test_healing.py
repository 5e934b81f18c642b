"""Runs of the same generation again (``decision.healing``): by themselves after a failure before
any change for a cause outside the migration, and when a person asks with the retry annotation."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import pytest

from dbmigrate.api.conditions import Condition
from dbmigrate.api.labels import RETRY_ANNOTATION
from dbmigrate.api.status import JobRecord, StepExit
from dbmigrate.controller.handlers import _active
from dbmigrate.decision.decide import decide
from dbmigrate.decision.healing import AUTO_RETRY_LIMIT, backoff
from dbmigrate.decision.model import Decision, Observed, SecretObservation
from dbmigrate.decision.outcome import Ctx
from tests.unit.controller_samples import NOW
from tests.unit.test_decide import FINISHED, obs

pytestmark = pytest.mark.unit

SECRET_V1 = SecretObservation(exists=True, version="100")
SECRET_V2 = SecretObservation(exists=True, version="137")


def exited(step: str, code: int, job: str | None = None) -> StepExit:
    return StepExit(job=job or f"orders-{step}-g1", step=step, exit_code=code, finished_at=FINISHED)


def record(
    step: str, name: str | None = None, created: timedelta = timedelta(hours=1)
) -> JobRecord:
    return JobRecord(
        step=step, name=name or f"orders-{step}-g1", generation=1, created_at=NOW - created
    )


def failed_plan(code: int) -> Observed:
    return obs(
        "Planning",
        jobs={"plan": "Failed"},
        reports=set(),
        secret=SECRET_V1,
        step_exit=exited("plan", code),
        jobs_records=[record("plan")],
        started_at=NOW - timedelta(hours=1),
    )


def then(observed: Observed, decision: Decision, **changes: object) -> Observed:
    """The next observation: the decision's status written back (step keys cleared)."""
    status = decision.status.model_copy(update=dict.fromkeys(decision.clear_step_keys))
    return replace(observed, status=status, **changes)  # type: ignore[arg-type]


def test_a_plan_that_could_not_connect_fails_with_a_retry_scheduled() -> None:
    decision = decide(failed_plan(3))
    status = decision.status
    assert status.phase == "Failed"
    assert status.retry is not None
    assert status.retry.next_attempt_at == NOW + timedelta(seconds=30)
    assert (status.retry.automatic, status.retry.limit, status.retry.run) == (0, 5, 1)
    assert status.retry.secret_version == "100"
    assert "starts again by itself" in (status.message or "")
    assert "Secret analytics-db changes" in (status.message or "")
    assert decision.requeue_after is not None and decision.requeue_after <= 10


@pytest.mark.parametrize("code", [1, 2])
def test_a_failure_of_the_migration_itself_is_not_retried(code: int) -> None:
    status = decide(failed_plan(code)).status
    assert status.phase == "Failed" and status.retry is None


def test_a_backup_that_could_not_connect_is_retried_but_not_a_failed_apply() -> None:
    backup = obs(
        "BackingUp",
        jobs={"backup": "Failed"},
        step_exit=exited("backup", 3),
        secret=SECRET_V1,
    )
    assert decide(backup).status.retry is not None
    apply = obs("Migrating", jobs={"apply": "Failed"}, step_exit=exited("apply", 3))
    decided = decide(apply)
    assert decided.status.phase == "RollingBack" and decided.status.retry is None


def test_the_scheduled_retry_waits_then_starts_when_the_secret_changes() -> None:
    failed = failed_plan(3)
    first = decide(failed)
    waiting = then(failed, first, now=NOW + timedelta(seconds=5))
    still = decide(waiting)
    assert still.status == waiting.status and still.create_job is None
    assert still.requeue_after is not None and 1 <= still.requeue_after <= 10

    fixed = decide(replace(waiting, secret=SECRET_V2))  # the password was fixed in the Secret
    status = fixed.status
    assert status.phase == "Planning" and fixed.create_job == "plan"
    assert status.run_id is not None and status.run_id.endswith("-r2")
    assert status.observed_generation == 1
    assert status.retry is not None and (status.retry.run, status.retry.automatic) == (2, 1)
    assert status.retry.next_attempt_at is None
    assert [j.name for j in status.jobs] == ["orders-plan-g1", "orders-plan-g1-a2"]
    assert fixed.events[0].reason == "AutomaticRetry"
    assert "the Secret changed" in fixed.events[0].message
    assert "step_exit" in fixed.clear_step_keys


def test_the_back_off_doubles_up_to_a_cap_and_then_asks_for_a_person() -> None:
    assert [backoff(n).total_seconds() for n in range(7)] == [30, 60, 120, 240, 480, 600, 600]
    observed = failed_plan(3)
    for attempt in range(AUTO_RETRY_LIMIT):
        failed = decide(observed)
        retry = failed.status.retry
        assert retry is not None and retry.automatic == attempt
        assert retry.next_attempt_at == observed.now + backoff(attempt)
        due = then(observed, failed, now=retry.next_attempt_at)
        again = decide(due)  # the back-off passed: a new run, its plan the next attempt
        assert again.create_job == "plan" and again.events[0].reason == "AutomaticRetry"
        plan_job = again.status.jobs[-1].name
        assert plan_job == f"orders-plan-g1-a{attempt + 2}"
        # ... whose plan fails the same way
        observed = then(
            due,
            again,
            jobs={"plan": replace(observed.jobs["plan"], name=plan_job, attempt=attempt + 2)},
        )
        observed = replace(
            observed,
            status=observed.status.model_copy(update={"step_exit": exited("plan", 3, plan_job)}),
        )
    last = decide(observed)
    assert last.status.phase == "Failed"
    assert last.status.retry is not None and last.status.retry.next_attempt_at is None
    assert "no automatic retry is left" in (last.status.message or "")
    assert RETRY_ANNOTATION in (last.status.message or "")
    ended = then(observed, last, now=observed.now + timedelta(hours=1), secret=SECRET_V2)
    assert decide(ended).status == ended.status  # nothing more happens by itself


def test_the_retry_annotation_starts_a_new_run_of_an_ended_run_once() -> None:
    rolled_back = obs(
        "RolledBack",
        annotations={RETRY_ANNOTATION: "2024-06-01T12:00:00Z"},
        jobs_records=[record("plan"), record("backup"), record("apply"), record("rollback")],
        started_at=NOW - timedelta(hours=1),
    )
    decision = decide(rolled_back)
    status = decision.status
    assert status.phase == "Planning" and decision.create_job == "plan"
    assert status.last_handled_retry == "2024-06-01T12:00:00Z"
    assert status.retry is not None and status.retry.run == 2
    assert decision.events[0].reason == "RetryRequested"
    assert status.run_id is not None and status.run_id.endswith("-r2")
    # every step of the new run is a new Job: the earlier run's are not taken for its own
    ctx = Ctx(rolled_back, status)
    assert ctx.job_name("backup") == "orders-backup-g1-a2"
    assert ctx.job_name("apply") == "orders-apply-g1-a2"
    # the same value again does nothing once the run has ended
    ended = then(rolled_back, decision)
    ended = replace(ended, status=ended.status.model_copy(update={"phase": "RolledBack"}))
    assert decide(ended).status == ended.status


def test_a_retry_asked_for_during_a_run_is_echoed_and_ignored() -> None:
    observed = obs("Migrating", jobs={"apply": "Running"}, annotations={RETRY_ANNOTATION: "t1"})
    decision = decide(observed)
    assert decision.status.phase == "Migrating" and decision.create_job is None
    assert decision.status.last_handled_retry == "t1"
    assert [e.reason for e in decision.events] == ["RetryIgnored"]


def test_a_new_generation_keeps_the_handled_retry_and_starts_the_counts_over() -> None:
    failed = decide(failed_plan(3))
    ended = then(failed_plan(3), failed, generation=2)
    ended = replace(ended, status=ended.status.model_copy(update={"last_handled_retry": "t0"}))
    decision = decide(replace(ended, annotations={RETRY_ANNOTATION: "t0"}))
    assert decision.status.observed_generation == 2
    assert decision.status.last_handled_retry == "t0"
    assert decision.status.retry is None
    assert not any(e.reason == "RetryRequested" for e in decision.events)


def active(status: dict[str, Any], meta: dict[str, Any]) -> bool:
    return _active(status=cast(Any, status), meta=cast(Any, meta), body=cast(Any, {}))


def test_the_timer_keeps_looking_while_a_retry_is_scheduled_or_asked_for() -> None:
    meta: dict[str, Any] = {"generation": 1, "annotations": {}}
    done: dict[str, Any] = {"phase": "Failed", "observedGeneration": 1}
    assert not active(done, meta)
    assert active({**done, "retry": {"nextAttemptAt": "2024-06-01T12:00:30Z"}}, meta)
    asked: dict[str, Any] = {"generation": 1, "annotations": {RETRY_ANNOTATION: "t1"}}
    assert active(done, asked)
    assert not active({**done, "lastHandledRetry": "t1"}, asked)


def test_a_job_whose_pod_never_started_before_its_deadline_is_retried() -> None:
    stall = Condition(
        type="Stalled",
        status="True",
        reason="StepImagePullFailed",
        message="the plan Job orders-plan-g1 is not running: its pod orders-plan-g1-x cannot "
        "pull its image nope:1 (ImagePullBackOff)",
        last_transition_time=NOW - timedelta(hours=6),
    )
    timed_out = obs("Planning", jobs={"plan": "Failed"}, reports=set(), conditions=[stall])
    decided = decide(timed_out)
    assert decided.status.phase == "Failed" and decided.status.retry is not None
    # a plan Job that failed on its own (no stall of its pod) is not retried
    plain = obs("Planning", jobs={"plan": "Failed"}, reports=set())
    assert decide(plain).status.retry is None
