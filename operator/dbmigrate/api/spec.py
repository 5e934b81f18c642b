"""The spec of a DatabaseMigration: what a platform engineer asks for, with safe defaults.

These models are the source of truth: the CRD's OpenAPI schema (descriptions, enums, bounds,
defaults and CEL rules) is generated from them by ``dbmigrate.api.crd``. Cross-field rules live in
``x-kubernetes-validations`` so the API server itself refuses a bad spec with a readable message.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field, JsonValue, model_validator

from dbmigrate.api import probesql
from dbmigrate.api.base import ApiModel
from dbmigrate.api.cron import schedule_rules
from dbmigrate.api.objectnames import ObjectName
from dbmigrate.api.watch import WatchThresholds

DURATION_PATTERN = "^([0-9]+([.][0-9]+)?(ms|s|m|h))+$"
ZERO_DURATION_PATTERN = "^(0+([.]0+)?(ms|s|m|h))+$"
DURATION_HELP = "a positive duration with a unit, such as 500ms, 5s, 2m or 1h30m"


def _duration_rule(field: str) -> dict[str, str]:
    """A CEL rule that refuses a malformed, negative or zero duration in ``field``."""
    value = f"self.{field}"
    return {
        "rule": f"!has({value}) || ({value}.matches('{DURATION_PATTERN}')"
        f" && !{value}.matches('{ZERO_DURATION_PATTERN}'))",
        "message": f"{field} must be {DURATION_HELP}",
    }


def _defaulted(model: type[ApiModel], description: str) -> Any:
    """A nested section that is always present: the API server fills in its defaults too."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


def _extra(*rules: dict[str, str]) -> ConfigDict:
    """Model config carrying CEL rules (``x-kubernetes-validations``) into the CRD schema."""
    validations: list[JsonValue] = [dict(rule) for rule in rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": validations})


# A Secret holds either a whole URI or the parts of one (CEL, on SecretKeys and its users).
URI_OR_HOST_RULE = {
    "rule": "has(self.uriKey) != has(self.hostKey)",
    "message": "set exactly one of uriKey (a postgresql:// URI) or hostKey "
    "(with portKey, dbnameKey, userKey, passwordKey)",
}


class SecretKeys(ApiModel):
    """Which keys of a database Secret hold its connection: a URI, or host, port and so on
    (a DatabaseMigration's Secret, and each target Secret of a rollout)."""

    uri_key: str | None = Field(
        default=None, min_length=1, description="Key holding a full postgresql:// URI."
    )
    host_key: str | None = Field(default=None, min_length=1, description="Key holding the host.")
    port_key: str = Field(default="port", min_length=1, description="Key holding the port.")
    dbname_key: str = Field(
        default="dbname", min_length=1, description="Key holding the database name."
    )
    user_key: str = Field(default="user", min_length=1, description="Key holding the user name.")
    password_key: str = Field(
        default="password", min_length=1, description="Key holding the password."
    )


class SecretRef(SecretKeys):
    """Where the database credentials live: a Secret in the resource's namespace."""

    model_config = _extra(URI_OR_HOST_RULE)
    name: ObjectName = Field(description="Name of the Secret in the same namespace.")


class DatabaseSpec(ApiModel):
    """How the migration's Jobs reach the database (the operator never reads the secret)."""

    secret_ref: SecretRef = Field(description="The Secret holding the connection details.")
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="libpq sslmode used by every Job."
    )


class ConfigMapSource(ApiModel):
    """A ConfigMap whose keys are migration files named NNN_name.sql."""

    name: ObjectName = Field(description="Name of the ConfigMap.")


class InlineMigration(ApiModel):
    """One migration file written inside the resource."""

    name: str = Field(
        pattern=r"^[0-9]+_[A-Za-z0-9_.-]+\.sql$",
        description="File name, NNN_name.sql; the number is the version.",
    )
    sql: str = Field(min_length=1, description="The SQL of the migration.")


