"""The files are read again before the first change: after an approval, and after the apply
refused a changed plan (which never scales a workload down nor rolls back)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import cast

from dbmigrate.api.conditions import find_condition
from dbmigrate.api.evidence import BackupEvidence
from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_PLAN_CHANGED
from dbmigrate.api.plan import ApplyResult
from dbmigrate.api.status import JobRecord, Step, StepExit
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import Decision, JobObservation, JobState, Observed
from tests.unit.controller_samples import NOW, PLAN_HASH, make_apply
from tests.unit.test_decide import MANUAL, PLANNED, SCALE, obs, report, settle

APPROVE = "dbmigrate.io/approve"
NEW_HASH = "b" * 64


def _job(step: str, state: str, attempt: int = 1, exit_code: int | None = None) -> JobObservation:
    name = f"orders-{step}-g1" + (f"-a{attempt}" if attempt > 1 else "")
    return JobObservation(
        step=step,  # type: ignore[arg-type]
        name=name,
        generation=1,
        state=cast(JobState, state),
        finished_at=None if state == "Running" else NOW,
        attempt=attempt,
        message="PodFailurePolicy: Container step for pod x failed" if state == "Failed" else "",
        exit_code=exit_code,
    )


def _record(step: str, attempt: int = 1, minutes: int = 0) -> JobRecord:
    name = f"orders-{step}-g1" + (f"-a{attempt}" if attempt > 1 else "")
    return JobRecord(
        step=step,
        name=name,
        generation=1,
        created_at=NOW - timedelta(minutes=60 - minutes),
    )


def _plans(observed: Observed, plan_hash: str) -> Observed:
    """``observed`` after a plan Job reported a plan of ``plan_hash``."""
    reports = {key: report(key) for key in PLANNED}
    reports["plan"] = reports["plan"].model_copy(update={"plan_hash": plan_hash})
    return replace(observed, status=observed.status.model_copy(update=reports))


def _next(observed: Observed, decision: Decision, **jobs: JobObservation) -> Observed:
    settled = settle(observed, decision)
    merged = {**settled.jobs, **{cast(Step, k): v for k, v in jobs.items()}}
    return replace(settled, jobs=merged, now=settled.now + timedelta(seconds=5))


def _waiting_for_approval(annotation: str | None) -> Observed:
    observed = obs(
        "WaitingForApproval",
        spec=MANUAL,
        jobs={"plan": "Succeeded"},
        jobs_records=[_record("plan")],
        annotations={APPROVE: annotation} if annotation else {},
    )
    return replace(observed, jobs={"plan": _job("plan", "Succeeded")})


def test_an_approval_reads_the_files_again_and_a_changed_hash_waits_for_approval() -> None:
    first = decide(_waiting_for_approval(PLAN_HASH))
    status = first.status
    assert (status.phase, first.create_job) == ("Planning", "plan")
    assert status.jobs[-1].name == "orders-plan-g1-a2"
    assert status.plan is None and "plan" in first.clear_step_keys
    assert status.approval is not None and status.approval.approved_hash == PLAN_HASH
    assert first.scale_down == () and first.create_job != "backup"

    # the new attempt read files that hash differently: back to waiting, with the new command
    replanned = _plans(
        _next(_waiting_for_approval(PLAN_HASH), first, plan=_job("plan", "Succeeded", 2)),
        NEW_HASH,
    )
    refused = decide(replanned)
    status = refused.status
    assert (status.phase, refused.create_job) == ("WaitingForApproval", None)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None and ready.reason == "ApprovalRefused"
    assert status.approval is not None and status.approval.plan_hash == NEW_HASH
    command = f"kubectl annotate databasemigration orders -n apps {APPROVE}={NEW_HASH} --overwrite"
    assert status.approval.how_to_approve == command
    assert command in (status.message or "") and status.approval.approved_hash is None
    assert refused.events and refused.events[0].type == "Warning"

    # approving the new hash reads them again once more; the same hash then goes to the backup
    approved = replace(_next(replanned, refused), annotations={APPROVE: NEW_HASH})
    third = decide(approved)
    assert (third.status.phase, third.create_job) == ("Planning", "plan")
    assert third.status.jobs[-1].name == "orders-plan-g1-a3"
    same = _plans(_next(approved, third, plan=_job("plan", "Succeeded", 3)), NEW_HASH)
    backup = decide(same)
    assert (backup.status.phase, backup.create_job) == ("BackingUp", "backup")
    assert backup.status.approval is not None
    assert backup.status.approval.approved_hash == NEW_HASH


def test_an_unchanged_plan_goes_on_to_the_backup_after_the_second_reading() -> None:
    first = decide(_waiting_for_approval(PLAN_HASH))
    again = _plans(
        _next(_waiting_for_approval(PLAN_HASH), first, plan=_job("plan", "Succeeded", 2)),
        PLAN_HASH,
    )
    decision = decide(again)
    assert (decision.status.phase, decision.create_job) == ("BackingUp", "backup")
    assert decision == decide(again)  # a restart decides the same


def _refusing_apply(*, said: int | None, pod_exit: int | None) -> Observed:
    apply = make_apply("failed").model_copy(
        update={
            "error": f"the plan changed since it was approved: approved hash {PLAN_HASH}, "
            f"current hash {NEW_HASH}; review and approve the new plan",
            "error_code": "PlanChangedError",
            "versions": [],
        }
    )
    records = [_record("plan"), _record("backup", minutes=10), _record("apply", minutes=20)]
    observed = obs(
        "Migrating",
        spec={**MANUAL, **SCALE},
        jobs_records=records,
        approval={"required": True, "planHash": PLAN_HASH, "approvedHash": PLAN_HASH},
        apply=ApplyResult.model_validate(apply.to_wire()),
    )
    step_exit = None
    if said is not None:
        step_exit = StepExit(job="orders-apply-g1", step="apply", exit_code=said, finished_at=NOW)
    return replace(
        observed,
        status=observed.status.model_copy(update={"step_exit": step_exit}),
        jobs={
            "plan": _job("plan", "Succeeded"),
            "backup": _job("backup", "Succeeded"),
            "apply": _job("apply", "Failed", exit_code=pod_exit),
        },
    )


def test_an_apply_that_refused_a_changed_plan_plans_again_without_any_rollback() -> None:
    for said, pod_exit in ((EXIT_PLAN_CHANGED, None), (None, EXIT_PLAN_CHANGED)):
        observed = _refusing_apply(said=said, pod_exit=pod_exit)
        decision = decide(observed)
        status = decision.status
        assert (status.phase, decision.create_job) == ("Planning", "plan")
        assert decision.scale_down == () and decision.scale_up == ()
        assert status.scaled_workloads == [] and status.failed_step is None
        assert find_condition(status.conditions, "Migrated") is None
        message = status.message or ""
        assert "refused" in message and "Nothing was changed" in message
        assert status.jobs[-1].name == "orders-plan-g1-a2"
        assert decision.events[0].type == "Warning"


def test_after_a_refusal_the_new_plan_is_backed_up_and_applied_as_new_attempts() -> None:
    observed = _refusing_apply(said=EXIT_PLAN_CHANGED, pod_exit=EXIT_PLAN_CHANGED)
    replan = decide(observed)
    planned = _plans(_next(observed, replan, plan=_job("plan", "Succeeded", 2)), NEW_HASH)
    waiting = decide(planned)
    assert waiting.status.phase == "WaitingForApproval"
    assert NEW_HASH in (waiting.status.message or "")
    approved = replace(_next(planned, waiting), annotations={APPROVE: NEW_HASH})
    third = decide(approved)
    assert third.status.jobs[-1].name == "orders-plan-g1-a3"
    again = _plans(_next(approved, third, plan=_job("plan", "Succeeded", 3)), NEW_HASH)
    backup = decide(again)
    # the backup predates this plan: taken again before the new plan is applied
    assert (backup.status.phase, backup.create_job) == ("BackingUp", "backup")
    assert backup.status.jobs[-1].name == "orders-backup-g1-a2"
    backed = _next(again, backup, backup=_job("backup", "Succeeded", 2))
    evidence = report("backup")
    assert isinstance(evidence, BackupEvidence)
    backed = replace(backed, status=backed.status.model_copy(update={"backup": evidence}))
    apply = decide(backed)
    assert (apply.status.phase, apply.create_job) == ("Migrating", "apply")
    assert apply.status.jobs[-1].name == "orders-apply-g1-a2"
    assert "apply" in apply.clear_step_keys and apply.status.apply is None
    assert apply == decide(backed)


def test_an_apply_that_failed_after_changes_still_rolls_back() -> None:
    observed = _refusing_apply(said=EXIT_FAILED, pod_exit=EXIT_FAILED)
    decision = decide(observed)
    assert decision.status.phase == "RollingBack"
    assert decision.scale_down  # the application is stopped before the rollback
