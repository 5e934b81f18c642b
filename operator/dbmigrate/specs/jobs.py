"""Pure builder of a step's Job, as a plain dict the runtime creates unchanged.

The Job is deterministic for (resource, step, generation, attempt): the same name
(``naming.job_name``), labels and owner, so creating it again after a restart is a harmless
AlreadyExists. The attempt is read from the Job records ``decide`` wrote into the status before the
Job is created (a plan made again after waiting for the database lock is attempt 2, ...). Its pod
passes Pod Security "restricted": the image's non-root user 10001, no privilege escalation, every
capability dropped, seccomp RuntimeDefault, a read-only root filesystem with an emptyDir at /tmp as
the only scratch space. Database credentials reach the container only as ``secretKeyRef`` env vars
(the operator never reads the Secret); the command line carries no secret. Jobs have no
``ttlSecondsAfterFinished``: they are kept as evidence and collected with the resource.
``commands.py`` documents the command line of each step.
"""

from __future__ import annotations

from typing import Any

from dbmigrate.api.durations import duration_seconds
from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_USAGE
from dbmigrate.api.labels import (
    BACKUP_MOUNT,
    JOB_NAME_ENV,
    MIGRATIONS_MOUNT,
    PROBES_ENV,
    RUN_ID_ANNOTATION,
    WATCH_ENV,
)
from dbmigrate.api.spec import DatabaseMigrationSpec, ResourceList
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.api.stepnames import STEP_BACKUP, STEP_WATCH
from dbmigrate.specs.commands import (
    mounts_backups,
    probes_json,
    step_command,
    takes_baseline,
    uses_probes,
    watch_json,
)
from dbmigrate.specs.naming import (
    inline_config_map_name,
    job_name,
    latest_attempt,
    step_labels,
)
from dbmigrate.specs.supporting import owned_metadata, step_service_account

RUN_AS = 10001  # the image's user (Dockerfile USER), as the operator's own pod in the chart
CONTAINER = "step"


Obj = dict[str, Any]


def required_secret_keys(spec: DatabaseMigrationSpec) -> tuple[str, ...]:
    """The keys the referenced Secret must hold (the runtime reports the missing ones)."""
    ref = spec.database.secret_ref
    if ref.uri_key is not None:
        return (ref.uri_key,)
    assert ref.host_key is not None  # the CRD's CEL rule: exactly one of uriKey or hostKey
    return (ref.host_key, ref.port_key, ref.dbname_key, ref.user_key, ref.password_key)


def database_env(spec: DatabaseMigrationSpec) -> list[Obj]:
    """Connection env vars: DATABASE_URL, or libpq's PG* vars, all from secretKeyRef."""
    ref = spec.database.secret_ref

    def from_secret(var: str, key: str) -> Obj:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": key}}}

    if ref.uri_key is not None:
        env = [from_secret("DATABASE_URL", ref.uri_key)]
    else:
        assert ref.host_key is not None
        pairs = [
            ("PGHOST", ref.host_key),
            ("PGPORT", ref.port_key),
            ("PGDATABASE", ref.dbname_key),
            ("PGUSER", ref.user_key),
            ("PGPASSWORD", ref.password_key),
        ]
        env = [from_secret(var, key) for var, key in pairs]
    return [*env, {"name": "PGSSLMODE", "value": spec.database.ssl_mode}]


def step_env(step: str, spec: DatabaseMigrationSpec, job: str) -> list[Obj]:
    """Every env var of the step container."""
    env = database_env(spec)
    env += [
        {"name": JOB_NAME_ENV, "value": job},
        {"name": "PGAPPNAME", "value": f"dbmigrate-{step}"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "TMPDIR", "value": "/tmp"},
    ]
    if uses_probes(step, spec):
        env.append({"name": PROBES_ENV, "value": probes_json(spec)})
    if takes_baseline(step, spec):
        env.append({"name": WATCH_ENV, "value": watch_json(spec)})
    return env


WATCH_DEADLINE_MARGIN = 600  # seconds a watch Job may run past its duration (slow samples)


def active_deadline(step: str, spec: DatabaseMigrationSpec) -> int:
    """spec.jobs.activeDeadlineSeconds; a watch Job also gets its duration and a margin."""
    deadline = spec.jobs.active_deadline_seconds
    if step == STEP_WATCH and spec.watch is not None:
        watch = spec.watch
        needed = duration_seconds(watch.duration) + 2 * duration_seconds(watch.interval)
        deadline = max(deadline, int(needed) + WATCH_DEADLINE_MARGIN)
    return deadline


