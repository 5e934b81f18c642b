"""The performance watch after Succeeded, as decide sees it: the watch Job starts once the run
succeeded, its verdict becomes PerformanceVerified, and a regression is made visible (Ready=False,
Stalled=True, a Regressed notification) and, when allowed, rolled back to RolledBack with reason
PerformanceRegressed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from dbmigrate.api.conditions import (
    PERFORMANCE_VERIFIED,
    READY,
    RECONCILING,
    STALLED,
    Condition,
    find_condition,
)
from dbmigrate.api.status import DatabaseMigrationStatus, ScaledWorkload, WatchStatus
from dbmigrate.api.watch import QueryComparison, WatchReport, WatchWindow
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import Decision, JobObservation, Observed
from dbmigrate.decision.notifications import Target, event_of, with_notifications
from dbmigrate.decision.watching import describe
from tests.unit.controller_samples import NOW
from tests.unit.test_decide import FINISHED, PLANNED, obs

pytestmark = pytest.mark.unit

DONE = PLANNED | {"backup", "apply", "verification"}
WATCH = {"watch": {"duration": "30s", "interval": "2s", "thresholds": {"minCalls": 5}}}
SCALE = {"rollback": {"scaleDown": [{"kind": "Deployment", "name": "web"}]}}
SLOW = QueryComparison(
    query="SELECT * FROM page_views WHERE path = $1 ORDER BY timestamp DESC LIMIT $2",
    queryid=42,
    calls_before=400,
    calls_after=380,
    mean_before_ms=0.31,
    mean_after_ms=24.8,
    ratio=80.0,
    extra_ms_per_hour=900_000.0,
    share_percent=91.0,
)


def report(verdict: str, **fields: Any) -> WatchReport:
    window = WatchWindow(start=NOW, end=NOW + timedelta(seconds=30), seconds=30.0)
    return WatchReport.model_validate(
        {"verdict": verdict, "reason": f"the verdict is {verdict}", "samples": 15, **fields}
        | {"after": window.to_wire()}
    )


def succeeded(
    spec: dict[str, Any] | None = None,
    *,
    watch_job: str | None = None,
    watch: WatchReport | None = None,
    reports: set[str] = DONE,
) -> Observed:
    """A run that reached Succeeded (conditions as decide wrote them), with its watch so far."""
    jobs = {"plan": "Succeeded", "apply": "Succeeded", "verify": "Succeeded"}
    if watch_job is not None:
        jobs["watch"] = watch_job
    record = None if watch is None else WatchStatus(state="Done", samples=15, report=watch)
    observed = obs("Succeeded", jobs=jobs, spec=spec, reports=reports, watch=record)
    return replace(observed, status=_with_ready(observed.status))


def _with_ready(status: DatabaseMigrationStatus) -> DatabaseMigrationStatus:
    ready = Condition(type=READY, status="True", reason="Succeeded", last_transition_time=NOW)
    return status.model_copy(update={"conditions": [ready]})


def again(observed: Observed, decision: Decision, **jobs: str) -> Observed:
    """The next observation: the status the decision wrote, and the Jobs as given."""
    status = decision.status
    seen = dict(observed.jobs)
    for step, state in jobs.items():
        seen[step] = JobObservation(  # type: ignore[index]
            step=step,  # type: ignore[arg-type]
            name=f"orders-{step}-g1",
            generation=1,
            state=state,  # type: ignore[arg-type]
            finished_at=None if state == "Running" else FINISHED,
        )
    return replace(observed, status=status, jobs=seen)


def condition(decision: Decision, type_: Any) -> tuple[str, str] | None:
    found = find_condition(decision.status.conditions, type_)
    return None if found is None else (found.status, found.reason)


def test_no_watch_leaves_a_succeeded_run_alone() -> None:
    observed = succeeded()
    decision = decide(observed)
    assert decision == Decision(status=observed.status)


def test_nothing_applied_means_nothing_to_watch() -> None:
    observed = succeeded(WATCH, reports=PLANNED)
    assert decide(observed) == Decision(status=observed.status)


def test_the_watch_starts_after_success_and_ready_stays_true() -> None:
    decision = decide(succeeded(WATCH))
    assert decision.create_job == "watch"
    assert decision.status.phase == "Succeeded"
    assert condition(decision, READY) == ("True", "Succeeded")
    assert condition(decision, RECONCILING) == ("False", "Succeeded")
    assert condition(decision, PERFORMANCE_VERIFIED) is None  # absent while it watches
    assert "watching the workload's performance for 30s" in (decision.status.message or "")
    assert [e.reason for e in decision.events] == ["WatchStarted"]
    assert [r.name for r in decision.status.jobs] == ["orders-watch-g1"]


def test_a_running_watch_changes_nothing() -> None:
    observed = succeeded(WATCH, watch_job="Running")
    assert decide(observed) == Decision(status=observed.status)


@pytest.mark.parametrize(
    ("verdict", "status"),
    [("NoRegression", "True"), ("Inconclusive", "False"), ("Unavailable", "False")],
)
def test_a_verdict_that_is_not_a_regression_keeps_the_run_ready(verdict: str, status: str) -> None:
    improved = {"improved": [SLOW.model_copy(update={"mean_after_ms": 0.1}).to_wire()]}
    decision = decide(succeeded(WATCH, watch_job="Succeeded", watch=report(verdict, **improved)))
    assert condition(decision, PERFORMANCE_VERIFIED) == (status, verdict)
    assert condition(decision, READY) == ("True", "Succeeded")
    assert decision.create_job is None and decision.status.phase == "Succeeded"
    assert [e.reason for e in decision.events] == [verdict]
    verified = find_condition(decision.status.conditions, PERFORMANCE_VERIFIED)
    assert verified is not None and "faster: SELECT * FROM page_views" in verified.message
    assert event_of(decision.status) == "Succeeded"
    settled = again(succeeded(WATCH, watch_job="Succeeded"), decision)
    assert decide(settled) == Decision(status=settled.status)  # decided once


def test_a_failed_watch_job_is_unavailable_and_never_fails_the_migration() -> None:
    decision = decide(succeeded(WATCH, watch_job="Failed"))
    assert condition(decision, PERFORMANCE_VERIFIED) == ("False", "Unavailable")
    assert condition(decision, READY) == ("True", "Succeeded")
    assert decision.status.phase == "Succeeded"


def test_a_watch_job_without_its_report_is_waited_for_then_unavailable() -> None:
    observed = succeeded(WATCH, watch_job="Succeeded")
    early = replace(observed, now=FINISHED + timedelta(seconds=5))
    waiting = decide(early)
    assert waiting.status == observed.status and waiting.requeue_after
    late = decide(replace(observed, now=FINISHED + timedelta(minutes=5)))
    assert condition(late, PERFORMANCE_VERIFIED) == ("False", "Unavailable")


def test_regressed_with_notify_is_visible_to_every_health_reader() -> None:
    regressed = report("Regressed", offenders=[SLOW.to_wire()])
    decision = decide(succeeded(WATCH, watch_job="Succeeded", watch=regressed))
    assert decision.status.phase == "Succeeded" and decision.create_job is None
    assert condition(decision, PERFORMANCE_VERIFIED) == ("False", "Regressed")
    assert condition(decision, READY) == ("False", "Regressed")
    assert condition(decision, STALLED) == ("True", "Regressed")
    assert "0.31 ms -> 24.80 ms per call (x80.0" in (decision.status.message or "")
    assert "onRegression is Notify" in (decision.status.message or "")
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "Regressed")]
    assert event_of(decision.status) == "Regressed"
    settled = again(succeeded(WATCH, watch_job="Succeeded"), decision)
    assert decide(settled).status == settled.status  # it stays so until a new generation


def test_regressed_with_restore_backup_only_notifies_and_says_why() -> None:
    spec = {
        "watch": {**WATCH["watch"], "onRegression": "Rollback"},
        "rollback": {"strategy": "RestoreBackup"},
    }
    regressed = report("Regressed", offenders=[SLOW.to_wire()])
    decision = decide(succeeded(spec, watch_job="Succeeded", watch=regressed))
    assert condition(decision, STALLED) == ("True", "Regressed")
    assert "would lose every write made since it was taken" in (decision.status.message or "")
    settled = again(succeeded(spec, watch_job="Succeeded"), decision)
    assert decide(settled).status.phase == "Succeeded"


def test_regressed_with_rollback_rolls_the_run_back_to_performance_regressed() -> None:
    spec = {"watch": {**WATCH["watch"], "onRegression": "Rollback"}, **SCALE}
    regressed = report("Regressed", offenders=[SLOW.to_wire()])
    observed = succeeded(spec, watch_job="Succeeded", watch=regressed)
    verdict = decide(observed)  # first the verdict, notified as Regressed
    assert condition(verdict, STALLED) == ("True", "Regressed")
    assert event_of(verdict.status) == "Regressed" and verdict.requeue_after
    assert "rolling back (spec.watch.onRegression: Rollback)" in (verdict.status.message or "")

    observed = again(observed, verdict)
    scaling = decide(observed)  # then the emergency rollback: scale down first
    assert scaling.status.phase == "RollingBack" and scaling.status.failed_step == "watch"
    assert [w.name for w in scaling.scale_down] == ["web"]
    assert "performance regressed (" in (scaling.status.message or "")

    web = ScaledWorkload(kind="Deployment", name="web", replicas=2)
    recorded = scaling.status.model_copy(update={"scaled_workloads": [web]})
    observed = replace(observed, status=recorded)
    starting = decide(observed)
    assert starting.create_job == "rollback"

    rolled = again(observed, starting, rollback="Succeeded")
    with_record = obs("RollingBack", reports={"rollback"}).status.rollback
    rolled = replace(rolled, status=rolled.status.model_copy(update={"rollback": with_record}))
    scaling_up = decide(rolled)
    assert [w.name for w in scaling_up.scale_up] == ["web"]
    back = web.model_copy(update={"restored": True})
    restored = scaling_up.status.model_copy(update={"scaled_workloads": [back]})
    ended = decide(replace(rolled, status=restored))
    assert ended.status.phase == "RolledBack"
    assert condition(ended, STALLED) == ("True", "PerformanceRegressed")
    assert "rolled back after PerformanceRegressed" in (ended.status.message or "")
    assert "SELECT * FROM page_views WHERE path = $1" in (ended.status.message or "")
    assert event_of(ended.status) == "RolledBack"
    assert decide(again(rolled, ended)).status.phase == "RolledBack"  # no watch after that


def test_describe_names_offenders_unused_indexes_and_what_is_missing() -> None:
    text = describe(
        report(
            "Regressed",
            offenders=[SLOW.to_wire()] * 5,
            unusedNewIndexes=["public.idx_unused"],
            missing=["pg_stat_statements is not installed: CREATE EXTENSION"],
        )
    )
    assert text.count("page_views") == 3  # at most three named
    assert "new indexes not scanned: public.idx_unused" in text
    assert "missing: pg_stat_statements is not installed" in text


def test_a_regression_is_notified_once_as_regressed() -> None:
    regressed = report("Regressed", offenders=[SLOW.to_wire()])
    observed = succeeded(WATCH, watch_job="Succeeded", watch=regressed)
    hook = Target(name="platform", source="Operator", url_env="HOOK")
    decision = with_notifications(observed.status, decide(observed), [hook], NOW)
    records = decision.status.notifications
    assert [(r.event, r.reason) for r in records] == [("Regressed", "Regressed")]
    assert "SELECT * FROM page_views" in records[0].message
    again_ = with_notifications(decision.status, decide(again(observed, decision)), [hook], NOW)
    assert len(again_.status.notifications) == 1  # once per run
