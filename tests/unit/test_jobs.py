"""The pure builders of step Jobs and their supporting objects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.decision.model import observe_job
from dbmigrate.specs.commands import STEPS, step_command
from dbmigrate.specs.jobs import build_step_job, required_secret_keys
from dbmigrate.specs.supporting import (
    build_inline_config_map,
    build_status_role,
    build_status_role_binding,
    build_step_service_account,
)
from tests.unit.controller_samples import PLAN_HASH, make_backup, make_plan, make_spec

UID = "3f2c1a9e-0000-4000-8000-000000000000"
IMAGE = "ghcr.io/example/dbmigrate:0.1.0"
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SECCOMP = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Violations of Pod Security "restricted" (baseline + restricted rules, v1.34)."""
    found = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(f"{flag} must not be true")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']} has a forbidden type {kinds}")
    pod_ctx = pod.get("securityContext", {})
    if pod_ctx.get("runAsUser") == 0:
        found.append("pod runAsUser must not be 0")
    pod_seccomp = pod_ctx.get("seccompProfile", {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SAFE_SECCOMP:
        found.append("pod seccompProfile must be RuntimeDefault or Localhost")
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        found += _container_violations(container, pod_ctx)
    return found


def _container_violations(container: dict[str, Any], pod_ctx: dict[str, Any]) -> list[str]:
    name, ctx = container["name"], container.get("securityContext", {})
    found = []
    if ctx.get("privileged"):
        found.append(f"{name}: privileged")
    if ctx.get("allowPrivilegeEscalation") is not False:
        found.append(f"{name}: allowPrivilegeEscalation must be false")
    caps = ctx.get("capabilities", {})
    if "ALL" not in caps.get("drop", []):
        found.append(f"{name}: capabilities must drop ALL")
    if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
        found.append(f"{name}: only NET_BIND_SERVICE may be added")
    non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
    if non_root is not True:
        found.append(f"{name}: runAsNonRoot must be true")
    if ctx.get("runAsUser") == 0:
        found.append(f"{name}: runAsUser must not be 0")
    seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {})).get("type")
    if seccomp not in SAFE_SECCOMP:
        found.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
    if any(port.get("hostPort") for port in container.get("ports", [])):
        found.append(f"{name}: hostPort")
    return found


def status_for_steps() -> DatabaseMigrationStatus:
    return DatabaseMigrationStatus(
        run_id="orders-g1-3f2c1a9e", plan=make_plan(), backup=make_backup()
    )


def job_for(step: str, **spec_overrides: Any) -> dict[str, Any]:
    if step == "watch":  # a watch Job exists only with spec.watch
        spec_overrides.setdefault("watch", {"duration": "20s", "interval": "2s"})
    spec = make_spec(**spec_overrides)
    return build_step_job(
        "orders", "apps", UID, 1, step, spec, "orders-g1-3f2c1a9e", IMAGE, status=status_for_steps()
    )


