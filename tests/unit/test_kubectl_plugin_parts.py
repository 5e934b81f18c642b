"""The pure parts of ``kubectl dbmigrate``: the status screen and its next command, the tree, the
rollback request and its plan, completion, the bundle's masking, and the client's messages."""

from __future__ import annotations

import argparse
import io
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbmigrate.api.labels import (
    APPROVE_ANNOTATION,
    LABEL_STEP,
    PAUSE_ANNOTATION,
    RUN_ID_ANNOTATION,
)
from dbmigrate.kubectl.annotate import annotation_patch, kubectl_equivalent, token
from dbmigrate.kubectl.client import MIGRATIONS, Client, PluginError, Target
from dbmigrate.kubectl.completion import SCRIPTS, complete
from dbmigrate.kubectl.main import build_parser, seconds
from dbmigrate.kubectl.objects import Snapshot, StepJob, pod_state
from dbmigrate.kubectl.report import mask_env, strip, write_bundle
from dbmigrate.kubectl.rollback import outcome_lines, plan_lines, request_manifest
from dbmigrate.kubectl.screens import age, next_step, settled, status_document, status_screen
from dbmigrate.kubectl.tree import tree_lines
from dbmigrate.logging_setup import register_secret

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
HASH = "ab" * 32


def migration(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "shop", "namespace": "prod", "generation": 1, "annotations": {}},
        "spec": {"database": {"secretRef": {"name": "shop-db"}}},
        "status": {"phase": phase, "observedGeneration": 1, "runId": "shop-g1-abc", **status},
    }


def job(step: str, state: str = "Complete", pods: int = 1) -> StepJob:
    conditions = [{"type": state, "status": "True"}] if state in ("Complete", "Failed") else []
    obj = {
        "metadata": {
            "name": f"shop-{step}-g1",
            "labels": {LABEL_STEP: step, "dbmigrate.io/generation": "1"},
            "annotations": {RUN_ID_ANNOTATION: "shop-g1-abc"},
            "creationTimestamp": "2026-12-07T11:58:00Z",
        },
        "status": {"conditions": conditions, "active": 1 if state == "Running" else 0},
    }

    def pod(i: int) -> dict[str, Any]:
        return {
            "metadata": {
                "name": f"shop-{step}-g1-x{i}",
                "creationTimestamp": "2026-12-07T11:58:01Z",
            },
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [
                    {"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}
                ],
            },
        }

    return StepJob(obj, [pod(i) for i in range(pods)])


PLAN = {
    "database": "shop",
    "target": 2,
    "pending": [{"version": 2, "name": "add_index", "checksum": "c" * 64}],
    "applied": [{"version": 1, "name": "initial", "checksum": "d" * 64}],
    "planHash": HASH,
    "driftErrors": [],
    "computedAt": "2026-12-07T11:58:10Z",
}


def test_the_screen_of_a_run_waiting_for_approval_names_the_approve_command() -> None:
    snap = Snapshot(
        migration(
            "WaitingForApproval",
            plan=PLAN,
            approval={"required": True, "planHash": HASH},
            conditions=[
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "WaitingForApproval",
                    "message": "approve it",
                    "lastTransitionTime": "2026-12-07T11:59:00Z",
                }
            ],
        ),
        [job("plan")],
        [
            {
                "type": "Normal",
                "reason": "Planning",
                "message": "planning",
                "involvedObject": {"kind": "DatabaseMigration", "name": "shop"},
                "lastTimestamp": "2026-12-07T11:58:00Z",
            }
        ],
    )
    screen = status_screen(snap, NOW)
    text = "\n".join(screen)
    assert screen[0] == "DatabaseMigration prod/shop"
    assert "  phase:    WaitingForApproval" in screen
    assert f"  hash: {HASH}" in screen
    assert "  pending    2 add_index" in screen
    assert "  approve: kubectl dbmigrate approve shop -n prod" in screen
    assert f"{APPROVE_ANNOTATION}={HASH}" in text
    assert "shop-plan-g1" in text and "Completed (exit 0)" in text
    assert "2m" in text and "60s" in text  # ages, as kubectl writes them
    assert settled(snap)  # a watch stops: the run waits for a person
    assert status_document(snap)["jobs"][0]["pods"][0]["state"] == "Completed (exit 0)"


