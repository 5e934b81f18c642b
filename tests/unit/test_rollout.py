"""The fleet rollout's pure parts: wave placement, the state machine, the child builder."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from dbmigrate.api.labels import DATABASE_UNPLANNED, LABEL_DATABASE, TEMPLATE_HASH_ANNOTATION
from dbmigrate.api.rollout import (
    DatabaseMigrationRolloutSpec,
    DatabaseMigrationRolloutStatus,
    WaveSpec,
    summary_lines,
)
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.decision.rollout import (
    Child,
    ChildState,
    RolloutDecision,
    RolloutObserved,
    decide_rollout,
    observe_child,
    watch_enabled,
)
from dbmigrate.decision.waves import Target, assign
from dbmigrate.specs.rollout import build_child, child_name, template_hash, template_patch

NOW = datetime(2026, 6, 6, 12, 0, tzinfo=UTC)
UID = "5a5a5a5a-0000-4000-8000-000000000000"


def _spec(**overrides: Any) -> DatabaseMigrationRolloutSpec:
    wire: dict[str, Any] = {
        "template": {"source": {"configMap": {"name": "files"}}, "backup": {"enabled": False}},
        "targets": {"selector": {"fleet": "yes"}, "uriKey": "uri"},
        "waves": [
            {"name": "canary", "count": 2, "maxParallel": 1, "pause": {"duration": "1m"}},
            {"name": "half", "percent": 50, "maxParallel": 3, "pause": {}},
            {"name": "rest", "maxParallel": 10},
        ],
        "failureBudget": {"maxFailures": 1},
    }
    wire.update(overrides)
    return DatabaseMigrationRolloutSpec.model_validate(wire)


def _targets(n: int) -> list[Target]:
    return [Target(f"t{i:02d}", {"fleet": "yes"}) for i in range(n)]


def _observed(spec: DatabaseMigrationRolloutSpec, n: int = 10, **kw: Any) -> RolloutObserved:
    fields: dict[str, Any] = {
        "name": "fleet", "namespace": "apps", "generation": 1, "spec": spec,
        "status": DatabaseMigrationRolloutStatus(), "template_hash": template_hash(spec),
        "now": NOW, "targets": _targets(n),
    }  # fmt: skip
    fields.update(kw)
    return RolloutObserved(**fields)


def _child(
    target: str, wave: str, state: ChildState, spec: DatabaseMigrationRolloutSpec, **kw: Any
) -> Child:
    return Child(target=target, name=child_name("fleet", target), wave=wave,
                 template_hash=template_hash(spec), state=state, **kw)  # fmt: skip


def _next(observed: RolloutObserved, decision: RolloutDecision, **kw: Any) -> RolloutObserved:
    return replace(observed, status=decision.status, **kw)


# --- waves ------------------------------------------------------------------------------------


def test_waves_take_by_count_percent_selector_and_the_last_takes_the_rest() -> None:
    waves = [
        WaveSpec(name="eu", selector={"region": "eu"}),
        WaveSpec(name="two", count=2),
        WaveSpec(name="half", percent=50),
        WaveSpec(name="rest"),
    ]
    targets = [Target(f"t{i}", {"region": "eu" if i in (7, 8) else "us"}) for i in range(9)]
    placed = assign(targets, waves, {})
    by_wave = {i: sorted(t for t, w in placed.items() if w == i) for i in range(4)}
    assert by_wave == {0: ["t7", "t8"], 1: ["t0", "t1"], 2: ["t2", "t3", "t4"], 3: ["t5", "t6"]}


def test_a_child_keeps_its_wave_and_late_targets_join_open_waves_only() -> None:
    waves = [WaveSpec(name="a", count=2), WaveSpec(name="b", count=2), WaveSpec(name="c")]
    placed = assign([Target("x"), Target("y"), Target("z")], waves, {"z": 0}, first_open=1)
    assert placed == {"z": 0, "x": 1, "y": 1}


# --- the state machine ------------------------------------------------------------------------


def test_the_first_wave_starts_within_max_parallel() -> None:
    decision = decide_rollout(_observed(_spec()))
    assert [(s.target, s.wave) for s in decision.start] == [("t00", "canary")]
    status = decision.status
    assert (status.phase, status.current_wave_name, status.progress) == (
        "Progressing",
        "canary",
        "0/10",
    )
    assert status.totals.pending == 10
    reconciling = next(c for c in status.conditions if c.type == "Reconciling")
    assert (reconciling.status, reconciling.reason) == ("True", "WaveProgressing")
    assert [e.reason for e in decision.events] == ["WaveStarted"]


def test_a_running_child_holds_its_slot() -> None:
    spec = _spec()
    observed = _observed(spec, children=[_child("t00", "canary", "running", spec)])
    assert decide_rollout(observed).start == ()
    waiting = _observed(spec, children=[_child("t00", "canary", "waiting", spec)])
    assert decide_rollout(waiting).start == ()


def test_a_wave_soaks_then_the_next_one_starts() -> None:
    spec = _spec()
    done = [_child(t, "canary", "succeeded", spec) for t in ("t00", "t01")]
    first = decide_rollout(_observed(spec, children=done))
    assert (first.status.phase, first.status.waves[0].state) == ("Paused", "Soaking")
    assert first.start == () and first.requeue_after == pytest.approx(60.0)
    soak = next(c for c in first.status.conditions if c.type == "Ready")
    assert soak.reason == "Soaking"
    assert "WaveCompleted" in [e.reason for e in first.events]
    later = decide_rollout(
        _next(_observed(spec, children=done), first, now=NOW + timedelta(minutes=1))
    )
    assert later.status.current_wave_name == "half"
    assert [s.target for s in later.start] == ["t02", "t03", "t04"]  # 50% of 8 is 4, 3 at once


def test_an_empty_pause_waits_for_a_new_promote_token() -> None:
    spec = _spec(waves=[{"name": "a", "count": 1, "pause": {}}, {"name": "b"}])
    done = [_child("t00", "a", "succeeded", spec)]
    observed = _observed(spec, n=3, children=done)
    waiting = decide_rollout(observed)
    assert waiting.status.waves[0].state == "WaitingForPromote" and waiting.start == ()
    assert "dbmigrate.io/promote" in (waiting.status.message or "")
    promoted = decide_rollout(
        _next(observed, waiting, annotations={"dbmigrate.io/promote": "go-1"})
    )
    assert promoted.status.last_handled_promote == "go-1"
    assert [s.target for s in promoted.start] == ["t01", "t02"]
    # the same token again does not pass the next pause (a third wave would wait again)
    again = decide_rollout(_next(observed, promoted, annotations={"dbmigrate.io/promote": "go-1"}))
    assert again.status.last_handled_promote == "go-1"


def test_the_failure_budget_stops_the_rollout_and_names_the_failures() -> None:
    spec = _spec(failureBudget={"maxFailures": 0}, rollbackOnFailure=True)
    children = [
        _child("t00", "canary", "succeeded", spec),
        _child("t01", "canary", "failed", spec, reason="ApplyFailed", message="lock timeout"),
    ]
    decision = decide_rollout(_observed(spec, children=children))
    status = decision.status
    assert status.phase == "Stopped" and decision.start == ()
    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "FailureBudgetExceeded")
    assert "t01: ApplyFailed: lock timeout" in (status.message or "")
    assert [(f.target, f.reason) for f in status.failed_targets] == [("t01", "ApplyFailed")]
    assert decision.rollback == (child_name("fleet", "t00"),)
    assert status.rollback_token == "fleet-g1-canary"
    reasons = [e.reason for e in decision.events]
    assert "WaveRollbackRequested" in reasons and reasons[-1] == "FailureBudgetExceeded"
    # it stays stopped (nothing new starts) until a new generation
    again = decide_rollout(_next(_observed(spec, children=children), decision))
    assert again.status.phase == "Stopped" and again.start == ()


def test_a_wave_budget_counts_its_own_targets() -> None:
    spec = _spec(
        waves=[
            {"name": "a", "count": 4, "maxParallel": 4, "failureBudget": {"maxFailurePercent": 25}},
            {"name": "b"},
        ],
        failureBudget={},
    )  # fmt: skip
    one = [_child("t00", "a", "failed", spec), _child("t01", "a", "succeeded", spec)]
    assert decide_rollout(_observed(spec, children=one)).status.phase == "Progressing"
    two = [*one, _child("t02", "a", "failed", spec)]
    assert decide_rollout(_observed(spec, children=two)).status.phase == "Stopped"


def test_after_the_last_wave_it_is_ready_and_a_late_target_reopens_it() -> None:
    spec = _spec(waves=[{"name": "all", "maxParallel": 5}])
    done = [_child(f"t{i:02d}", "all", "succeeded", spec) for i in range(3)]
    complete = decide_rollout(_observed(spec, n=3, children=done))
    assert complete.status.phase == "Completed" and complete.status.progress == "3/3"
    ready = next(c for c in complete.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", "RolloutComplete")
    late = decide_rollout(_next(_observed(spec, n=4, children=done), complete))
    assert late.status.phase == "Progressing" and [s.target for s in late.start] == ["t03"]


def test_a_new_template_starts_the_waves_over() -> None:
    spec = _spec(waves=[{"name": "a", "count": 1}, {"name": "b"}])
    done = [_child("t00", "a", "succeeded", spec), _child("t01", "b", "succeeded", spec)]
    complete = decide_rollout(_observed(spec, n=2, children=done))
    assert complete.status.phase == "Completed"
    changed = _spec(waves=[{"name": "a", "count": 1}, {"name": "b"}], template={
        "source": {"configMap": {"name": "files-v2"}}, "backup": {"enabled": False}})  # fmt: skip
    again = decide_rollout(
        replace(_observed(changed, n=2, children=done), status=complete.status, generation=2)
    )
    assert again.status.current_wave_name == "a"
    assert [(s.target, s.wave) for s in again.start] == [("t00", "a")]
    assert again.status.progress == "0/2"


def test_the_analysis_gate_waits_for_the_performance_verdicts() -> None:
    spec = _spec(waves=[{"name": "a", "count": 1}, {"name": "b"}])
    done = [_child("t00", "a", "succeeded", spec)]
    waiting = decide_rollout(_observed(spec, n=2, children=done, watch=True))
    assert waiting.status.waves[0].state == "Analyzing" and waiting.start == ()
    verified = [_child("t00", "a", "succeeded", spec, verified=True)]
    assert [
        s.target for s in decide_rollout(_observed(spec, n=2, children=verified, watch=True)).start
    ] == ["t01"]


# --- reading a child, building a child --------------------------------------------------------


def _child_object(
    phase: str | None, conditions: list[dict[str, str]] | None = None, gen: int = 1
) -> dict[str, Any]:
    spec = _spec()
    obj = build_child("fleet", "apps", UID, "t00", "canary", spec)
    obj["metadata"]["generation"] = 1
    obj["status"] = {"phase": phase, "observedGeneration": gen, "conditions": conditions or []}
    return obj


@pytest.mark.parametrize(
    ("phase", "conditions", "gen", "state", "reason"),
    [
        ("Succeeded", [], 1, "succeeded", ""),
        ("Succeeded", [], 0, "running", ""),
        ("Migrating", [], 1, "running", ""),
        ("WaitingForApproval", [{"type": "Ready", "reason": "WaitingForApproval"}], 1, "waiting",
         "WaitingForApproval"),
        ("Failed", [{"type": "Stalled", "status": "True", "reason": "DriftDetected"}], 1, "failed",
         "DriftDetected"),
        ("Succeeded", [{"type": "PerformanceVerified", "reason": "Regressed", "message": "p95"}], 1,
         "failed", "Regressed"),
    ],
)  # fmt: skip
def test_a_child_is_read_as_the_rollout_counts_it(
    phase: str, conditions: list[dict[str, str]], gen: int, state: str, reason: str
) -> None:
    child = observe_child(_child_object(phase, conditions, gen))
    assert child is not None and (child.state, child.reason) == (state, reason)
    assert child.target == "t00" and child.wave == "canary"


@pytest.mark.parametrize(
    ("verdict", "applied", "over"),
    [
        ("NoRegression", True, True),
        ("Inconclusive", True, True),  # a verdict: it never fails a migration, the wave goes on
        ("Unavailable", True, True),
        (None, True, False),  # the watch of a run that applied something is still to come
        (None, False, True),  # nothing applied (a new template on a migrated target): no watch
    ],
)
def test_the_analysis_of_a_child_is_over_once_its_verdict_is_in_or_it_applied_nothing(
    verdict: str | None, applied: bool, over: bool
) -> None:
    """The analysis gate's remedy is "nothing: it goes on when the verdicts are in": it must not
    wait for a verdict that is in (Inconclusive, Unavailable) or that never comes."""
    conditions = [{"type": "PerformanceVerified", "reason": verdict}] if verdict else []
    obj = _child_object("Succeeded", conditions)
    if applied:
        obj["status"]["apply"] = {"versions": [{"version": 1, "status": "applied"}]}
    child = observe_child(obj)
    assert child is not None and child.state == "succeeded" and child.verified is over


def test_the_child_is_the_template_with_the_targets_database() -> None:
    spec = _spec(targets={"names": ["db-a"], "hostKey": "host", "sslMode": "require"})
    child = build_child("fleet", "apps", UID, "db-a", "canary", spec)
    assert child["metadata"]["ownerReferences"][0]["kind"] == "DatabaseMigrationRollout"
    assert child["metadata"]["labels"]["dbmigrate.io/rollout"] == "fleet"
    parsed = DatabaseMigrationSpec.model_validate(child["spec"])
    assert (
        parsed.database.secret_ref.name == "db-a" and parsed.database.secret_ref.host_key == "host"
    )
    assert parsed.database.ssl_mode == "require"
    assert parsed.source.config_map is not None and parsed.source.config_map.name == "files"
    assert observe_child({"metadata": {"name": "x"}}) is None


def test_a_new_child_is_unplanned_and_a_new_template_never_resets_its_database_label() -> None:
    spec = _spec(targets={"names": ["db-a"]})
    child = build_child("fleet", "apps", UID, "db-a", "canary", spec)
    assert child["metadata"]["labels"][LABEL_DATABASE] == DATABASE_UNPLANNED
    ops = template_patch(child, {"dbmigrate.io/retry": "1", TEMPLATE_HASH_ANNOTATION: "old"})
    assert ops[0] == {"op": "replace", "path": "/spec", "value": child["spec"]}
    paths = [op["path"] for op in ops]
    assert "/metadata/labels/dbmigrate.io~1wave" in paths
    assert "/metadata/labels/dbmigrate.io~1database" not in paths  # the operator's to keep
    assert "/metadata/labels" not in paths  # set key by key, never replaced whole
    annotations = ops[-1]["value"]
    assert annotations["dbmigrate.io/retry"] == "1"  # the child's own are kept
    assert annotations[TEMPLATE_HASH_ANNOTATION] == template_hash(spec)


def test_the_spec_refuses_a_bad_wave_and_the_template_has_no_database() -> None:
    with pytest.raises(ValidationError):
        _spec(waves=[{"name": "a", "count": 1, "percent": 5}])
    database = {"secretRef": {"name": "x", "uriKey": "u"}}
    files = {"configMap": {"name": "f"}}
    with pytest.raises(ValidationError, match=r"template\.database"):
        _spec(template={"database": database, "source": files, "backup": {"enabled": False}})
    assert not watch_enabled(_spec().template.to_wire())
    assert watch_enabled({"watch": {"duration": "10m"}})


def test_the_summary_renders_waves_and_failures() -> None:
    spec = _spec(failureBudget={"maxFailures": 0})
    children = [_child("t00", "canary", "failed", spec, reason="ApplyFailed", message="boom")]
    lines = summary_lines("fleet", decide_rollout(_observed(spec, children=children)).status)
    assert lines[0].startswith("rollout fleet: Stopped, 0/10 succeeded")
    assert any("wave 1 canary: Failed" in line for line in lines)
    assert lines[-1] == "   failed t00 (canary): ApplyFailed: boom"


def test_a_notification_names_the_event_its_wave_and_the_totals() -> None:
    from dbmigrate.api.rollout import RolloutNotificationTarget
    from dbmigrate.controller.rollouts import notification_body, secret_selector

    spec = _spec()
    observed = _observed(spec)
    decision = decide_rollout(observed)
    (started,) = decision.events
    hook = RolloutNotificationTarget.model_validate({"name": "t", "secretRef": {"name": "h"}})
    body = notification_body(observed, decision, started, hook)
    assert (body["event"], body["wave"], body["totals"]["pending"]) == ("WaveStarted", "canary", 10)
    slack = hook.model_copy(update={"format": "slack"})
    assert notification_body(observed, decision, started, slack) == {
        "text": "dbmigrate rollout apps/fleet: wave canary started"
    }
    assert secret_selector(spec.targets) == "fleet=yes"