def test_restricted_check_catches_what_it_should() -> None:
    pod = job_for("apply")["spec"]["template"]["spec"]
    bad = json.loads(json.dumps(pod))
    bad["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    bad["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    del bad["containers"][0]["securityContext"]["capabilities"]
    bad["securityContext"]["runAsNonRoot"] = False
    del bad["containers"][0]["securityContext"]["runAsNonRoot"]
    assert len(restricted_violations(bad)) == 4


@pytest.mark.parametrize("step", STEPS)
def test_every_step_pod_passes_pod_security_restricted(step: str) -> None:
    pod = job_for(step, rollback={"strategy": "RestoreBackup"})["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "orders-dbmigrate-step"


@pytest.mark.parametrize("step", STEPS)
def test_job_metadata_owner_and_limits(step: str) -> None:
    job = job_for(step, jobs={"backoffLimit": 3, "activeDeadlineSeconds": 600})
    meta = job["metadata"]
    assert meta["name"] == f"orders-{step}-g1"
    assert meta["labels"]["dbmigrate.io/step"] == step
    assert meta["labels"]["dbmigrate.io/generation"] == "1"
    assert meta["labels"]["dbmigrate.io/migration"] == "orders"
    owner = meta["ownerReferences"][0]
    assert owner["uid"] == UID and owner["controller"] and owner["blockOwnerDeletion"]
    assert owner["kind"] == "DatabaseMigration" and owner["apiVersion"] == "dbmigrate.io/v1alpha1"
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["activeDeadlineSeconds"] == (600 if step != "watch" else 20 + 4 + 600)
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["template"]["metadata"]["labels"] == meta["labels"]


def test_same_input_builds_the_same_job() -> None:
    assert job_for("apply") == job_for("apply")


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(
    "secret_ref",
    [
        {"name": "db", "uriKey": "uri"},
        {"name": "db", "hostKey": "host", "passwordKey": "pw"},
    ],
)
def test_credentials_only_as_secret_key_refs_never_in_args(
    step: str, secret_ref: dict[str, str]
) -> None:
    job = job_for(
        step,
        database={"secretRef": secret_ref, "sslMode": "require"},
        rollback={"strategy": "RestoreBackup"},
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    secret_vars = {name for name, item in env.items() if "valueFrom" in item}
    if "uriKey" in secret_ref:
        assert secret_vars == {"DATABASE_URL"}
    else:
        assert secret_vars == {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"}
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "pw"}
    assert env["PGSSLMODE"] == {"name": "PGSSLMODE", "value": "require"}
    text = " ".join(container["command"])
    for word in ("password", "pw", "uri", "postgresql://", "secret"):
        assert word not in text.split(), word
    assert all(
        "valueFrom" not in item or "secretKeyRef" in item["valueFrom"] for item in env.values()
    )


def test_required_secret_keys() -> None:
    assert required_secret_keys(
        make_spec(database={"secretRef": {"name": "d", "uriKey": "u"}})
    ) == ("u",)
    assert required_secret_keys(make_spec()) == ("host", "port", "dbname", "user", "password")


def test_command_lines_per_step() -> None:
    spec = make_spec(
        targetVersion=5,
        safety={"lockTimeout": "3s", "lintPolicy": "warn", "autoConcurrently": False},
        backup={"pvcName": "backups", "format": "directory", "jobs": 4, "retention": 3},
        verification={"probes": [{"name": "p1", "sql": "select 1", "expectIndex": "ix"}]},
        rollback={"strategy": "RestoreBackup"},
    )
    status = status_for_steps()

    def command(step: str) -> list[str]:
        return step_command(
            step, resource="orders", namespace="apps", run_id="r1", spec=spec, status=status
        )

    common = ["--report-to", "apps/orders", "--run-id", "r1"]
    files = ["--migrations", "/migrations"]
    assert command("plan") == [
        "dbmigrate",
        "plan",
        *common,
        *files,
        "--preflight",
        "--lint-policy",
        "warn",
        "--no-auto-concurrently",
        "--large-table-rows",
        "1000000",
        "--target",
        "5",
    ]
    assert command("backup") == [
        "dbmigrate",
        "backup",
        *common,
        "--dir",
        "/backups/apps/orders",
        "--create-dir",
        "--format",
        "directory",
        "--jobs",
        "4",
        "--keep",
        "3",
    ]
    assert command("apply") == [
        "dbmigrate",
        "apply",
        *common,
        *files,
        "--plan-hash",
        PLAN_HASH,
        "--lock-timeout",
        "3s",
        "--statement-timeout",
        "6h",
        "--lock-retries",
        "5",
        "--retry-backoff",
        "2s",
        "--no-auto-concurrently",
        "--lint-policy",
        "warn",
        "--target",
        "5",
    ]
    assert command("verify") == [
        "dbmigrate",
        "verify",
        *common,
        *files,
        "--analyze",
        "--statement-timeout",
        "6h",
        "--target",
        "5",
    ]
    assert command("rollback") == [
        "dbmigrate",
        "rollback",
        *common,
        "--strategy",
        "RestoreBackup",
        "--lock-timeout",
        "3s",
        "--backup",
        "/backups/apps/orders/orders-g1.dump",
        "--jobs",
        "4",
    ]


def test_probes_reach_plan_and_verify_as_json_env() -> None:
    probes = {"verification": {"probes": [{"name": "p1", "sql": "select 1", "expectIndex": "ix"}]}}
    for step, expected in (("plan", True), ("verify", True), ("apply", False)):
        env = {
            e["name"]: e.get("value")
            for e in job_for(step, **probes)["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert ("DBMIGRATE_PROBES" in env) is expected
        if expected:
            assert json.loads(env["DBMIGRATE_PROBES"]) == [
                {"name": "p1", "sql": "select 1", "expectIndex": "ix"}
            ]


def mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def test_volumes_per_source_and_step() -> None:
    assert mounts(job_for("apply"))["/migrations"]["readOnly"] is True
    assert "/backups" not in mounts(job_for("apply"))
    assert mounts(job_for("backup"))["/backups"]["readOnly"] is False
    restore = job_for("rollback", rollback={"strategy": "RestoreBackup"})
    assert mounts(restore)["/backups"]["readOnly"] is True
    assert "/backups" not in mounts(job_for("rollback"))
    inline = job_for("plan", source={"inline": [{"name": "001_a.sql", "sql": "select 1"}]})
    volumes = {v["name"]: v for v in inline["spec"]["template"]["spec"]["volumes"]}
    assert volumes["migrations"]["configMap"]["name"] == "orders-migrations"
    image = job_for("plan", source={"image": {"path": "/app/migrations"}})
    assert "/migrations" not in mounts(image)
    command = image["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--migrations") + 1] == "/app/migrations"


def test_scheduling_and_resources_from_the_spec() -> None:
    job = job_for(
        "plan",
        jobs={
            "image": "registry.local/dbmigrate:dev",
            "serviceAccountName": "migrator",
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
            "nodeSelector": {"pool": "db"},
            "tolerations": [{"key": "db", "operator": "Exists", "effect": "NoSchedule"}],
        },
    )
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.local/dbmigrate:dev"
    assert container["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}
    assert pod["serviceAccountName"] == "migrator"
    assert pod["nodeSelector"] == {"pool": "db"}
    assert pod["tolerations"] == [{"key": "db", "operator": "Exists", "effect": "NoSchedule"}]


def test_steps_that_cannot_be_built_say_why() -> None:
    spec = make_spec(rollback={"strategy": "RestoreBackup"})
    with pytest.raises(ValueError, match="plan hash"):
        build_step_job(
            "orders", "apps", UID, 1, "apply", spec, "r", IMAGE, status=DatabaseMigrationStatus()
        )
    with pytest.raises(ValueError, match=r"status\.backup\.path"):
        build_step_job(
            "orders", "apps", UID, 1, "rollback", spec, "r", IMAGE, status=DatabaseMigrationStatus()
        )
    with pytest.raises(ValueError, match="strategy is None"):
        build_step_job(
            "orders",
            "apps",
            UID,
            1,
            "rollback",
            make_spec(rollback={"strategy": "None"}),
            "r",
            IMAGE,
        )
    with pytest.raises(ValueError, match="unknown step"):
        build_step_job("orders", "apps", UID, 1, "deploy", spec, "r", IMAGE)


def test_supporting_objects() -> None:
    spec = make_spec(source={"inline": [{"name": "001_a.sql", "sql": "create table a (id int);"}]})
    config_map = build_inline_config_map("orders", "apps", UID, spec)
    assert config_map["metadata"]["name"] == "orders-migrations"
    assert config_map["data"] == {"001_a.sql": "create table a (id int);"}
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == UID
    account = build_step_service_account("orders", "apps", UID)
    assert account["metadata"]["name"] == "orders-dbmigrate-step"
    role = build_status_role("orders", "apps", UID)
    assert role["rules"] == [
        {
            "apiGroups": ["dbmigrate.io"],
            "resources": ["databasemigrations/status"],
            "resourceNames": ["orders"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["dbmigrate.io"],
            "resources": ["databasemigrations"],
            "resourceNames": ["orders"],
            "verbs": ["get"],
        },
    ]
    binding = build_status_role_binding("orders", "apps", UID, spec)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "orders-dbmigrate-step", "namespace": "apps"}
    ]


def test_inline_config_map_too_large_is_refused_with_the_fix() -> None:
    big = "-- " + "x" * 600_000
    spec = make_spec(
        source={"inline": [{"name": "001_a.sql", "sql": big}, {"name": "002_b.sql", "sql": big}]}
    )
    with pytest.raises(ValueError, match=r"spec\.source\.image"):
        build_inline_config_map("orders", "apps", UID, spec)


def test_observe_job_reads_state_from_the_job_conditions() -> None:
    job = job_for("apply")
    running = observe_job(job)
    assert running is not None and running.state == "Running" and running.generation == 1
    job["status"] = {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": "2024-06-01T12:00:00Z",
            }
        ]
    }
    failed = observe_job(job)
    assert failed is not None and failed.state == "Failed" and failed.step == "apply"
    assert failed.message.startswith("BackoffLimitExceeded")
    assert failed.finished_at is not None and failed.finished_at.tzinfo is not None
    assert observe_job({"metadata": {"name": "other", "labels": {}}}) is None


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "targetVersion": 4,
            "safety": {"autoConcurrently": False, "lintPolicy": "off"},
            "backup": {"pvcName": "b", "format": "directory", "jobs": 2},
            "verification": {"analyze": False, "explainAnalyze": True},
            "rollback": {"strategy": "RestoreBackup"},
        },
    ],
)
def test_every_command_line_parses_with_the_step_command(
    step: str, overrides: dict[str, Any]
) -> None:
    """The contract with ``dbmigrate <step>``: whatever the operator builds, the CLI accepts."""
    from dbmigrate.cli.main import build_parser

    command = job_for(step, **overrides)["spec"]["template"]["spec"]["containers"][0]["command"]
    args = build_parser().parse_args(command[1:])
    assert (args.step, args.report_to, args.run_id) == (step, "apps/orders", "orders-g1-3f2c1a9e")
    if step == "apply":
        assert args.plan_hash == PLAN_HASH
    if step == "rollback" and overrides:
        assert args.backup == "/backups/apps/orders/orders-g1.dump" and args.jobs == 2


