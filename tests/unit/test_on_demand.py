"""The pure decisions of a rollback on demand (``decision.on_demand``, ``decision.requested``)
and of pause and resume (``decision.pause``): each outcome of a request, its refusals by name,
the migration's rollback with the request's strategy, its RollbackRequested end, and a paused
resource starting nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from dbmigrate.api.conditions import find_condition
from dbmigrate.api.dataloss import DataLoss, RollbackCheck, TableLoss
from dbmigrate.api.labels import PAUSE_ANNOTATION
from dbmigrate.api.rollback_request import MigrationRollbackSpec, MigrationRollbackStatus
from dbmigrate.api.status import DatabaseMigrationStatus, RequestedRollback
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import Observed
from dbmigrate.decision.on_demand import (
    CheckJob,
    MigrationView,
    RequestObserved,
    decide_request,
)
from dbmigrate.decision.requested import requested_cause, with_requested_rollback
from tests.unit.controller_samples import NOW, make_apply, make_backup, make_identity, make_spec
from tests.unit.test_decide import SCALE as SCALE_SPEC
from tests.unit.test_decide import obs

pytestmark = pytest.mark.unit

SCALE = [{"kind": "Deployment", "name": "web"}]


def _migration(phase: str = "Succeeded", **status: Any) -> MigrationView:
    fields: dict[str, Any] = {
        "phase": phase,
        "observed_generation": 1,
        "run_id": "orders-g1-3f2c1a9e",
        "apply": make_apply(),
        "backup": make_backup(),
        "database": make_identity(),
        **status,
    }
    spec = make_spec(rollback={"strategy": "DropCreatedObjects", "scaleDown": SCALE})
    return MigrationView("orders", 1, spec, DatabaseMigrationStatus(**fields))


def _check(
    loss: bool = False, problems: tuple[str, ...] = (), request: str = "undo"
) -> RollbackCheck:
    tables = [TableLoss(table="public.notes", rows=2)] if loss else []
    return RollbackCheck(
        request=request, strategy="DropCreatedObjects", problems=list(problems), versions=["2"],
        data_loss=DataLoss(checked=True, loss_found=loss, tables=tables, summary="s"),
        checked_at=NOW,
    )  # fmt: skip


def _observed(
    migration: MigrationView | None = None, job: str | None = None, **spec: Any
) -> RequestObserved:
    return RequestObserved(
        name="undo", namespace="apps", generation=1,
        spec=MigrationRollbackSpec.model_validate({"migration": "orders", **spec}),
        status=MigrationRollbackStatus(), created_at=NOW, now=NOW + timedelta(seconds=5),
        creator="kubectl-create", migration=migration,
        check_job=CheckJob(name="undo-check", state=job) if job else None,  # type: ignore[arg-type]
        replicas={"Deployment/web": 3},
    )  # fmt: skip


def test_dry_run_first_always_the_check_job_before_anything() -> None:
    first = decide_request(_observed(_migration()))
    assert first.create_check_job and first.start_rollback is None
    assert first.status.phase == "Planning" and first.status.requested_by == "kubectl-create"
    plan = first.status.plan
    assert plan is not None and plan.strategy == "DropCreatedObjects" and plan.versions == ["2"]
    assert [(w.kind, w.name, w.from_replicas, w.to) for w in plan.workloads] == [
        ("Deployment", "web", 3, 0)
    ]
    waiting = decide_request(_observed(_migration(), job="Running"))
    assert waiting.status.phase == "Planning" and not waiting.create_check_job


@pytest.mark.parametrize(
    ("spec", "check", "phase", "starts"),
    [
        ({"dryRun": True}, _check(loss=True), "Planned", False),
        ({}, _check(loss=True), "AwaitingConfirmation", False),
        ({"confirm": "wrong"}, _check(loss=True), "AwaitingConfirmation", False),
        ({"confirm": "orders"}, _check(loss=True), "Running", True),
        ({}, _check(loss=False), "Running", True),
        ({}, _check(problems=("version 3 was applied on top by other-g1",)), "Refused", False),
        ({}, _check(loss=False, request="another"), "Planning", False),  # not ours yet
    ],
)
def test_after_the_check(
    spec: dict[str, Any], check: RollbackCheck, phase: str, starts: bool
) -> None:
    done = decide_request(_observed(_migration(rollback_check=check), job="Succeeded", **spec))
    assert done.status.phase == phase, done.status.message
    assert (done.start_rollback is not None) == starts
    if phase == "AwaitingConfirmation":
        assert done.status.confirm_required and done.status.how_to_confirm is not None
        assert '{"spec":{"confirm":"orders"}}' in done.status.how_to_confirm
    if starts:
        assert done.start_rollback == RequestedRollback(
            request="undo", strategy="DropCreatedObjects", scale_down=make_spec(
                rollback={"scaleDown": SCALE}).rollback.scale_down, requested_by="kubectl-create",
        )  # fmt: skip


@pytest.mark.parametrize(
    ("migration", "spec", "named"),
    [
        (None, {}, "DatabaseMigration orders was not found"),
        (_migration("Migrating"), {}, "has not finished (phase Migrating)"),
        (_migration("RolledBack"), {}, "ended RolledBack"),
        (_migration(backup=None), {"strategy": "RestoreBackup"}, "recorded none"),
    ],
)
def test_refusals_name_their_cause(
    migration: MigrationView | None, spec: dict[str, Any], named: str
) -> None:
    refused = decide_request(_observed(migration, **spec))
    assert refused.status.phase == "Refused" and named in (refused.status.message or "")
    assert not refused.create_check_job and refused.start_rollback is None


def test_another_run_of_the_same_database_refuses() -> None:
    busy = replace(_observed(_migration()), busy=("apps/other (Migrating)",))
    assert "apps/other (Migrating)" in (decide_request(busy).status.message or "")


def test_the_running_request_ends_with_the_migration() -> None:
    dm = _migration("RollingBack", rollback_request="undo")
    running = decide_request(
        replace(_observed(dm), status=MigrationRollbackStatus(phase="Running"))
    )
    assert running.status.phase == "Running"
    rolled = decide_request(_observed(_migration("RolledBack", rollback_request="undo")))
    assert rolled.status.phase == "Succeeded" and rolled.status.finished_at is not None
    ended = replace(_observed(_migration()), status=rolled.status)
    assert decide_request(ended).status == rolled.status  # the audit record never changes


def test_a_paused_migration_holds_the_request() -> None:
    dm = replace(_migration(), annotations={PAUSE_ANNOTATION: "yes"})
    held = decide_request(_observed(dm))
    assert not held.create_check_job and "paused" in (held.status.message or "")


def _dm(phase: str, **status: Any) -> Observed:
    return Observed(
        name="orders", namespace="apps", uid="u", generation=1, now=NOW,
        spec=make_spec(rollback={"strategy": "None"}),
        status=DatabaseMigrationStatus(phase=phase, observed_generation=1, **status),
    )  # fmt: skip


def test_the_migration_rolls_back_with_the_request_and_says_it_was_asked() -> None:
    asked = RequestedRollback(
        request="undo", strategy="RestoreBackup", scale_down=[], reason="slow"
    )
    observed = with_requested_rollback(_dm("RollingBack", requested_rollback=asked))
    assert observed.spec.rollback.strategy == "RestoreBackup"
    assert (
        with_requested_rollback(_dm("Succeeded", requested_rollback=asked)).spec.rollback.strategy
        == "None"
    )
    status = DatabaseMigrationStatus(rollback_request="undo", requested_rollback=asked)
    reason, message = requested_cause(status) or ("", "")
    assert (
        reason == "RollbackRequested" and "MigrationRollback undo" in message and "slow" in message
    )


def test_pause_starts_nothing_and_resume_goes_on() -> None:
    pending = _dm("Pending")
    pending = replace(pending, status=DatabaseMigrationStatus(), spec=make_spec())
    paused = decide(replace(pending, annotations={PAUSE_ANNOTATION: "incident"}))
    assert paused.create_job is None and paused.status.phase == "Pending"
    held = find_condition(paused.status.conditions, "ReconciliationPaused")
    assert held is not None and (held.status, held.reason) == ("True", "PauseAnnotation")
    assert [e.reason for e in paused.events] == ["PauseAnnotation"]
    again = decide(replace(pending, annotations={PAUSE_ANNOTATION: "x"}, status=paused.status))
    assert again.events == () and again.create_job is None  # said once
    everywhere = decide(replace(pending, operator_paused=True))
    assert everywhere.create_job is None and everywhere.events[0].reason == "OperatorPaused"
    resumed = decide(replace(pending, status=paused.status))
    assert resumed.create_job == "plan"
    lifted = find_condition(resumed.status.conditions, "ReconciliationPaused")
    assert lifted is not None and (lifted.status, lifted.reason) == ("False", "Resumed")
    assert "Resumed" in [e.reason for e in resumed.events]


@pytest.mark.parametrize(
    ("phase", "step"),
    [
        ("Planning", "plan"),
        ("BackingUp", "backup"),
        ("Migrating", "apply"),
        ("Verifying", "verify"),
        ("RollingBack", "rollback"),
    ],
)
def test_paused_at_each_step_boundary_the_next_step_waits(phase: str, step: str) -> None:
    """The step of ``phase`` has finished (and reported): unpaused, the run moves on; paused,
    nothing is created, scaled or moved until the pause is lifted."""
    finished = obs(phase, jobs={step: "Succeeded"}, spec=SCALE_SPEC)
    moving = decide(finished)
    assert moving.status.phase != phase or moving.create_job or moving.scale_up, phase
    held = decide(replace(finished, annotations={PAUSE_ANNOTATION: "incident"}))
    assert (held.create_job, held.scale_down, held.scale_up) == (None, (), ())
    assert held.status.phase == phase
    assert decide(replace(finished, status=held.status)).status.phase == moving.status.phase


def test_the_plan_names_the_indexes_the_rollback_builds_again() -> None:
    check = _check().model_copy(update={"indexes_to_rebuild": ["public.idx_orders_at"]})
    done = decide_request(_observed(_migration(rollback_check=check), job="Succeeded", dryRun=True))
    plan = done.status.plan
    assert done.status.phase == "Planned" and plan is not None
    assert plan.rebuild == ["public.idx_orders_at"] and plan.versions == ["2"]
