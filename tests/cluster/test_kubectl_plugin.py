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

import psycopg
import pytest
import yaml

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
DOC = Path(__file__).resolve().parents[2] / "docs" / "kubectl-plugin.md"


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
        self,
        *args: str,
        stdin: str = "",
        via_kubectl: bool = False,
        timeout: float = 180,
        kubeconfig: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        flags = ["--kubeconfig", kubeconfig or self.kubeconfig, "-n", self.ns]
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


def documented_role() -> dict[str, Any]:
    """The Role docs/kubectl-plugin.md gives the people who operate migrations."""
    text = DOC.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    roles = [yaml.safe_load(b) for b in blocks if "kind: Role" in b]
    assert len(roles) == 1, "docs/kubectl-plugin.md should show one Role"
    role: dict[str, Any] = roles[0]
    return role


def person(testbed: Any, cluster: Cluster, name: str, folder: Path, *, role: bool) -> str:
    """A kubeconfig of a ServiceAccount token (a person with no rights of their own), bound to
    the documented Role when ``role``."""
    done = testbed.kubectl("-n", cluster.ns, "create", "serviceaccount", name)
    assert done.returncode == 0, done.stderr
    if role:
        rules = documented_role()
        cluster.create({**rules, "metadata": {"name": name}})
        cluster.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": cluster.ns}],
            }
        )
    token = testbed.kubectl("-n", cluster.ns, "create", "token", name, "--duration=1h")
    assert token.returncode == 0, token.stderr
    admin = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": name, "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": name}}],
        "current-context": name,
    }
    path = folder / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)


