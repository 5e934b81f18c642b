"""Pure builder of the rollback check Job of a rollback on demand (a MigrationRollback).

The operator never connects to PostgreSQL, so what only the database can tell before a rollback
on demand (the data-loss preflight, a newer version applied on top, the migration lock, the
backup file and its checksum) is checked by ``dbmigrate rollback-check`` in a Job of its own. It
runs like the migration's step Jobs (same image, service account, Secret env, Pod Security
"restricted" pod; the backup PVC mounted read-only for RestoreBackup) and writes its report into
the migration's ``status.rollbackCheck``; it is owned by the request (collected with it) and
labelled with its name (its events wake the request). It writes no ``status.stepExit``: it is not
a step of the migration's run.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dbmigrate import API_GROUP, API_VERSION
from dbmigrate.api.labels import BACKUP_MOUNT, JOB_NAME_ENV, LABEL_ROLLBACK_REQUEST
from dbmigrate.api.rollback_request import ROLLBACK_KIND
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.api.stepnames import STEP_ROLLBACK_CHECK
from dbmigrate.specs.jobs import CONTAINER, build_pod_spec
from dbmigrate.specs.naming import common_labels, label_value

Obj = dict[str, Any]
MAX_NAME = 52  # a Job's pods carry its name in a label (63) with a suffix


def check_job_name(request: str) -> str:
    """``<request>-check``, shortened with a hash of the name when too long."""
    name = f"{request}-check"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(request.encode()).hexdigest()[:8]
    return f"{request[: MAX_NAME - 15].rstrip('-.')}-{digest}-check"


def check_command(
    namespace: str,
    migration: str,
    request: str,
    strategy: str,
    status: DatabaseMigrationStatus,
) -> list[str]:
    """``dbmigrate rollback-check --report-to NS/MIGRATION --run-id RUN --request R
    --strategy S``."""
    if not status.run_id:
        raise ValueError("the migration has no status.runId: it never ran")
    command = [
        "dbmigrate", STEP_ROLLBACK_CHECK, "--report-to", f"{namespace}/{migration}",
        "--run-id", status.run_id, "--request", request, "--strategy", strategy,
    ]  # fmt: skip
    return command  # the backup's path and sha256 are read from the status


def build_check_job(
    *,
    request: str,
    request_uid: str,
    namespace: str,
    migration: str,
    strategy: str,
    spec: DatabaseMigrationSpec,
    status: DatabaseMigrationStatus,
    image: str,
) -> Obj:
    """The rollback check Job of ``request`` (see the module docstring)."""
    name = check_job_name(request)
    command = check_command(namespace, migration, request, strategy, status)
    pod = build_pod_spec(migration, name, STEP_ROLLBACK_CHECK, spec, image, command)
    container = pod["containers"][0]
    assert container["name"] == CONTAINER
    container["env"] = [e for e in container["env"] if e["name"] != JOB_NAME_ENV]
    if strategy == "RestoreBackup" and spec.backup.pvc_name is not None:
        claim = {"claimName": spec.backup.pvc_name}
        pod["volumes"].append({"name": "backups", "persistentVolumeClaim": claim})
        container["volumeMounts"].append(
            {"name": "backups", "mountPath": BACKUP_MOUNT, "readOnly": True}
        )
    labels = {**common_labels(migration), LABEL_ROLLBACK_REQUEST: label_value(request)}
    owner = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": ROLLBACK_KIND, "name": request,
        "uid": request_uid, "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": {
            "backoffLimit": spec.jobs.backoff_limit,
            "activeDeadlineSeconds": spec.jobs.active_deadline_seconds,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
