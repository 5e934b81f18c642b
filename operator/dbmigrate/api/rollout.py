"""The DatabaseMigrationRollout resource: one migration rolled out to many databases, in waves.

A rollout holds one migration spec (``template``: every field of a DatabaseMigration's spec but
``database``) and its targets: Secrets chosen by a label selector (looked at again on every
reconcile, so a tenant's Secret created later gets the migration) and/or named in a list. Each
target gets one child DatabaseMigration, owned by the rollout, created only as its wave and
``maxParallel`` allow; the child does everything a DatabaseMigration does (its lock, backup,
verification, rollback, Events). Waves run in order, Argo Rollouts style: a wave takes targets by
Secret labels, by count or by percentage of the targets not in an earlier wave; after a wave, an
optional ``pause`` (a soak of ``duration``, or ``{}``: until ``kubectl dbmigrate promote``, the
annotation ``dbmigrate.io/promote``), and, when the template has a performance watch, the
analysis gate (every child of the wave ``PerformanceVerified`` with reason ``NoRegression``). A
failure budget per wave and overall stops the rollout when exceeded.

The status is what a person reads: totals, the current wave and its state, the first failed
targets with their reasons, kstatus conditions; ``summary_lines`` renders it as text.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, create_model, model_validator

from dbmigrate.api.base import ApiModel
from dbmigrate.api.conditions import Condition
from dbmigrate.api.spec import (
    DURATION_PATTERN,
    URI_OR_HOST_RULE,
    ZERO_DURATION_PATTERN,
    DatabaseMigrationSpec,
    SecretKeys,
    UrlSecretRef,
)

ROLLOUT_KIND = "DatabaseMigrationRollout"
ROLLOUT_PLURAL = "databasemigrationrollouts"
MAX_FAILED_LISTED = 20
MAX_WAVES = 20

# The template: a DatabaseMigration's spec without ``database`` (each target's Secret names it),
# built from the DatabaseMigrationSpec model so every field added there is in the template too.
_TEMPLATE_FIELDS: dict[str, Any] = {
    name: (info.annotation, info)
    for name, info in DatabaseMigrationSpec.model_fields.items()
    if name != "database"
}


class _TemplateBase(ApiModel):
    """The DatabaseMigration spec's own rules (CEL) apply to the template too."""

    model_config = DatabaseMigrationSpec.model_config


if TYPE_CHECKING:
    MigrationTemplate = _TemplateBase
else:
    MigrationTemplate = create_model(
        "MigrationTemplate",
        __base__=_TemplateBase,
        __doc__="The migration every target gets: a DatabaseMigration spec without database.",
        **_TEMPLATE_FIELDS,
    )


class TargetSecrets(SecretKeys):
    """Which Secrets are targets, and how a target's Secret names its database."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                dict(URI_OR_HOST_RULE),
                {
                    "rule": "has(self.selector) || (has(self.names) && size(self.names) > 0)",
                    "message": "targets need a selector (Secret labels) or names, or both",
                },
            ]
        }
    )
    selector: dict[str, str] | None = Field(
        default=None,
        description="Secrets in this namespace with all these labels are targets (looked at "
        "again on every reconcile: a Secret created later gets the migration).",
    )
    names: list[str] = Field(
        default_factory=list, max_length=1000, description="Secrets named as targets."
    )
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="libpq sslmode of every target's Jobs."
    )


class FailureBudget(ApiModel):
    """How many failed targets are tolerated before no new target is started."""

    max_failures: int | None = Field(
        default=None, ge=0, description="Failed targets tolerated (more stops the rollout)."
    )
    max_failure_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Failed targets tolerated, in percent of the targets (rounded down).",
    )


class PauseSpec(ApiModel):
    """A pause after a wave: a soak of ``duration``, or (empty) until promoted by a person."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!has(self.duration) || (self.duration.matches('{DURATION_PATTERN}')"
                    f" && !self.duration.matches('{ZERO_DURATION_PATTERN}'))",
                    "message": "duration must be a positive duration such as 30s, 10m or 1h",
                }
            ]
        }
    )
    duration: str | None = Field(
        default=None,
        max_length=32,
        description="Soak this long after the wave; unset: wait for the annotation "
        "dbmigrate.io/promote (kubectl dbmigrate promote).",
    )


class WaveSpec(ApiModel):
    """One wave: which targets, how many at once, what may fail, and the pause after it."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40, description="Name of the wave."
    )
    selector: dict[str, str] | None = Field(
        default=None, description="Targets whose Secret has all these labels."
    )
    count: int | None = Field(default=None, ge=1, description="At most this many targets.")
    percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="This percentage (rounded up) of the targets not in an earlier wave.",
    )
    max_parallel: int = Field(
        default=5, ge=1, le=500, description="Targets of this wave migrating at the same time."
    )
    failure_budget: FailureBudget | None = Field(
        default=None, description="The wave's own failure budget (of its targets)."
    )
    pause: PauseSpec | None = Field(
        default=None, description="A pause after this wave (not after the last one)."
    )

    @model_validator(mode="after")
    def _one_choice(self) -> WaveSpec:
        if self.count is not None and self.percent is not None:
            raise ValueError(f"wave {self.name}: set count or percent, not both")
        return self


class RolloutNotificationTarget(ApiModel):
    """A webhook told when a wave starts or ends, and when the rollout completes or stops."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Name of the target."
    )
    secret_ref: UrlSecretRef = Field(
        description="The Secret key holding the webhook URL; the URL is never logged or shown."
    )
    format: Literal["json", "slack"] = Field(
        default="json",
        description='json: {"kind", "namespace", "name", "event", "wave", "message", "totals"}; '
        'slack: a {"text": ...} message.',
    )