@pytest.mark.parametrize(
    ("phase", "status", "expected"),
    [
        ("Failed", {"failedStep": "apply"}, "kubectl dbmigrate logs shop -n prod --step apply"),
        ("RolledBack", {"failedStep": "verify"}, "retry: kubectl dbmigrate retry shop -n prod"),
        ("Succeeded", {}, "kubectl dbmigrate rollback shop -n prod --dry-run"),
        ("WaitingForLock", {"waitingFor": "other/big"}, "kubectl dbmigrate status big -n other"),
        ("WaitingForWindow", {"window": {"nextOpen": "2026-12-08T02:00:00Z"}}, "2026-12-08T02"),
        ("Migrating", {}, "kubectl dbmigrate status shop -n prod -w"),
    ],
)
def test_the_next_command_fits_the_phase(phase: str, status: dict[str, Any], expected: str) -> None:
    lines = next_step(Snapshot(migration(phase, **status), [job("apply", "Running")], []))
    assert any(expected in line for line in lines), lines


def test_a_paused_resource_says_how_to_resume_and_a_stalled_one_why() -> None:
    paused = migration("Migrating")
    paused["metadata"]["annotations"][PAUSE_ANNOTATION] = "true"
    assert "resume: kubectl dbmigrate resume shop -n prod" in next_step(Snapshot(paused, [], []))
    stalled = migration(
        "Pending",
        conditions=[
            {
                "type": "Stalled",
                "status": "True",
                "reason": "SecretNotFound",
                "message": "Secret shop-db not found",
            }
        ],
    )
    lines = next_step(Snapshot(stalled, [], []))
    assert lines[0] == "stalled (SecretNotFound): Secret shop-db not found"


def test_a_watch_goes_on_while_the_operator_has_not_seen_the_new_generation() -> None:
    old = migration("Succeeded")
    old["metadata"]["generation"] = 2
    assert not settled(Snapshot(old, [], []))
    assert settled(Snapshot(migration("Succeeded"), [], []))
    assert not settled(Snapshot(migration("Verifying"), [], []))


def test_the_screen_draws_the_watch_verdict_generically() -> None:
    snap = Snapshot(
        migration(
            "Succeeded",
            watch={"verdict": "Regressed", "queries": [{"name": "q1", "p95Ms": 12.5}]},
            conditions=[
                {
                    "type": "PerformanceVerified",
                    "status": "False",
                    "reason": "Regressed",
                    "message": "q1 got slower",
                }
            ],
        ),
        [],
        [],
    )
    text = "\n".join(status_screen(snap, NOW))
    assert "PerformanceVerified=False (Regressed): q1 got slower" in text
    assert "verdict: Regressed" in text and "queries[0].p95Ms: 12.5" in text


def test_the_screen_shows_the_live_progress_and_the_evidence() -> None:
    snap = Snapshot(
        migration(
            "Migrating",
            progress={
                "version": 2,
                "name": "add_index",
                "statementIndex": 1,
                "statementsTotal": 1,
                "statement": "CREATE INDEX CONCURRENTLY i",
                "phase": "building index",
                "percent": 42.0,
                "waiting": False,
                "updatedAt": "2026-12-07T11:59:59Z",
            },
            backup={
                "path": "/backups/prod/shop/x.dump",
                "format": "custom",
                "sizeBytes": 2048,
                "sha256": "e" * 64,
                "verified": True,
            },
        ),
        [job("apply", "Running")],
        [],
    )
    text = "\n".join(status_screen(snap, NOW))
    assert "statement 1/1 building index 42%" in text
    assert "Backup: /backups/prod/shop/x.dump (custom, 2.0 KiB), read back: yes" in text
    assert "e" * 64 in text