def step_volumes(
    step: str, resource: str, spec: DatabaseMigrationSpec
) -> tuple[list[Obj], list[Obj]]:
    """The pod's volumes and the container's mounts: /tmp, the migrations, the backup PVC."""
    volumes: list[Obj] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[Obj] = [{"name": "tmp", "mountPath": "/tmp"}]
    source = spec.source
    if source.config_map is not None or source.inline:
        name = source.config_map.name if source.config_map else inline_config_map_name(resource)
        volumes.append({"name": "migrations", "configMap": {"name": name}})
        mounts.append({"name": "migrations", "mountPath": MIGRATIONS_MOUNT, "readOnly": True})
    if mounts_backups(step, spec):
        claim = {"claimName": spec.backup.pvc_name}
        volumes.append({"name": "backups", "persistentVolumeClaim": claim})
        mounts.append(
            {"name": "backups", "mountPath": BACKUP_MOUNT, "readOnly": step != STEP_BACKUP}
        )
    return volumes, mounts


def container_security_context() -> Obj:
    """The container's securityContext for Pod Security "restricted"."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> Obj:
    """The pod's securityContext (fsGroup lets the non-root user write the backup PVC)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _quantities(values: ResourceList | None) -> dict[str, str]:
    if values is None:
        return {}
    return {k: v for k, v in (("cpu", values.cpu), ("memory", values.memory)) if v is not None}


def container_resources(spec: DatabaseMigrationSpec) -> Obj:
    """requests/limits from spec.jobs.resources (empty when unset)."""
    resources = spec.jobs.resources
    if resources is None:
        return {}
    parts = {"requests": _quantities(resources.requests), "limits": _quantities(resources.limits)}
    return {key: value for key, value in parts.items() if value}


def build_container(
    job: str,
    step: str,
    command: list[str],
    spec: DatabaseMigrationSpec,
    image: str,
    mounts: list[Obj],
) -> Obj:
    """The single container of a step pod."""
    return {
        "name": CONTAINER,
        "image": spec.jobs.image or image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": step_env(step, spec, job),
        "volumeMounts": mounts,
        "resources": container_resources(spec),
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def build_pod_spec(
    resource: str, job: str, step: str, spec: DatabaseMigrationSpec, image: str, command: list[str]
) -> Obj:
    """The pod spec of a step Job."""
    volumes, mounts = step_volumes(step, resource, spec)
    pod: Obj = {
        "restartPolicy": "Never",
        "serviceAccountName": step_service_account(resource, spec),
        "automountServiceAccountToken": True,
        "securityContext": pod_security_context(),
        "containers": [build_container(job, step, command, spec, image, mounts)],
        "volumes": volumes,
        "enableServiceLinks": False,
    }
    if spec.jobs.node_selector:
        pod["nodeSelector"] = dict(spec.jobs.node_selector)
    if spec.jobs.tolerations:
        pod["tolerations"] = [toleration.to_wire() for toleration in spec.jobs.tolerations]
    return pod


def pod_failure_policy() -> Obj:
    """Fail the Job at once when the step found a failure (1) or got bad input (2); only
    "unavailable" (3) and crashes are retried, and evictions do not count as retries."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [EXIT_FAILED, EXIT_USAGE],
                },
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]
    }


def build_step_job(
    resource_name: str,
    namespace: str,
    uid: str,
    generation: int,
    step: str,
    spec: DatabaseMigrationSpec,
    run_id: str,
    image: str,
    *,
    status: DatabaseMigrationStatus | None = None,
) -> Obj:
    """The Job running ``step`` for this generation of the resource.

    ``status`` supplies the plan hash (apply) and the backup path (a RestoreBackup rollback);
    ``image`` is the operator's own image, used unless spec.jobs.image names another.
    """
    command = step_command(
        step, resource=resource_name, namespace=namespace, run_id=run_id, spec=spec, status=status
    )
    attempt = job_attempt(status, step, generation)
    labels = step_labels(resource_name, step, generation, attempt)
    name = job_name(resource_name, step, generation, attempt)
    metadata = owned_metadata(name, resource_name, namespace, uid)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {**metadata, "labels": labels, "annotations": {RUN_ID_ANNOTATION: run_id}},
        "spec": {
            "backoffLimit": spec.jobs.backoff_limit,
            "activeDeadlineSeconds": active_deadline(step, spec),
            "completions": 1,
            "parallelism": 1,
            "podFailurePolicy": pod_failure_policy(),
            "template": {
                "metadata": {"labels": labels},
                "spec": build_pod_spec(resource_name, name, step, spec, image, command),
            },
        },
    }


def job_attempt(status: DatabaseMigrationStatus | None, step: str, generation: int) -> int:
    """The attempt of ``step`` that decide recorded in ``status.jobs`` (1 when none is)."""
    if status is None:
        return 1
    names = [r.name for r in status.jobs if r.step == step and r.generation == generation]
    return latest_attempt(names, step, generation)