class ImageSource(ApiModel):
    """A folder of migration files baked into the Job image."""

    path: str = Field(pattern=r"^/", description="Absolute path of the folder inside the image.")


class SourceSpec(ApiModel):
    """Where the migration files come from: exactly one of configMap, inline or image."""

    model_config = _extra(
        {
            "rule": "(has(self.configMap) ? 1 : 0) + (has(self.inline) ? 1 : 0)"
            " + (has(self.image) ? 1 : 0) == 1",
            "message": "set exactly one migration source: configMap, inline or image",
        }
    )
    config_map: ConfigMapSource | None = Field(
        default=None, description="Migration files from a ConfigMap (key = file name)."
    )
    inline: list[InlineMigration] | None = Field(
        default=None, min_length=1, max_length=200, description="Migration files written inline."
    )
    image: ImageSource | None = Field(
        default=None, description="Migration files from a folder inside the Job image."
    )


class BackupSpec(ApiModel):
    """The pg_dump taken before anything changes. On by default: no backup, no migration."""

    model_config = _extra(
        {
            "rule": "!has(self.enabled) || !self.enabled || has(self.pvcName)",
            "message": "backup.enabled needs backup.pvcName: a PersistentVolumeClaim that "
            "outlives the Job, or a rollback would have nothing to restore",
        },
        {
            "rule": "!has(self.jobs) || self.jobs == 1"
            " || (has(self.format) && self.format == 'directory')",
            "message": "backup.jobs > 1 needs format: directory (custom format dumps are "
            "written by one process)",
        },
    )
    enabled: bool = Field(
        default=True,
        description="Take a backup before migrating. pg_dump must be of the server's major "
        "version or newer (an older one is refused before it runs): the image's pg_dump 17 backs "
        "up PostgreSQL 13 to 17; a PostgreSQL 18 server needs an image built with "
        "PG_CLIENT_MAJOR=18.",
    )
    format: Literal["custom", "directory"] = Field(
        default="custom",
        description="pg_dump format: custom (one file) or directory (parallel with jobs).",
    )
    jobs: int = Field(default=1, ge=1, le=32, description="Parallel pg_dump jobs (directory).")
    pvc_name: ObjectName | None = Field(
        default=None, description="PersistentVolumeClaim the backup is written to."
    )
    retention: int = Field(
        default=5, ge=1, le=100, description="Keep this many newest backups of this resource."
    )


class SafetySpec(ApiModel):
    """How careful the migrate step is: lint policy, timeouts, retries, CONCURRENTLY."""

    model_config = _extra(
        _duration_rule("lockTimeout"),
        _duration_rule("statementTimeout"),
        _duration_rule("retryBackoff"),
    )
    lint_policy: Literal["strict", "warn", "off"] = Field(
        default="strict",
        description="strict: lint errors stop before the backup; warn: report and go on; off.",
    )
    auto_concurrently: bool = Field(
        default=True,
        description="Rewrite CREATE INDEX on an existing table to CREATE INDEX CONCURRENTLY.",
    )
    lock_timeout: str = Field(
        default="5s",
        max_length=32,
        description="lock_timeout for every statement; a lock wait longer fails.",
    )
    statement_timeout: str = Field(
        default="6h",
        max_length=32,
        description="statement_timeout for every statement (index builds included).",
    )
    lock_retries: int = Field(
        default=5, ge=0, le=50, description="Retries of a statement that hit lock_timeout."
    )
    retry_backoff: str = Field(
        default="2s",
        max_length=32,
        description="First wait between lock retries; doubles on each retry.",
    )


class PreflightSpec(ApiModel):
    """Checks run against the database before anything changes."""

    large_table_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="Tables with more estimated rows are large: flagged, and gated by the window.",
    )


