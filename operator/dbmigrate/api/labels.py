"""Label and annotation keys, and what a step Job hands its pod: the names both sides share.

The operator writes these keys and reads them back (Jobs are found by their labels; a person
approves with the annotation); the step pod reads the environment variables and mount paths the
Job builder sets. Each is spelled here once and imported wherever it is used.
"""

from __future__ import annotations

from dbmigrate import API_GROUP

# Labels on every object the operator creates (``dbmigrate.specs.naming`` builds their values).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MIGRATION = f"{API_GROUP}/migration"
LABEL_STEP = f"{API_GROUP}/step"
LABEL_GENERATION = f"{API_GROUP}/generation"
LABEL_ATTEMPT = f"{API_GROUP}/attempt"
APP_NAME = "dbmigrate"
MANAGER = "dbmigrate-operator"

# Annotations a person (or a GitOps tool) sets on a DatabaseMigration.
APPROVE_ANNOTATION = f"{API_GROUP}/approve"
# Any new value (a timestamp) starts a new run of the same generation once the run has ended;
# the operator echoes the value it acted on in status.lastHandledRetry.
RETRY_ANNOTATION = f"{API_GROUP}/retry"
PAUSE_ANNOTATION = f"{API_GROUP}/pause"  # any non-empty value: start no new step
ROLLBACK_ANNOTATION = f"{API_GROUP}/rollback"  # a token: roll the last run back on demand
# ... and on a DatabaseMigrationRollout: go on after a `pause: {}` (kubectl dbmigrate promote).
PROMOTE_ANNOTATION = f"{API_GROUP}/promote"

# A rollout's children (DatabaseMigrations): which rollout, target and wave, and the template.
LABEL_ROLLOUT = f"{API_GROUP}/rollout"
LABEL_WAVE = f"{API_GROUP}/wave"
TARGET_ANNOTATION = f"{API_GROUP}/target-secret"
TEMPLATE_HASH_ANNOTATION = f"{API_GROUP}/template-hash"

# On every DatabaseMigration, set by the operator: a digest of status.database (the identity the
# lock gate compares), so the gate lists only the migrations of one database
# (``dbmigrate.decision.lock_scope``).
LABEL_DATABASE = f"{API_GROUP}/database"
DATABASE_UNPLANNED = "unplanned"  # its value until the plan step identified the database

# Kopf's own bookkeeping on each resource: its finalizer and its annotations' prefix.
FINALIZER = f"{API_GROUP}/finalizer"
KOPF_ANNOTATION_PREFIX = API_GROUP

# The step pod's environment and mounts, set by ``dbmigrate.specs.jobs``.
JOB_NAME_ENV = "DBMIGRATE_JOB_NAME"  # tells a step pod its Job, for status.stepExit
PROBES_ENV = "DBMIGRATE_PROBES"  # spec.verification.probes as JSON, read by plan and verify
WATCH_ENV = "DBMIGRATE_WATCH"  # spec.watch as JSON: the performance watch's limits and thresholds
MIGRATIONS_MOUNT = "/migrations"  # the ConfigMap of spec.source.inline / configMapRef
BACKUP_MOUNT = "/backups"  # the PVC of spec.backup.pvcName
# a failed step writes its error to the container's termination-message file (the pod's status
# then carries it: containerStatuses[].state.terminated.message); the env names the file
TERMINATION_LOG_ENV = "DBMIGRATE_TERMINATION_LOG"
TERMINATION_LOG_PATH = "/dev/termination-log"  # the container's terminationMessagePath
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on a Job's pods
RUN_ID_ANNOTATION = f"{API_GROUP}/run-id"  # on each step Job: the run it belongs to
LABEL_ROLLBACK_REQUEST = f"{API_GROUP}/rollback-request"  # on a rollback check Job: its request
PAUSED_ENV = "DBMIGRATE_PAUSED"  # the operator-wide pause (the chart's operator.paused)
STAGING_ENV_PREFIX = "DBMIGRATE_STAGING_"  # + N + _URL or _PGHOST...: the Nth staging database