def test_the_screen_shows_the_runs_of_a_generation() -> None:
    snap = Snapshot(
        migration(
            "Failed",
            retry={
                "run": 2,
                "automatic": 1,
                "limit": 5,
                "nextAttemptAt": "2026-12-07T12:01:00Z",
                "cause": "cannot connect",
            },
            lastHandledRetry="2026-12-07T11:00:00Z-abc123",
        ),
        [],
        [],
    )
    text = "\n".join(status_screen(snap, NOW))
    assert "run 2 of this generation, 1/5 automatic retries, next at 2026-12-07T12:01" in text
    assert "last cause: cannot connect" in text
    assert "last retry request handled: 2026-12-07T11:00:00Z-abc123" in text
    assert "retries by itself at 2026-12-07T12:01:00Z" in text


def test_the_screen_names_the_rollback_request_that_undid_the_run() -> None:
    snap = Snapshot(
        migration(
            "RolledBack",
            rollback={
                "strategy": "dropCreatedObjects",
                "versions": ["2"],
                "verified": True,
                "message": "dropped 1 index",
            },
            rollbackRequest="shop-rollback-x1",
            requestedRollback={
                "request": "shop-rollback-x1",
                "strategy": "DropCreatedObjects",
                "reason": "p99 doubled",
                "requestedBy": "ann",
            },
        ),
        [],
        [],
    )
    text = "\n".join(status_screen(snap, NOW))
    assert "Rollback (dropCreatedObjects): verified yes, versions 2" in text
    assert "  on demand: migrationrollback/shop-rollback-x1 by ann: p99 doubled" in text


def test_the_tree_puts_pods_under_their_jobs_with_run_and_step() -> None:
    snap = Snapshot(migration("Succeeded"), [job("plan"), job("apply", pods=2)], [])
    lines = tree_lines(snap, NOW)
    assert lines[0].startswith("DatabaseMigration prod/shop  Succeeded  run shop-g1-abc")
    assert lines[1].startswith("├── Job shop-plan-g1  step plan  Complete  run shop-g1-abc")
    assert lines[2].startswith("│   └── Pod shop-plan-g1-x0  Completed (exit 0)")
    assert lines[3].startswith("└── Job shop-apply-g1  step apply")
    assert lines[4].startswith("    ├── Pod shop-apply-g1-x0")
    assert lines[5].startswith("    └── Pod shop-apply-g1-x1")


def test_a_rollback_check_job_is_named_by_its_request() -> None:
    check = StepJob(
        {
            "metadata": {
                "name": "shop-rollback-x-check",
                "labels": {"dbmigrate.io/rollback-request": "shop-rollback-x"},
            },
            "status": {},
        }
    )
    assert check.step == "rollback-check"
    assert check.run_id == "migrationrollback/shop-rollback-x"


def test_pod_state_says_why_a_pod_waits() -> None:
    pod = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}],
        }
    }
    assert pod_state(pod) == "ImagePullBackOff"
    assert pod_state({"metadata": {"deletionTimestamp": "x"}, "status": {}}) == "Terminating"


def test_age_reads_like_kubectl() -> None:
    assert age("2026-12-07T11:59:15Z", NOW) == "45s"
    assert age("2026-12-07T11:57:00Z", NOW) == "3m"
    assert age("2026-12-07T09:00:00Z", NOW) == "3h"
    assert age(None, NOW) == "-"


# --- rollback -------------------------------------------------------------------------------


def test_the_rollback_request_is_what_a_gitops_user_would_write() -> None:
    manifest = request_manifest(
        "shop", strategy="RestoreBackup", reason="p99 doubled", dry_run=True, requested_by="ann"
    )
    assert manifest["kind"] == "MigrationRollback"
    assert manifest["apiVersion"] == "dbmigrate.io/v1alpha1"
    assert manifest["metadata"]["generateName"] == "shop-rollback-"
    assert manifest["spec"] == {
        "migration": "shop",
        "dryRun": True,
        "strategy": "RestoreBackup",
        "reason": "p99 doubled",
        "requestedBy": "ann",
    }
    bare = request_manifest("shop", strategy=None, reason=None, dry_run=False, requested_by=None)
    assert bare["spec"] == {"migration": "shop", "dryRun": False}


