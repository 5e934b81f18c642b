"""The promotion gate: staging first, then production (``spec.promotion``).

It is the first gate after a sound plan, before approval, window and lock: a run whose pending
versions have not succeeded in every staging source waits in ``WaitingForPromotion`` (reason
``WaitingForPromotion``, the missing or different versions named in the message) and never
fails for it. Two kinds of sources, one rule (``api.promotion.check_versions``):

* staging databases (``requireAppliedIn``): the plan Job checked them and reported
  ``status.promotion``. While one has not passed, the run plans again after the recheck
  interval (``spec.promotion.recheckInterval``, doubling per attempt up to ``MAX_RECHECK``), as a
  new attempt of its plan Job; only the first and the newest plan Jobs of a run are kept.
* staging DatabaseMigrations (``requireSucceeded``): the operator reads them
  (``Observed.staging_migrations``) and judges them here on every reconcile: Succeeded for their
  current generation, every pending version applied (from their plan and apply reports, minus
  what their rollback undid) with the same checksum, and no ``PerformanceVerified`` condition
  with reason ``Regressed``. The verdicts are shown in ``status.promotionMigrations``.

With ``approval.mode: Manual`` the approver sees this evidence in ``status.promotion`` and
``status.promotionMigrations`` once the gate has opened. After the backup the gate is not asked
again: the run has started changing things.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from dbmigrate.api.conditions import PERFORMANCE_VERIFIED, Reason
from dbmigrate.api.durations import InvalidDuration, parse_duration
from dbmigrate.api.promotion import (
    PromotionCheck,
    StagedVersion,
    WantedVersion,
    check_versions,
    summary,
)
from dbmigrate.api.spec import DatabaseMigrationSpec, MigrationRef
from dbmigrate.api.status import TERMINAL_PHASES, DatabaseMigrationStatus
from dbmigrate.api.stepnames import REPORTS, STEP_BACKUP, STEP_PLAN
from dbmigrate.decision.gate_rules import backup_done
from dbmigrate.decision.model import StagingMigration, status_field
from dbmigrate.decision.outcome import Ctx, Outcome
from dbmigrate.decision.transitions import prerequisite_problem, stalled, start_step
from dbmigrate.specs.naming import job_name

MAX_RECHECK = 600.0
DEFAULT_RECHECK = 30.0
# the performance watch's verdict on a DatabaseMigration (its condition type and reasons; the
# rollout's analysis gate reads them too), spelled once in api.conditions
REGRESSED = Reason.REGRESSED
NO_REGRESSION = Reason.NO_REGRESSION
PLAN_KEYS = tuple(status_field(key) for key in REPORTS[STEP_PLAN])


@dataclass(frozen=True)
class PromotionVerdict:
    """Whether the gate is open, the operator's checks, and when to look again."""

    passed: bool
    message: str
    migrations: list[PromotionCheck]
    requeue_after: float | None = None


def applies(ctx: Ctx) -> bool:
    """Whether the gate is asked: spec.promotion is set and the backup has not happened."""
    return ctx.observed.spec.promotion is not None and not ctx.succeeded(STEP_BACKUP)


def needs_staging_migrations(spec: DatabaseMigrationSpec, status: DatabaseMigrationStatus) -> bool:
    """Whether the reconcile must read the staging DatabaseMigrations (the gate may be asked)."""
    if spec.promotion is None or not spec.promotion.require_succeeded:
        return False
    return status.phase not in TERMINAL_PHASES and not backup_done(status)


def recheck_seconds(ctx: Ctx) -> float:
    """How long after this attempt's plan the staging databases are checked again."""
    promotion = ctx.observed.spec.promotion
    try:
        base = parse_duration(promotion.recheck_interval).total_seconds() if promotion else 0
    except InvalidDuration:
        base = DEFAULT_RECHECK
    base = base or DEFAULT_RECHECK
    return float(min(base * 2 ** (ctx.attempt(STEP_PLAN) - 1), MAX_RECHECK))


def staged_by(migration: StagingMigration) -> dict[int, StagedVersion]:
    """The versions a staging DatabaseMigration's reports say are applied (or undone)."""
    status = migration.status
    staged: dict[int, StagedVersion] = {}
    if status.plan is not None:
        for done in status.plan.applied:
            staged[done.version] = StagedVersion(done.version, "applied", done.checksum)
    if status.apply is not None:
        for record in status.apply.versions:
            staged[record.version] = StagedVersion(record.version, record.status, record.checksum)
    if status.rollback is not None:
        for text in status.rollback.versions_marked_rolled_back:
            if text.isdigit() and int(text) in staged:
                staged[int(text)] = replace(staged[int(text)], status="rolled_back")
    return staged


