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
PAUSE_ANNOTATION = f"{API_GROUP}/pause"  # any non-empty value: start no new step
ROLLBACK_ANNOTATION = f"{API_GROUP}/rollback"  # a token: roll the last run back on demand
RETRY_ANNOTATION = f"{API_GROUP}/retry"  # a new token: run again (echoed: status.lastHandledRetry)
PROMOTE_ANNOTATION = f"{API_GROUP}/promote"  # a new token on a DatabaseMigrationRollout

# Kopf's own bookkeeping on each resource: its finalizer and its annotations' prefix.
FINALIZER = f"{API_GROUP}/finalizer"
KOPF_ANNOTATION_PREFIX = API_GROUP

# The step pod's environment and mounts, set by ``dbmigrate.specs.jobs``.
JOB_NAME_ENV = "DBMIGRATE_JOB_NAME"  # tells a step pod its Job, for status.stepExit
PROBES_ENV = "DBMIGRATE_PROBES"  # spec.verification.probes as JSON, read by plan and verify
MIGRATIONS_MOUNT = "/migrations"  # the ConfigMap of spec.source.inline / configMapRef
BACKUP_MOUNT = "/backups"  # the PVC of spec.backup.pvcName
RUN_ID_ANNOTATION = f"{API_GROUP}/run-id"  # on each step Job: the run it belongs to
LABEL_ROLLBACK_REQUEST = f"{API_GROUP}/rollback-request"  # on a rollback check Job: its request
PAUSED_ENV = "DBMIGRATE_PAUSED"  # the operator-wide pause (the chart's operator.paused)