def test_the_rollback_plan_shows_what_would_be_lost() -> None:
    request: dict[str, Any] = {
        "metadata": {"name": "shop-rollback-x"},
        "spec": {"migration": "shop"},
        "status": {
            "phase": "AwaitingConfirmation",
            "plan": {
                "strategy": "RestoreBackup",
                "restore": {"path": "/backups/prod/shop/x.dump", "sha256": "a1b2", "sizeBytes": 10},
                "versions": ["2"],
                "workloads": [{"kind": "Deployment", "name": "web", "fromReplicas": 3, "to": 0}],
            },
            "dataLoss": {
                "checked": True,
                "lossFound": True,
                "tables": [{"table": "public.orders", "rows": 900, "rowsWrittenSinceBackup": 12}],
                "walBytesSinceBackup": 65536,
                "summary": "12 rows written since the backup would be lost",
            },
            "evidence": {
                "verified": True,
                "rollback": {
                    "strategy": "restoreBackup",
                    "versions": ["2"],
                    "restoredFrom": "/backups/prod/shop/x.dump",
                    "restoredSha256": "f" * 64,
                },
                "workloadsRestored": [{"kind": "Deployment", "name": "web", "replicas": 3}],
                "migrationPhase": "RolledBack",
                "somethingNew": {"a": 1},
            },
        },
    }
    lines = plan_lines(request)
    assert lines[0] == "Rollback plan (RestoreBackup):"
    assert "  restore: /backups/prod/shop/x.dump (sha256 a1b2, 10 bytes)" in lines
    assert "  versions leaving the history: 2" in lines
    assert "    Deployment/web: 3 -> 0 replicas, then back" in lines
    assert "Data-loss preflight: DATA WOULD BE LOST" in lines
    assert any("public.orders" in line and "12" in line for line in lines)
    assert "  WAL written since the backup: 65536 bytes" in lines
    done = outcome_lines({**request, "status": {**request["status"], "phase": "Succeeded"}})
    assert done[0].startswith("shop-rollback-x: Succeeded")
    assert f"  restored /backups/prod/shop/x.dump (sha256 {'f' * 64})" in done
    assert "  verified: yes" in done and "  Deployment/web scaled back to 3" in done
    assert "  the migration is RolledBack" in done and "  somethingNew.a: 1" in done
    many = plan_lines({"status": {"plan": {"drop": [f"index i{n}" for n in range(5)]}}})
    assert many[1:3] == ["  drop:", "    index i0"]
    safe = plan_lines({"status": {"dataLoss": {"checked": True, "lossFound": False}}})
    assert "Data-loss preflight: no data would be lost" in safe


# --- annotations ----------------------------------------------------------------------------


def test_annotations_are_one_merge_patch_with_a_kubectl_equivalent() -> None:
    assert annotation_patch("dbmigrate.io/pause", None) == {
        "metadata": {"annotations": {"dbmigrate.io/pause": None}}
    }
    assert (
        kubectl_equivalent(MIGRATIONS, "shop", "prod", "dbmigrate.io/pause", None)
        == "kubectl annotate databasemigrations/shop -n prod dbmigrate.io/pause-"
    )
    first, second = token(), token()
    assert first != second and first[:4].isdigit()


# --- completion -----------------------------------------------------------------------------


def names(command: str, target: Target) -> list[str]:
    assert target.namespace in (None, "prod")
    return ["shop", "shipping", "other"] if command != "promote" else ["shop-rollout"]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([""], None),
        (["st"], ["status"]),
        (["status", ""], ["shop", "shipping", "other"]),
        (["status", "-n", "prod", "sh"], ["shop", "shipping"]),
        (["status", "shop", ""], []),
        (["promote", ""], ["shop-rollout"]),
        (["rollback", "shop", "--strategy", ""], ["DropCreatedObjects", "RestoreBackup"]),
        (["logs", "shop", "--step", "ap"], ["apply"]),
        (["completion", ""], ["bash", "zsh"]),
        (["status", "shop", "--wa"], ["--watch"]),
    ],
)
def test_completion_comes_from_the_parser(words: list[str], expected: list[str] | None) -> None:
    found = complete(words, build_parser(), names)
    if expected is None:
        assert {"status", "tree", "get", "approve", "rollback", "logs", "report", "wait"} <= set(
            found
        )
    else:
        assert found == expected