class MaintenanceWindowSpec(ApiModel):
    """When backup and apply may start, if the plan touches large tables (or always)."""

    model_config = _extra(
        _duration_rule("duration"),
        *schedule_rules("schedule"),
    )
    schedule: str = Field(
        min_length=9,
        max_length=100,
        description="Cron expression (5 fields) of the window's opening.",
    )
    duration: str = Field(max_length=32, description="How long the window stays open, such as 2h.")
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        description="IANA time zone of the schedule, such as UTC or Europe/Berlin (an unknown "
        "one stalls the run before its first Job, with reason InvalidMaintenanceWindow).",
    )
    applies_to: Literal["LargeTables", "Always"] = Field(
        default="LargeTables",
        description="LargeTables: only plans touching large tables wait; Always: every plan.",
    )


class ApprovalSpec(ApiModel):
    """Whether a person must approve the plan before the backup starts."""

    mode: Literal["Automatic", "Manual"] = Field(
        default="Automatic",
        description="Manual: wait for annotation dbmigrate.io/approve set to the plan hash.",
    )


class ProbeQuery(ApiModel):
    """A query whose plan must use an index after the migration."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Probe name."
    )
    sql: str = Field(
        min_length=1,
        max_length=probesql.MAX_LENGTH,
        description="One read-only query to EXPLAIN, starting with SELECT, WITH, VALUES or "
        "TABLE, with no ';' but a trailing one.",
        json_schema_extra={"x-kubernetes-validations": [dict(probesql.SQL_RULE)]},
    )
    expect_index: str = Field(
        min_length=1, description="Name of the index the query's plan must use."
    )


class VerificationSpec(ApiModel):
    """What the verify step proves after the migration."""

    analyze: bool = Field(default=True, description="ANALYZE the touched tables after applying.")
    explain_analyze: bool = Field(
        default=False, description="Run probes with EXPLAIN ANALYZE (executes the query)."
    )
    probes: list[ProbeQuery] = Field(
        default_factory=list, max_length=50, description="Probe queries and their expected index."
    )


class WorkloadRef(ApiModel):
    """An application workload scaled to zero during an emergency rollback."""

    kind: Literal["Deployment", "StatefulSet"] = Field(description="Kind of the workload.")
    name: ObjectName = Field(description="Name in the same namespace.")


class RollbackSpec(ApiModel):
    """The emergency rollback run when apply or verify fails after the backup."""

    strategy: Literal["None", "DropCreatedObjects", "RestoreBackup"] = Field(
        default="DropCreatedObjects",
        description="None; DropCreatedObjects: drop what this run created, then build again "
        "(CREATE INDEX CONCURRENTLY, from the definition recorded before the drop) every index "
        "it dropped, losing no data of the tables that were there before; RestoreBackup: "
        "restore the backup taken before the run (every write since it is lost).",
    )
    scale_down: list[WorkloadRef] = Field(
        default_factory=list,
        max_length=20,
        description="Workloads scaled to zero during the rollback and scaled back after.",
    )


class ResourceList(ApiModel):
    """CPU and memory quantities."""

    cpu: str | None = Field(default=None, description="CPU quantity, such as 500m.")
    memory: str | None = Field(default=None, description="Memory quantity, such as 256Mi.")


class Resources(ApiModel):
    """Requests and limits of the step containers."""

    requests: ResourceList | None = Field(default=None, description="Requested resources.")
    limits: ResourceList | None = Field(default=None, description="Resource limits.")


class Toleration(ApiModel):
    """A toleration of the step pods (as in a pod spec)."""

    key: str | None = Field(default=None, description="Taint key.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Operator.")
    value: str | None = Field(default=None, description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect."
    )
    toleration_seconds: int | None = Field(default=None, ge=0, description="For NoExecute.")


class JobSpec(ApiModel):
    """Settings of the Jobs that run each step."""

    image: str | None = Field(
        default=None, description="Step image; defaults to the operator's own image."
    )
    service_account_name: ObjectName | None = Field(
        default=None, description="Service account of the step pods; created if not set."
    )
    resources: Resources | None = Field(default=None, description="Container resources.")
    active_deadline_seconds: int = Field(
        default=21600, ge=60, le=604800, description="Deadline of each step Job."
    )
    backoff_limit: int = Field(default=1, ge=0, le=10, description="Pod retries of a step Job.")
    node_selector: dict[str, str] | None = Field(default=None, description="Node selector.")
    tolerations: list[Toleration] | None = Field(default=None, description="Tolerations.")


class WatchSpec(ApiModel):
    """The performance watch after Succeeded: the workload's query times before and after.

    The plan step samples the database's cumulative counters (pg_stat_statements when installed,
    index, table and database statistics) at the start of the run, the apply step again just
    before its first statement; after the verification a watch Job samples them every
    ``interval`` for ``duration`` and compares the two windows query by query. The verdict is
    the PerformanceVerified condition; ``onRegression`` says what a regression leads to.
    """

    model_config = _extra(
        _duration_rule("duration"),
        _duration_rule("interval"),
        {
            "rule": "!has(self.thresholds) || !has(self.thresholds.topN)"
            " || self.thresholds.topN <= 200",
            "message": "watch.thresholds.topN may be at most 200 here: the snapshots are kept "
            "in the resource's status",
        },
    )
    duration: str = Field(
        default="15m",
        max_length=32,
        description="How long to watch after the verification, such as 15m.",
    )
    interval: str = Field(
        default="1m",
        max_length=32,
        description="How often to sample during the watch, such as 1m.",
    )
    on_regression: Literal["Notify", "Rollback"] = Field(
        default="Notify",
        description="Notify: Ready=False, Stalled=True reason Regressed, an Event and a Regressed "
        "notification. Rollback: the emergency rollback of the run (scaling spec.rollback."
        "scaleDown), only with rollback.strategy DropCreatedObjects; with RestoreBackup the watch "
        "only notifies (writes since the backup would be lost).",
    )
    wait_for_baseline: bool = Field(
        default=True,
        description="The apply step waits (at most thresholds.minBaselineSeconds) until the "
        "window before it is long enough to compare; false: it starts at once and a short "
        "window gives Inconclusive.",
    )
    thresholds: WatchThresholds = _defaulted(
        WatchThresholds, "When a query counts as regressed, and how big a sample may be."
    )


NotificationEvent = Literal[
    "WaitingForApproval",
    "WaitingForWindow",
    "Succeeded",
    "Failed",
    "RollingBack",
    "RolledBack",
    "Stalled",
    "Regressed",
]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)


class UrlSecretRef(ApiModel):
    """A Secret key holding a webhook URL (URLs of chat webhooks carry their token)."""

    name: ObjectName = Field(description="Name of the Secret in the same namespace.")
    key: str = Field(default="url", min_length=1, description="Key holding the URL.")


class NotificationTarget(ApiModel):
    """A webhook told about the transitions a person cares about (see the README)."""

    model_config = _extra(
        {
            "rule": "!has(self.events) || self.events.all(e, self.events.exists_one(f, f == e))",
            "message": "events must not list an event twice",
        }
    )
    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Name of the target, shown in status.notifications, Events and metrics.",
    )
    secret_ref: UrlSecretRef = Field(
        description="The Secret key holding the webhook URL; the URL is never logged or shown."
    )
    format: Literal["json", "slack"] = Field(
        default="json",
        description='json: the full notification document; slack: a {"text": ...} message '
        "for a Slack (or compatible) incoming webhook.",
    )
    events: list[NotificationEvent] | None = Field(
        default=None,
        max_length=8,
        description="Notify these transitions only; all of them when unset.",
    )


class StagingDatabase(ApiModel):
    """A database where the same migration files must already have succeeded (read-only)."""

    secret_ref: SecretRef = Field(
        description="The Secret (in this namespace) with a read-only connection to the staging "
        "database, in the shape of spec.database.secretRef."
    )
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="libpq sslmode of the plan step's staging connection."
    )


class MigrationRef(ApiModel):
    """Another DatabaseMigration in this cluster."""

    namespace: str = Field(
        min_length=1, max_length=63, description="Namespace of the DatabaseMigration."
    )
    name: str = Field(min_length=1, max_length=253, description="Name of the DatabaseMigration.")


class PromotionSpec(ApiModel):
    """Staging first: the versions this run would apply must have succeeded elsewhere first."""

    model_config = _extra(
        _duration_rule("recheckInterval"),
        {
            "rule": "(has(self.requireAppliedIn) && size(self.requireAppliedIn) > 0)"
            " || (has(self.requireSucceeded) && size(self.requireSucceeded) > 0)",
            "message": "promotion needs requireAppliedIn (staging databases) or "
            "requireSucceeded (DatabaseMigrations), or both",
        },
    )
    require_applied_in: list[StagingDatabase] = Field(
        default_factory=list,
        max_length=5,
        description="Databases whose history table must record every pending version as "
        "applied (not rolled back) with the same checksum; the plan step checks them.",
    )
    require_succeeded: list[MigrationRef] = Field(
        default_factory=list,
        max_length=5,
        description="DatabaseMigrations (the operator reads them) that must have Succeeded with "
        "every pending version, same checksums, and no Regressed performance verdict.",
    )
    recheck_interval: str = Field(
        default="30s",
        max_length=32,
        description="How soon a waiting run checks again; doubles on each check, up to 10m.",
    )

    @model_validator(mode="after")
    def _has_a_source(self) -> PromotionSpec:
        if not self.require_applied_in and not self.require_succeeded:
            raise ValueError(
                "promotion needs requireAppliedIn (staging databases) or requireSucceeded "
                "(DatabaseMigrations), or both"
            )
        return self


class DatabaseMigrationSpec(ApiModel):
    """A migration of one PostgreSQL database to a target version, done safely."""

    model_config = _extra(
        {
            "rule": "!has(self.rollback) || self.rollback.strategy != 'RestoreBackup'"
            " || !has(self.backup) || self.backup.enabled",
            "message": "rollback.strategy RestoreBackup needs backup.enabled: true",
        }
    )
    database: DatabaseSpec = Field(
        description="The database to migrate: PostgreSQL 13 to 18 (the majors dbmigrate is tested "
        "against)."
    )
    source: SourceSpec = Field(description="Where the migration files come from.")
    target_version: int | None = Field(
        default=None, ge=1, description="Apply up to this version; all pending when unset."
    )
    backup: BackupSpec = Field(
        description="The backup step. Required: name the PVC backups go to (on by default), or "
        "set enabled: false explicitly to migrate without one."
    )
    safety: SafetySpec = _defaulted(SafetySpec, "Lint and apply safety.")
    preflight: PreflightSpec = _defaulted(PreflightSpec, "Preflight checks.")
    maintenance_window: MaintenanceWindowSpec | None = Field(
        default=None, description="When backup and apply may start."
    )
    promotion: PromotionSpec | None = Field(
        default=None,
        description="Staging first: wait until the pending versions succeeded elsewhere "
        "(WaitingForPromotion) before the approval, window, backup and apply.",
    )
    approval: ApprovalSpec = _defaulted(ApprovalSpec, "Plan approval.")
    verification: VerificationSpec = _defaulted(VerificationSpec, "Verification after applying.")
    rollback: RollbackSpec = _defaulted(RollbackSpec, "Emergency rollback.")
    jobs: JobSpec = _defaulted(JobSpec, "Settings of the step Jobs.")
    watch: WatchSpec | None = Field(
        default=None,
        description="The performance watch after Succeeded (off unless set): query times "
        "before and after the migration, a verdict, and optionally the rollback.",
    )
    notifications: list[NotificationTarget] = Field(
        default_factory=list,
        max_length=10,
        description="Webhooks notified of approval and window waits, success, failure, "
        "rollback, stalls and a performance regression; they add to the operator-wide "
        "targets. Names must be unique.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(t, self.exists_one(u, u.name == t.name))",
                    "message": "notification target names must be unique",
                }
            ]
        },
    )