def test_the_watch_and_its_baseline_on_the_command_lines_and_in_the_env() -> None:
    """With spec.watch the plan and apply sample the baseline, the apply and the watch time the
    probes, and each reads spec.watch from the env; a long watch outlives activeDeadlineSeconds."""
    from dbmigrate.cli.main import build_parser

    watch = {"duration": "2h", "interval": "5m", "thresholds": {"minCalls": 7}}
    probes = {"probes": [{"name": "p", "sql": "SELECT 1", "expectIndex": "i"}]}
    commands, envs = {}, {}
    for step in ("plan", "apply", "verify", "watch"):
        job = job_for(step, watch=watch, verification=probes)
        container = job["spec"]["template"]["spec"]["containers"][0]
        commands[step] = build_parser().parse_args(container["command"][1:])
        envs[step] = {e["name"]: e.get("value") for e in container["env"]}
    assert commands["plan"].watch_baseline and commands["apply"].watch_baseline
    watching = commands["watch"]
    assert (watching.duration, watching.interval) == (7_200_000, 300_000)
    assert (watching.min_calls, watching.statement_timeout, watching.baseline) == (7, 5000, None)
    assert (watching.top_n, watching.probe_runs, watching.ratio) == (100, 5, 1.5)
    for step in ("plan", "apply"):
        assert json.loads(envs[step]["DBMIGRATE_WATCH"])["thresholds"]["minCalls"] == 7
    assert "DBMIGRATE_WATCH" not in envs["verify"] and "DBMIGRATE_WATCH" not in envs["watch"]
    assert {s for s in envs if "DBMIGRATE_PROBES" in envs[s]} == {
        "plan",
        "apply",
        "verify",
        "watch",
    }
    assert job_for("watch", watch=watch)["spec"]["activeDeadlineSeconds"] == 21600
    long = {"duration": "8h", "interval": "5m"}
    assert job_for("watch", watch=long)["spec"]["activeDeadlineSeconds"] == 28800 + 600 + 600
    without = job_for("apply")["spec"]["template"]["spec"]["containers"][0]
    assert "--watch-baseline" not in without["command"]
    assert "DBMIGRATE_PROBES" not in {e["name"] for e in without["env"]}
