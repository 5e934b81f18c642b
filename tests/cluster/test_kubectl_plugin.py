"""``kubectl dbmigrate`` as a person runs it: the installed ``kubectl-dbmigrate`` as a subprocess
with a kubeconfig, and through a real ``kubectl`` binary that finds it (and its completer) on
PATH, against the real API server, Job controller and operator. One migration with a manual
approval is shared by every command (to keep the tier's time short): status while it waits,
the tree, approve (refused, then given), wait, the screen once it succeeded, logs, the support
bundle with its secrets masked, pause and resume, retry's echo, and completion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from dbmigrate.api.labels import APPROVE_ANNOTATION, PAUSE_ANNOTATION, RETRY_ANNOTATION
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    crd,
    history_versions,
    migration_files,
    operator,
    ready_database,
    sample_spec,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

BIN = Path(sys.executable).parent
PLUGIN = str(BIN / "kubectl-dbmigrate")
KNOWN_PASSWORD = "Kn0wn-Pa55-f0r-the-bundle"
NAME = "shop"


class Plugin:
    """Runs the plugin with the test bed's kubeconfig and namespace, directly or via kubectl."""

    def __init__(self, testbed: Any, namespace: str) -> None:
        self.kubeconfig = str(testbed.kubeconfig)
        self.kubectl_bin = str(testbed.kubectl_bin)
        self.ns = namespace
        # as in a person's shell: the venv's bin (the plugin) on PATH, no KUBECONFIG to lean on
        self.env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        self.env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"

    def __call__(
        self, *args: str, stdin: str = "", via_kubectl: bool = False, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        flags = ["--kubeconfig", self.kubeconfig, "-n", self.ns]
        argv = (
            [self.kubectl_bin, "dbmigrate", *args, *flags]
            if via_kubectl
            else [PLUGIN, *args, *flags]
        )
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_bin, *args], capture_output=True, text=True, env=self.env, timeout=60
        )

    def together(self, *calls: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Several read-only invocations at once, as several terminals would (the tier's time
        is mostly interpreters starting); ``("kubectl", ...)`` runs kubectl itself."""
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = [
                pool.submit(self.kubectl, *c[1:]) if c[0] == "kubectl" else pool.submit(self, *c)
                for c in calls
            ]
            return [f.result() for f in futures]


def _ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _annotations(cluster: Cluster) -> dict[str, str]:
    return ((cluster.get(NAME) or {}).get("metadata") or {}).get("annotations") or {}


def test_the_plugin_drives_one_migration_from_approval_to_the_support_bundle(
    testbed: Any,
    cluster: Cluster,
    operator: OperatorProcess,
    database_url: str,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    run = Plugin(testbed, cluster.ns)
    ready_database(cluster, database_url, files=migration_files(2))
    cluster.kube.request(  # the Secret also holds the password on its own, as many do
        "PATCH",
        f"/api/v1/namespaces/{cluster.ns}/secrets/analytics-db",
        {"stringData": {"password": KNOWN_PASSWORD}},
        content_type="application/merge-patch+json",
    )
    spec = sample_spec(
        verification={"analyze": False}, backup={"enabled": False}, approval={"mode": "Manual"}
    )
    cluster.create(
        {
            "apiVersion": "dbmigrate.io/v1alpha1",
            "kind": "DatabaseMigration",
            "metadata": {
                "name": NAME,
                # a URL with a password where a person may well paste one: an annotation
                "annotations": {"example.com/db": f"postgresql://app:{KNOWN_PASSWORD}@db:5432/x"},
            },
            "spec": spec,
        }
    )

    # while the plan step runs: what is missing is named (the resource and its namespace, a
    # resource type not served), and wait in CI times out (3) while the run waits for approval
    missing, promote, early = run.together(
        ("status", "nothing-here"), ("promote", "some-rollout"), ("wait", NAME, "--timeout", "1s")
    )
    assert missing.returncode == 2, missing.stderr
    assert f"DatabaseMigration 'nothing-here' not found in namespace {cluster.ns!r}" in (
        missing.stderr
    )
    assert promote.returncode == 2, promote.stderr
    assert (  # the rollout resource's CRD may or may not be installed on this cluster
        "does not serve DatabaseMigrationRollout" in promote.stderr
        or "DatabaseMigrationRollout 'some-rollout' not found" in promote.stderr
    )

    assert early.returncode == 3, early.stdout + early.stderr
    assert "timed out" in early.stderr

    waiting = cluster.wait_phase(NAME, "WaitingForApproval", timeout=90)
    plan_hash = waiting["plan"]["planHash"]

    # status: the one screen, with the exact next command
    outputs = run.together(
        ("status", NAME),
        ("status", NAME, "-o", "json"),
        ("status", NAME, "-w", "--interval", "0.5s", "--timeout", "20s"),
        ("tree", NAME),
    )
    screen, as_json, status_w, tree = (_ok(done) for done in outputs)
    assert "phase:    WaitingForApproval" in screen
    assert f"hash: {plan_hash}" in screen
    assert f"approve: kubectl dbmigrate approve {NAME} -n {cluster.ns}" in screen
    assert f"{APPROVE_ANNOTATION}={plan_hash}" in screen
    assert "Conditions:" in screen and "WaitingForApproval" in screen
    assert f"{NAME}-plan-g1" in screen  # the plan Job, with its pod under it
    assert "Lint (" in screen and "Preflight:" in screen
    document = json.loads(as_json)
    assert document["migration"]["status"]["phase"] == "WaitingForApproval"
    assert [j["step"] for j in document["jobs"]] == ["plan"]
    assert document["jobs"][0]["pods"], "the plan Job's pod"
    assert any("approve" in line for line in document["next"])
    assert "WaitingForApproval" in status_w  # -w stops by itself: the run waits for a person

    # tree: resource -> Jobs -> pods, with run and step
    run_id = waiting["runId"]
    assert tree.splitlines()[0].startswith(f"DatabaseMigration {cluster.ns}/{NAME}")
    assert f"Job {NAME}-plan-g1  step plan" in tree and f"run {run_id}" in tree
    assert "└── Pod " in tree

    # approve: the plan is shown and a "no" changes nothing; a "yes" sets the hash
    refused = run("approve", NAME, stdin="n\n")
    assert refused.returncode == 1 and "not approved" in refused.stdout
    assert plan_hash in refused.stdout and "pending" in refused.stdout
    assert APPROVE_ANNOTATION not in _annotations(cluster)
    approved = _ok(run("approve", NAME, stdin="y\n", via_kubectl=True))
    assert f"approved plan {plan_hash}" in approved
    assert f"kubectl annotate databasemigrations/{NAME}" in approved  # the GitOps equivalent
    assert _annotations(cluster)[APPROVE_ANNOTATION] == plan_hash

    # wait: exits 0 once Ready
    done = _ok(run("wait", NAME, "--timeout", "120s", via_kubectl=True))
    assert "is Ready" in done
    assert history_versions(database_url) == {1: "applied", 2: "applied"}

    # an Event that quotes the credentials, as a careless tool might: the bundle must mask it
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{NAME}.leak"},
            "involvedObject": {
                "apiVersion": "dbmigrate.io/v1alpha1",
                "kind": "DatabaseMigration",
                "name": NAME,
                "namespace": cluster.ns,
            },
            "reason": "Note",
            "type": "Normal",
            "message": f"connected to {testbed.pod_url(database_url)} with {KNOWN_PASSWORD}",
            "lastTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    bundle = tmp_path / "bundle.zip"
    final, listing, logs, reported, commands, names_done, bash, helped = run.together(
        ("status", NAME),
        ("get",),
        ("logs", NAME),
        ("report", NAME, "-o", str(bundle)),
        # completion through kubectl's own plugin completion, and the standalone script
        ("kubectl", "__complete", "dbmigrate", "st"),
        (
            "kubectl",
            "__complete",
            "dbmigrate",
            "status",
            "--kubeconfig",
            run.kubeconfig,
            "-n",
            cluster.ns,
            "",
        ),
        ("completion", "bash"),
        ("kubectl", "dbmigrate", "status", "--help"),
    )
    assert "phase:    Succeeded" in _ok(final) and "Apply: succeeded" in final.stdout
    assert f"undo, if it causes issues: kubectl dbmigrate rollback {NAME}" in final.stdout
    assert f"Job {NAME}-apply-g1  step apply" in _ok(listing)
    assert commands.stdout.splitlines()[:2] == ["status", ":4"], commands.stdout
    assert NAME in names_done.stdout.splitlines(), names_done.stdout
    assert "complete -F _kubectl_dbmigrate" in _ok(bash)
    assert "examples:" in _ok(helped) and "exit codes" in helped.stdout

    # logs: every step pod in run order, where a kubelet serves logs
    headers = [line for line in logs.stdout.splitlines() if line.startswith("==> step ")]
    assert [h.split(":")[0] for h in headers] == [
        "==> step plan",
        "==> step apply",
        "==> step verify",
    ], logs.stdout
    if testbed.real_kubelet:
        assert logs.returncode == 0, logs.stderr
        assert "plan hash" in logs.stdout  # what the plan step printed
    else:  # the local test bed's process kubelet serves no logs: each pod is named, exit 1
        assert logs.returncode == 1
        assert "log of pod" in logs.stderr and "unavailable" in logs.stderr

    # report: the bundle, with no secret in any file
    _ok(reported)
    password = unquote(urlsplit(database_url).password or "")
    assert len(password) >= 8
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert {"migration.yaml", "jobs.yaml", "pods.yaml", "events.yaml", "plan.md"} <= names
        assert {"lint.sarif", "status.txt", "README.txt"} <= names
        texts = {n: archive.read(n).decode() for n in names}
    assert json.loads(texts["lint.sarif"])["version"] == "2.1.0"
    assert plan_hash in texts["plan.md"]
    assert "Note" in texts["events.yaml"] and "***" in texts["events.yaml"]
    assert "example.com/db: postgresql://app:***@db:5432/x" in texts["migration.yaml"]
    for file, text in texts.items():
        for secret in (password, quote(password, safe=""), KNOWN_PASSWORD):
            assert secret not in text, f"a secret is in {file}"

    # pause and resume: the annotation, shown on the screen with the way back
    _ok(run("pause", NAME))
    assert PAUSE_ANNOTATION in _annotations(cluster)
    assert f"resume: kubectl dbmigrate resume {NAME}" in _ok(run("status", NAME))
    _ok(run("resume", NAME))
    assert PAUSE_ANNOTATION not in _annotations(cluster)

    # retry: a token the operator must echo in status.lastHandledRetry
    retried = run("retry", NAME, "--timeout", "2s")
    token = _annotations(cluster)[RETRY_ANNOTATION]
    if cluster.status(NAME).get("lastHandledRetry") == token:
        assert retried.returncode == 0 and "the operator handled it" in retried.stdout
    else:  # an operator that does not echo it yet: exit 3, and the reason said
        assert retried.returncode == 3, retried.stdout + retried.stderr
        assert "has not handled the retry" in retried.stderr
    print(f"plugin scenario took {time.monotonic() - began:.1f}s")