def test_the_bash_script_parses(tmp_path: Path) -> None:
    script = tmp_path / "completion.bash"
    script.write_text(SCRIPTS["bash"])
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert SCRIPTS["zsh"].startswith("#compdef kubectl-dbmigrate")


# --- the bundle -----------------------------------------------------------------------------


def test_the_bundle_masks_env_values_urls_and_registered_secrets(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "p", "managedFields": [{"manager": "x"}]},
        "spec": {
            "containers": [
                {
                    "env": [
                        {"name": "PGPASSWORD", "value": "plain-pw-1"},
                        {
                            "name": "DATABASE_URL",
                            "valueFrom": {"secretKeyRef": {"name": "s", "key": "uri"}},
                        },
                        {"name": "MODE", "value": "fast"},
                    ]
                }
            ]
        },
    }
    masked = strip(pod)
    env = masked["spec"]["containers"][0]["env"]
    assert env[0]["value"] == "***" and env[2]["value"] == "fast"
    assert "secretKeyRef" in env[1]["valueFrom"] and "managedFields" not in masked["metadata"]
    assert mask_env([{"name": "API_TOKEN", "value": "t"}]) == [
        {"name": "API_TOKEN", "value": "***"}
    ]

    register_secret("registered-secret-9")
    path = tmp_path / "b.zip"
    write_bundle(
        path,
        {
            "a.yaml": yaml.safe_dump(masked),
            "log.txt": "url postgresql://u:url-pw-22@h/db and registered-secret-9\n",
        },
    )
    with zipfile.ZipFile(path) as archive:
        every = "".join(archive.read(n).decode() for n in archive.namelist())
    for secret in ("plain-pw-1", "url-pw-22", "registered-secret-9"):
        assert secret not in every
    assert "postgresql://u:***@h/db" in every


# --- the client and the command line --------------------------------------------------------


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts:
  - {name: one, context: {cluster: c, user: u, namespace: shop-ns}}
  - {name: two, context: {cluster: c, user: u}}
current-context: one
"""


def test_the_namespace_comes_from_the_flag_the_context_or_default(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    assert Client(Target(str(path), None, None)).namespace == "shop-ns"
    assert Client(Target(str(path), "two", None)).namespace == "default"
    assert Client(Target(str(path), "two", "x")).namespace == "x"
    with pytest.raises(PluginError, match="cannot load the kubeconfig") as raised:
        Client(Target(str(path), "three", None))
    assert raised.value.code == 2


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    kube = Client(Target(str(path), None, None))
    forbidden = kube._error("PATCH", "/apis/dbmigrate.io/v1alpha1/x", 403, "Forbidden", "no")
    assert forbidden.code == 1 and "may not patch" in str(forbidden)
    assert "docs/kubectl-plugin.md" in str(forbidden)
    assert kube._error("GET", "/x", 503, "Unavailable", "").code == 3
    with pytest.raises(Exception, match=r"cannot reach the API server https://127\.0\.0\.1:1"):
        kube.items(MIGRATIONS)


def test_durations_read_as_kubectl_flags() -> None:
    assert seconds("90") == 90.0 and seconds("1m30s") == 90.0 and seconds("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError):
        seconds("soon")


def test_every_command_has_examples_and_the_exit_codes_in_its_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) >= {
        "status",
        "get",
        "tree",
        "approve",
        "rollback",
        "pause",
        "resume",
        "retry",
        "promote",
        "logs",
        "report",
        "wait",
        "completion",
    }
    for name, sub in commands.items():
        text = io.StringIO()
        sub.print_help(text)
        assert "examples:" in text.getvalue() and "exit codes" in text.getvalue(), name
        assert "--kubeconfig" in text.getvalue() and "--namespace" in text.getvalue(), name
