"""Staging first: the promotion rule, its gate in decide, and the plan Job's staging env."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from dbmigrate.api.conditions import Condition
from dbmigrate.api.plan import ApplyResult, VersionApplyRecord
from dbmigrate.api.promotion import (
    PromotionEvidence,
    StagedVersion,
    WantedVersion,
    check_versions,
)
from dbmigrate.api.status import DatabaseMigrationStatus, JobRecord
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import Observed, SecretObservation, StagingMigration
from dbmigrate.specs.commands import step_command
from dbmigrate.specs.jobs import build_step_job
from tests.unit.controller_samples import NOW, make_plan, make_spec
from tests.unit.test_decide import PLANNED, UID, _plan_job, obs

STAGING_DB = {"requireAppliedIn": [{"secretRef": {"name": "staging-db", "uriKey": "uri"}}]}
STAGING_DM = {"requireSucceeded": [{"namespace": "staging", "name": "orders"}]}
CHECKSUM = {v: f"{v:064x}" for v in range(1, 10)}  # make_plan's checksums: version in hex


def _wanted(*versions: int) -> list[WantedVersion]:
    return [WantedVersion(v, CHECKSUM[v]) for v in versions]


def _staged(*rows: tuple[int, str, str]) -> dict[int, StagedVersion]:
    return {v: StagedVersion(v, status, checksum) for v, status, checksum in rows}


# --- the rule ---------------------------------------------------------------------------------


def test_every_version_applied_with_the_same_checksum_passes() -> None:
    staged = _staged((2, "applied", CHECKSUM[2]), (3, "applied", CHECKSUM[3]), (9, "failed", "x"))
    check = check_versions("database s", _wanted(2, 3), staged)
    assert check.passed and check.missing == [] and check.different == []


def test_missing_changed_and_rolled_back_versions_are_named() -> None:
    staged = _staged((3, "applied", "f" * 64), (4, "rolled_back", CHECKSUM[4]))
    check = check_versions("database s", _wanted(2, 3, 4), staged)
    assert not check.passed
    assert check.missing == [2]
    assert [(d.version, d.staging_status) for d in check.different] == [
        (3, "applied"),
        (4, "rolled_back"),
    ]
    assert "2 not applied there yet" in check.message
    assert "3 applied there from a different file" in check.message
    assert "4 (rolled_back) not applied there" in check.message


def test_a_problem_fails_the_check_whatever_the_versions() -> None:
    staged = _staged((2, "applied", CHECKSUM[2]))
    check = check_versions("migration s/o", _wanted(2), staged, problem="its run regressed")
    assert not check.passed and check.message.startswith("its run regressed")


def test_promotion_needs_a_source() -> None:
    with pytest.raises(ValidationError):
        make_spec(promotion={"recheckInterval": "5s"}).promotion  # noqa: B018
    assert make_spec(promotion=STAGING_DM).promotion is not None


# --- the gate ---------------------------------------------------------------------------------


def _planned(
    spec: dict[str, Any], evidence: PromotionEvidence | None = None, **kw: Any
) -> Observed:
    """orders after its plan Job succeeded (versions 2 and 3 pending), with ``evidence``."""
    record = JobRecord(
        step="plan", name="orders-plan-g1", generation=1, created_at=NOW, outcome="Succeeded",
        finished_at=NOW,
    )  # fmt: skip
    observed = obs(
        "Planning", jobs={"plan": "Succeeded"}, reports=PLANNED, spec=spec, jobs_records=[record],
        **kw,
    )  # fmt: skip
    observed = replace(observed, jobs={"plan": _plan_job("Succeeded")})
    if evidence is not None:
        status = observed.status.model_copy(update={"promotion": evidence})
        observed = replace(observed, status=status)
    return observed


def _evidence(*rows: tuple[int, str, str]) -> PromotionEvidence:
    check = check_versions("database staging-db", _wanted(2, 3), _staged(*rows))
    return PromotionEvidence(passed=check.passed, checked_at=NOW, checks=[check])


def test_a_plan_not_yet_in_staging_waits_and_names_the_versions() -> None:
    spec = {"promotion": {**STAGING_DB, "recheckInterval": "10s"}, "backup": {"enabled": False}}
    observed = _planned(spec, _evidence((2, "applied", CHECKSUM[2])))
    decision = decide(observed)
    status = decision.status
    assert (status.phase, decision.create_job) == ("WaitingForPromotion", None)
    ready = next(c for c in status.conditions if c.type == "Ready")
    reconciling = next(c for c in status.conditions if c.type == "Reconciling")
    assert (ready.status, ready.reason) == ("False", "WaitingForPromotion")
    assert (reconciling.status, reconciling.reason) == ("True", "WaitingForPromotion")
    assert "version(s) 3 not applied there yet" in (status.message or "")
    assert "database staging-db" in (status.message or "")
    assert decision.requeue_after == pytest.approx(10.0)
    assert [e.reason for e in decision.events] == ["WaitingForPromotion"]


def test_a_changed_file_waits_too_it_never_fails() -> None:
    spec = {"promotion": STAGING_DB, "backup": {"enabled": False}}
    observed = _planned(spec, _evidence((2, "applied", CHECKSUM[2]), (3, "applied", "e" * 64)))
    status = decide(observed).status
    assert status.phase == "WaitingForPromotion"
    assert "3 applied there from a different file" in (status.message or "")


def test_without_its_report_the_plan_waits_for_it() -> None:
    spec = {"promotion": STAGING_DB, "backup": {"enabled": False}}
    decision = decide(_planned(spec))
    assert decision.status.phase == "Planning"
    assert "status.promotion" in (decision.status.message or "")


def test_staging_has_them_the_run_goes_on() -> None:
    spec = {"promotion": STAGING_DB, "backup": {"enabled": False}}
    rows = ((2, "applied", CHECKSUM[2]), (3, "applied", CHECKSUM[3]))
    decision = decide(_planned(spec, _evidence(*rows)))
    assert (decision.status.phase, decision.create_job) == ("Migrating", "apply")


def _waiting(spec: dict[str, Any], attempt: int, offset: timedelta) -> Observed:
    planned = _planned(spec, _evidence())
    first = decide(planned)
    assert first.status.phase == "WaitingForPromotion"
    records = [
        JobRecord(
            step="plan",
            name="orders-plan-g1" + (f"-a{a}" if a > 1 else ""),
            generation=1,
            created_at=NOW,
            outcome="Succeeded",
            finished_at=NOW,
        )
        for a in range(1, attempt + 1)
    ]
    status = first.status.model_copy(update={"jobs": records, "promotion": _evidence()})
    status = status.model_copy(update={"plan": make_plan()})
    return replace(
        planned, status=status, jobs={"plan": _plan_job("Succeeded", attempt)}, now=NOW + offset
    )


def test_the_staging_databases_are_checked_again_by_a_new_plan_attempt() -> None:
    spec = {"promotion": {**STAGING_DB, "recheckInterval": "10s"}, "backup": {"enabled": False}}
    early = decide(_waiting(spec, 1, timedelta(seconds=4)))
    assert (early.status.phase, early.create_job) == ("WaitingForPromotion", None)
    assert early.requeue_after == pytest.approx(6.0)
    due = decide(_waiting(spec, 1, timedelta(seconds=10)))
    assert (due.status.phase, due.create_job) == ("Planning", "plan")
    assert "promotion" in due.clear_step_keys and due.status.promotion is None
    assert due.status.jobs[-1].name == "orders-plan-g1-a2"
    assert due.delete_jobs == ()  # the run's first plan Job is kept
    # the interval doubles with each attempt, and only the first and newest plan Jobs stay
    assert decide(_waiting(spec, 3, timedelta(seconds=39))).create_job is None
    third = decide(_waiting(spec, 3, timedelta(seconds=40)))
    assert third.create_job == "plan" and third.status.jobs[-1].name == "orders-plan-g1-a4"
    assert third.delete_jobs == ("orders-plan-g1-a3",)
    capped = decide(_waiting(spec, 12, timedelta(seconds=599)))
    assert capped.create_job is None and capped.requeue_after == pytest.approx(1.0)


def _staging_migration(
    phase: str = "Succeeded", versions: tuple[int, ...] = (2, 3), **kw: Any
) -> StagingMigration:
    records = [
        VersionApplyRecord(
            version=v,
            name=f"step{v}",
            checksum=kw.get("checksum", CHECKSUM[v]),
            status="applied",
            mode="transaction",
        )
        for v in versions
    ]
    apply = ApplyResult(run_id="r", database="d", status="succeeded", versions=records,
                        started_at=NOW)  # fmt: skip
    status = DatabaseMigrationStatus(
        phase=phase, observed_generation=2, apply=apply, conditions=kw.get("conditions", [])
    )
    return StagingMigration(generation=2, status=status)


def test_a_staging_migration_that_succeeded_opens_the_gate_and_is_shown() -> None:
    spec = {"promotion": STAGING_DM, "backup": {"enabled": False}}
    observed = replace(_planned(spec), staging_migrations={"staging/orders": _staging_migration()})
    decision = decide(observed)
    assert (decision.status.phase, decision.create_job) == ("Migrating", "apply")
    assert [c.passed for c in decision.status.promotion_migrations] == [True]


@pytest.mark.parametrize(
    ("staging", "words"),
    [
        (None, "migration staging/orders: not found"),
        (_staging_migration("Migrating"), "its run is Migrating"),
        (_staging_migration(versions=(2,)), "3 not applied there yet"),
        (_staging_migration(checksum="a" * 64), "applied there from a different file"),
        (
            _staging_migration(
                conditions=[
                    Condition(
                        type="PerformanceVerified",
                        status="False",
                        reason="Regressed",
                        message="p95 doubled",
                        last_transition_time=NOW,
                    )
                ]
            ),
            "regression (p95 doubled)",
        ),
    ],
)
def test_a_staging_migration_that_did_not_succeed_keeps_it_waiting(
    staging: StagingMigration | None, words: str
) -> None:
    spec = {"promotion": STAGING_DM, "backup": {"enabled": False}}
    observed = replace(_planned(spec), staging_migrations={"staging/orders": staging})
    decision = decide(observed)
    assert decision.status.phase == "WaitingForPromotion"
    assert words in (decision.status.message or "")
    assert [c.passed for c in decision.status.promotion_migrations] == [False]
    # once staging succeeds, the waiting run goes on without planning again
    healed = replace(observed, status=decision.status, staging_migrations={
        "staging/orders": _staging_migration()
    })  # fmt: skip
    assert decide(healed).create_job == "apply"


def test_manual_approval_comes_after_promotion_with_the_evidence_shown() -> None:
    spec = {"promotion": STAGING_DM, "backup": {"enabled": False}, "approval": {"mode": "Manual"}}
    observed = replace(_planned(spec), staging_migrations={"staging/orders": _staging_migration()})
    status = decide(observed).status
    assert status.phase == "WaitingForApproval"
    assert status.promotion_migrations[0].passed
    assert status.promotion_migrations[0].source == "migration staging/orders"


def test_a_missing_staging_secret_stalls_before_the_plan_job() -> None:
    spec = {"promotion": STAGING_DB}
    observed = replace(
        obs(run_gen=None, spec=spec), staging_secrets={"staging-db": SecretObservation(False)}
    )
    decision = decide(observed)
    assert decision.create_job is None
    stalled = next(c for c in decision.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "SecretNotFound")
    assert "staging-db" in stalled.message


# --- the plan Job -----------------------------------------------------------------------------


def test_the_plan_job_reaches_staging_through_its_secret_only() -> None:
    spec = make_spec(
        promotion={
            "requireAppliedIn": [
                {"secretRef": {"name": "staging-db", "uriKey": "uri"}, "sslMode": "require"},
                {"secretRef": {"name": "staging-2", "hostKey": "host"}},
            ]
        }
    )
    command = step_command("plan", resource="orders", namespace="apps", run_id="r", spec=spec)
    assert command[-4:] == [
        "--require-applied-in",
        "staging-db",
        "--require-applied-in",
        "staging-2",
    ]
    job = build_step_job("orders", "apps", UID, 1, "plan", spec, "r", "img")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DBMIGRATE_STAGING_1_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "staging-db", "key": "uri"
    }  # fmt: skip
    assert env["DBMIGRATE_STAGING_1_PGSSLMODE"]["value"] == "require"
    assert env["DBMIGRATE_STAGING_2_PGHOST"]["valueFrom"]["secretKeyRef"]["name"] == "staging-2"
    apply = build_step_job("orders", "apps", UID, 1, "apply", spec, "r", "img",
                           status=DatabaseMigrationStatus(plan=make_plan()))  # fmt: skip
    apply_env = apply["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not any(e["name"].startswith("DBMIGRATE_STAGING_") for e in apply_env)