def migration_check(
    ref: MigrationRef, migration: StagingMigration | None, wanted: list[WantedVersion]
) -> PromotionCheck:
    """Judge one staging DatabaseMigration (``requireSucceeded``)."""
    source = f"migration {ref.namespace}/{ref.name}"
    if migration is None:
        return check_versions(source, wanted, {}, problem="not found")
    status = migration.status
    problem: str | None = None
    if status.phase != "Succeeded" or status.observed_generation != migration.generation:
        problem = (
            f"its run is {status.phase} (generation {status.observed_generation}), not Succeeded"
        )
    watch = next((c for c in status.conditions if c.type == PERFORMANCE_VERIFIED), None)
    if watch is not None and watch.reason == REGRESSED:
        problem = f"its performance watch found a regression ({watch.message or REGRESSED})"
    return check_versions(source, wanted, staged_by(migration), problem=problem)


def evaluate(ctx: Ctx) -> PromotionVerdict:
    """The gate's verdict for this run's plan."""
    promotion, plan = ctx.observed.spec.promotion, ctx.base.plan
    assert promotion is not None and plan is not None
    wanted = [WantedVersion(p.version, p.checksum) for p in plan.pending]
    migrations = [
        migration_check(
            ref, ctx.observed.staging_migrations.get(f"{ref.namespace}/{ref.name}"), wanted
        )
        for ref in promotion.require_succeeded
    ]
    checks = list(migrations)
    evidence = ctx.base.promotion
    if promotion.require_applied_in:
        if evidence is None:
            checks.append(
                PromotionCheck(
                    source="staging databases",
                    passed=False,
                    message="the plan step did not report status.promotion",
                )
            )
        else:
            checks += evidence.checks
    failing = [c for c in checks if not c.passed]
    if not failing:
        return PromotionVerdict(True, "every pending version succeeded in staging", migrations)
    versions = ", ".join(str(w.version) for w in wanted)
    message = (
        f"waiting for promotion: versions {versions} must succeed in staging first; "
        f"{summary(failing)}. It goes on by itself once they have (see status.promotion)"
    )
    return PromotionVerdict(False, message, migrations, requeue_after=_requeue(ctx))


def _databases_failing(ctx: Ctx) -> bool:
    evidence = ctx.base.promotion
    promotion = ctx.observed.spec.promotion
    return bool(promotion and promotion.require_applied_in) and (
        evidence is None or not evidence.passed
    )


def _replan_in(ctx: Ctx) -> float:
    """Seconds until the staging databases are checked again (0: due now)."""
    job = ctx.job(STEP_PLAN)
    finished = (job.finished_at if job is not None else None) or ctx.now
    due = finished + timedelta(seconds=recheck_seconds(ctx))
    return max((due - ctx.now).total_seconds(), 0.0)


def _requeue(ctx: Ctx) -> float:
    if _databases_failing(ctx):
        return max(_replan_in(ctx), 1.0)
    return recheck_seconds(ctx)


def replan_due(ctx: Ctx) -> bool:
    """Whether the staging databases failed their check and are due another (a new plan)."""
    return _databases_failing(ctx) and _replan_in(ctx) == 0.0


def replan(ctx: Ctx) -> tuple[Ctx, Outcome, tuple[str, ...]]:
    """A new attempt of the plan Job, which checks the staging databases again; with the plan
    Job to delete (the attempt before, unless it is the run's first: a run keeps two)."""
    problem = prerequisite_problem(ctx)
    if problem is not None:
        return ctx, stalled(ctx, "WaitingForPromotion", *problem), ()
    previous = ctx.attempt(STEP_PLAN)
    cleared = ctx.base.model_copy(update=dict.fromkeys(PLAN_KEYS))
    again = replace(ctx, base=cleared, clear_step_keys=PLAN_KEYS, new_attempt=STEP_PLAN)
    message = "checking the staging databases again: planning once more"
    name = job_name(ctx.observed.name, STEP_PLAN, ctx.run_generation, previous)
    return again, start_step(again, STEP_PLAN, message), (name,) if previous > 1 else ()


def waiting(ctx: Ctx, verdict: PromotionVerdict) -> Outcome:
    """The run waits at the promotion gate."""
    return Outcome.waiting(
        phase="WaitingForPromotion", reason=Reason.WAITING_FOR_PROMOTION,
        message=verdict.message, updates={"promotion_migrations": verdict.migrations},
        requeue_after=verdict.requeue_after,
    )  # fmt: skip