class DatabaseMigrationRolloutSpec(ApiModel):
    """One migration, rolled out to many databases in waves."""

    template: MigrationTemplate = Field(
        description="The migration of every target: a DatabaseMigration spec without database."
    )
    targets: TargetSecrets = Field(description="The target databases: one Secret each.")
    waves: list[WaveSpec] = Field(
        min_length=1,
        max_length=MAX_WAVES,
        description="The waves, in order; the last one also takes every target left.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(w, self.exists_one(v, v.name == w.name))",
                    "message": "wave names must be unique",
                }
            ]
        },
    )
    failure_budget: FailureBudget = Field(
        default_factory=FailureBudget,
        description="The whole rollout's failure budget; unset fields: no limit.",
        json_schema_extra={"default": {}},
    )
    rollback_on_failure: bool = Field(
        default=False,
        description="When a budget is exceeded, also roll back the targets of the failing wave "
        "that succeeded (annotation dbmigrate.io/rollback on their DatabaseMigration).",
    )
    notifications: list[RolloutNotificationTarget] = Field(
        default_factory=list,
        max_length=10,
        description="Webhooks told when a wave starts or ends and when the rollout completes or "
        "stops (each target's own migration notifies through template.notifications).",
    )


WaveState = Literal[
    "Pending", "Running", "Analyzing", "Soaking", "WaitingForPromote", "Succeeded", "Failed"
]
RolloutPhase = Literal["Progressing", "Paused", "Completed", "Stopped"]


class Totals(ApiModel):
    """Targets by state (the current generation's children)."""

    total: int = Field(default=0, ge=0, description="Targets.")
    succeeded: int = Field(default=0, ge=0, description="Children that Succeeded.")
    running: int = Field(default=0, ge=0, description="Children running a step.")
    waiting: int = Field(default=0, ge=0, description="Children waiting at a gate or stalled.")
    failed: int = Field(default=0, ge=0, description="Children Failed or RolledBack.")
    pending: int = Field(default=0, ge=0, description="Targets not started yet.")


class WaveStatus(ApiModel):
    """One wave as it stands."""

    name: str = Field(description="Name of the wave.")
    state: WaveState = Field(default="Pending", description="Where the wave is.")
    totals: Totals = Field(default_factory=Totals, description="Its targets by state.")
    started_at: datetime | None = Field(default=None, description="When its first child began.")
    finished_at: datetime | None = Field(
        default=None, description="When its last child ended (the soak counts from here)."
    )
    paused_until: datetime | None = Field(default=None, description="End of the soak.")


class FailedTarget(ApiModel):
    """A target whose migration failed."""

    target: str = Field(description="The target's Secret.")
    migration: str = Field(description="Its DatabaseMigration.")
    wave: str = Field(description="Its wave.")
    reason: str = Field(description="The Stalled condition's reason (the cause).")
    message: str = Field(max_length=1024, description="What failed.")


class DatabaseMigrationRolloutStatus(ApiModel):
    """How the rollout is doing, in the words a person wants to read."""

    phase: RolloutPhase = Field(default="Progressing", description="Where the rollout is.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation acted on last."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Reconciling and Stalled (kstatus)."
    )
    message: str | None = Field(default=None, description="A one-line summary.")
    template_hash: str | None = Field(
        default=None, description="Hash of the template the children are brought to."
    )
    current_wave: int = Field(default=0, ge=0, description="Index of the current wave.")
    current_wave_name: str | None = Field(default=None, description="Name of the current wave.")
    progress: str = Field(default="0/0", description="succeeded/total, for printing.")
    totals: Totals = Field(default_factory=Totals, description="Every target by state.")
    waves: list[WaveStatus] = Field(default_factory=list, description="Each wave.")
    failed_targets: list[FailedTarget] = Field(
        default_factory=list, description=f"The first {MAX_FAILED_LISTED} failed targets."
    )
    last_handled_promote: str | None = Field(
        default=None, description="The dbmigrate.io/promote token acted on last."
    )
    rollback_token: str | None = Field(
        default=None, description="The dbmigrate.io/rollback token given to the failing wave."
    )


def summary_lines(name: str, status: DatabaseMigrationRolloutStatus) -> list[str]:
    """The rollout as text: one line for it, one per wave, one per listed failure."""
    totals = status.totals
    lines = [
        f"rollout {name}: {status.phase}, {totals.succeeded}/{totals.total} succeeded, "
        f"{totals.running} running, {totals.waiting} waiting, {totals.failed} failed, "
        f"{totals.pending} pending",
    ]
    if status.message:
        lines.append(f"  {status.message}")
    for index, wave in enumerate(status.waves):
        mark = ">" if index == status.current_wave and status.phase != "Completed" else " "
        t = wave.totals
        extra = f", soaking until {wave.paused_until.isoformat()}" if wave.paused_until else ""
        lines.append(
            f" {mark} wave {index + 1} {wave.name}: {wave.state}, {t.succeeded}/{t.total} "
            f"succeeded, {t.failed} failed{extra}"
        )
    for failed in status.failed_targets:
        lines.append(
            f"   failed {failed.target} ({failed.wave}): {failed.reason}: {failed.message}"
        )
    return lines