def write_rows(database_url: str) -> None:
    """Rows written after the run that created ``users``: what a DropCreatedObjects rollback of
    that run would lose, so its preflight finds a loss."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, display_name) SELECT 'u' || g || '@example.com', 'U' || g "
            "FROM generate_series(1, 25) g"
        )


def _ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _annotations(cluster: Cluster) -> dict[str, str]:
    return ((cluster.get(NAME) or {}).get("metadata") or {}).get("annotations") or {}


def step_headers(text: str) -> list[str]:
    """The steps of the ``==> step STEP: pod ...`` headers of ``logs``, in order."""
    return [
        line.split(":")[0].removeprefix("==> step ")
        for line in text.splitlines()
        if line.startswith("==> step ")
    ]


@pytest.mark.local_testbed(reason="the whole command set once; kind runs the logs test below")
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

    # pause and resume, while the plan step runs: the annotation (the screen's way back is
    # unit-tested; the operator's side has its own tests)
    assert "resume: kubectl dbmigrate resume" in _ok(run("pause", NAME))
    assert PAUSE_ANNOTATION in _annotations(cluster)
    _ok(run("resume", NAME))
    assert PAUSE_ANNOTATION not in _annotations(cluster)

    operator_user = person(testbed, cluster, "operator-user", tmp_path, role=True)
    nobody = person(testbed, cluster, "nobody", tmp_path, role=False)
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
    refused_rbac = run("status", NAME, kubeconfig=nobody)  # no Role: the missing verb is named
    assert refused_rbac.returncode == 1, refused_rbac.stderr
    assert "forbidden" in refused_rbac.stderr and "may not get" in refused_rbac.stderr
    assert "docs/kubectl-plugin.md" in refused_rbac.stderr
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
    # as a person bound to the documented Role only, through kubectl
    approved = _ok(run("approve", NAME, stdin="y\n", via_kubectl=True, kubeconfig=operator_user))
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
    write_rows(database_url)
    strategy = ("--strategy", "DropCreatedObjects")
    final, listing, logs, reported, commands, names_done, bash, helped, dry = run.together(
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
        # rollback on demand, its dry run first: the plan and the data-loss preflight
        ("rollback", NAME, *strategy, "--dry-run", "--reason", "a rehearsal"),
    )
    assert "phase:    Succeeded" in _ok(final) and "Apply: succeeded" in final.stdout
    assert f"undo, if it causes issues: kubectl dbmigrate rollback {NAME}" in final.stdout
    assert f"Job {NAME}-apply-g1  step apply" in _ok(listing)
    assert commands.stdout.splitlines()[:2] == ["status", ":4"], commands.stdout
    assert NAME in names_done.stdout.splitlines(), names_done.stdout
    assert "complete -F _kubectl_dbmigrate" in _ok(bash)
    assert "examples:" in _ok(helped) and "exit codes" in helped.stdout

    # logs: every step pod in run order; the test bed's process kubelet serves no logs, so
    # each pod is named as unavailable and the command exits 1 (kind reads them: below)
    steps = [h for h in step_headers(logs.stdout) if h != "rollback-check"]  # the dry run's
    # the approval had the files read again: a second plan attempt before the apply
    assert steps == ["plan", "plan", "apply", "verify"], logs.stdout
    assert logs.returncode == 1
    assert "log of pod" in logs.stderr and "unavailable" in logs.stderr

    # report: the bundle, with no secret in any file
    _ok(reported)
    password = unquote(urlsplit(database_url).password or "")
    assert len(password) >= 8
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert {"migration.yaml", "jobs.yaml", "pods.yaml", "events.yaml", "plan.md"} <= names
        assert {"lint.sarif", "status.txt", "README.txt", "rollbacks.yaml"} <= names
        texts = {n: archive.read(n).decode() for n in names}
    assert json.loads(texts["lint.sarif"])["version"] == "2.1.0"
    assert plan_hash in texts["plan.md"]
    assert "Note" in texts["events.yaml"] and "***" in texts["events.yaml"]
    assert "example.com/db: postgresql://app:***@db:5432/x" in texts["migration.yaml"]
    for file, text in texts.items():
        for secret in (password, quote(password, safe=""), KNOWN_PASSWORD):
            assert secret not in text, f"a secret is in {file}"

    assert "Rollback plan (DropCreatedObjects):" in _ok(dry)
    assert "Data-loss preflight: DATA WOULD BE LOST" in dry.stdout and "users" in dry.stdout
    assert "dry run: nothing was changed" in dry.stdout
    assert cluster.status(NAME)["phase"] == "Succeeded"

    # the rollback itself: the plan shown, the loss confirmed by typing the name, followed
    undone = run("rollback", NAME, *strategy, "--reason", "p99 doubled", stdin=f"y\n{NAME}\n")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "Data-loss preflight: DATA WOULD BE LOST" in undone.stdout
    assert "Type the migration's name" in undone.stdout
    assert "confirmed; the rollback runs" in undone.stdout and ": Succeeded" in undone.stdout
    assert cluster.wait_phase(NAME, "RolledBack", timeout=30)["phase"] == "RolledBack"
    assert "rolled_back" in set(history_versions(database_url).values())
    failed, after = run.together(("wait", NAME, "--timeout", "10s"), ("status", NAME))
    assert failed.returncode == 1 and "is RolledBack" in failed.stdout  # CI: a failure is 1
    assert f"kubectl dbmigrate status {NAME} -n {cluster.ns}" in failed.stderr
    assert "on demand: migrationrollback/" in _ok(after) and "p99 doubled" in after.stdout
    assert f"retry: kubectl dbmigrate retry {NAME}" in after.stdout

    # retry: a token the operator must echo in status.lastHandledRetry. With the operator down
    # the plugin says so (exit 3) and that the annotation stays; the operator, once back, acts
    # on it as that message promises, and the plugin then reports it handled
    operator.stop()
    unheard = run("retry", NAME, "--timeout", "1s")
    assert unheard.returncode == 3, unheard.stdout + unheard.stderr
    assert "has not handled the request" in unheard.stderr
    assert "annotation stays" in unheard.stderr
    token = _annotations(cluster)[RETRY_ANNOTATION]
    operator.start()
    cluster.wait(NAME, lambda s: s.get("lastHandledRetry") == token, "the echo", timeout=60)
    started = cluster.wait_event(NAME, lambda e: e["reason"] == "RetryRequested")
    assert token in started["message"], started["message"]
    print(f"plugin scenario took {time.monotonic() - began:.1f}s")


@pytest.mark.real_kubelet
def test_logs_follow_real_step_pods_in_run_order(
    testbed: Any, cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    """On kind: ``logs -f`` started with the migration follows each step pod as a real kubelet
    runs it, in run order, and ends with the run; ``logs --step`` reads one step afterwards."""
    began = time.monotonic()
    run = Plugin(testbed, cluster.ns)
    ready_database(cluster, database_url, files=migration_files(2))
    cluster.migration(NAME, sample_spec(verification={"analyze": False}, backup={"enabled": False}))
    follow = subprocess.Popen(
        [PLUGIN, "logs", NAME, "-f", "--kubeconfig", run.kubeconfig, "-n", cluster.ns],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run.env,
    )
    try:
        out, err = follow.communicate(timeout=240)
    finally:
        follow.kill()
    assert follow.returncode == 0, out + err
    assert step_headers(out) == ["plan", "apply", "verify"], out
    assert "plan hash" in out  # what the plan step printed, read through the kubelet
    assert cluster.status(NAME)["phase"] == "Succeeded"
    apply_only = run("logs", NAME, "--step", "apply", via_kubectl=True)
    assert step_headers(_ok(apply_only)) == ["apply"]
    print(f"logs on real pods took {time.monotonic() - began:.1f}s")
