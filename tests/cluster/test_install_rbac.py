"""The chart's RBAC is enough, and nothing more: both rendered installs (cluster-wide and
namespaced) are applied to the API server (server-side apply), the operator runs with a token of
the chart's ServiceAccount (TokenRequest) and drives a small migration to Succeeded, and
``kubectl auth can-i --list`` for that account shows exactly the operator's rules.

The operator runs as a local process with the rendered Deployment's own arguments and
environment (only the kubeconfig is added), so the chart's args are checked against the CLI too.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from testbed.crd import wait_established
from tests.cluster.operator_harness import pod_url
from tests.webhook_receiver import TOKEN, free_port, running_receiver
from tools import chart_tools as ct

pytestmark = pytest.mark.timeout(1800)
SA_NAME = "dbmigrate-operator"  # fullnameOverride below
# What `kubectl auth can-i --list` shows for the operator's account in a served namespace, beyond
# what every authenticated account may do (measured on a fresh ServiceAccount).
OPERATOR_ROWS = {
    ("databasemigrations.dbmigrate.io", "get list watch patch create"),
    ("databasemigrations.dbmigrate.io/status", "get patch"),
    ("databasemigrations.dbmigrate.io/finalizers", "update"),
    ("migrationrollbacks.dbmigrate.io", "get list watch create patch"),
    ("migrationrollbacks.dbmigrate.io/status", "get patch"),
    ("migrationrollbacks.dbmigrate.io/finalizers", "update"),
    ("databasemigrationrollouts.dbmigrate.io", "get list watch patch"),
    ("databasemigrationrollouts.dbmigrate.io/status", "get patch"),
    ("databasemigrationrollouts.dbmigrate.io/finalizers", "update"),
    ("jobs.batch", "list watch create delete"),
    ("configmaps", "get create patch"),
    ("secrets", "get list"),
    ("serviceaccounts", "create"),
    ("roles.rbac.authorization.k8s.io", "get create patch"),
    ("rolebindings.rbac.authorization.k8s.io", "get create patch"),
    ("deployments.apps/scale", "get patch"),
    ("statefulsets.apps/scale", "get patch"),
    ("pods", "list"),
    ("persistentvolumeclaims", "get"),
    ("events", "create"),
}
CLUSTER_ONLY_ROWS = {("customresourcedefinitions.apiextensions.k8s.io", "list watch")}
# ... and in the operator's own namespace, in both modes: the leader election Lease.
LEASE_ROWS = {("leases.coordination.k8s.io", "get create update")}
POD_NAME = "dbmigrate-operator-7d4b9c-x2k8p"  # what the downward API would give the replica
TINY_SQL = "CREATE TABLE tiny (id bigint PRIMARY KEY, note text NOT NULL DEFAULT '');"


@dataclass
class Install:
    """One rendered install applied to the test bed."""

    mode: str
    operator_ns: str
    served_ns: str
    other_ns: str
    docs: list[dict[str, Any]]
    kubeconfig: Path

    @property
    def deployment(self) -> dict[str, Any]:
        (deployment,) = ct.find(self.docs, "Deployment")
        return deployment


def kubectl_ok(testbed: Any, *args: str, stdin: str | None = None) -> str:
    proc = testbed.kubectl(*args, input=stdin)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return str(proc.stdout)


def token_kubeconfig(testbed: Any, namespace: str, path: Path) -> Path:
    """A kubeconfig that logs in as the chart's ServiceAccount with a TokenRequest token."""
    token = kubectl_ok(testbed, "-n", namespace, "create", "token", SA_NAME, "--duration=1h")
    admin = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bed", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token.strip()}}],
        "contexts": [{"name": "operator", "context": {"cluster": "bed", "user": "operator"}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module", params=["cluster-wide", "namespaced"])
def install(
    request: pytest.FixtureRequest, testbed: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Install]:
    suffix = secrets.token_hex(3)
    operator_ns, served, other = f"op-{suffix}", f"apps-{suffix}", f"other-{suffix}"
    for ns in (operator_ns, served, other):
        kubectl_ok(testbed, "create", "namespace", ns)
    values: dict[str, Any] = {
        "fullnameOverride": SA_NAME,
        "health": {"port": free_port()},
        "metrics": {"enabled": True, "port": free_port()},
        "operator": {"logFormat": "json", "resyncSeconds": 2},
        "replicaCount": 0,  # the test runs the operator itself, as a local process
        "notifications": {
            "targets": [{"name": "platform", "format": "slack", "secretRef": {"name": "hook"}}],
            "attempts": 2,
        },
    }
    if os.environ.get("DBMIGRATE_IMAGE"):  # a cluster whose kubelet runs the image (kind)
        repository, tag = os.environ["DBMIGRATE_IMAGE"].rsplit(":", 1)
        values["image"] = {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}
    if request.param == "namespaced":
        values["watchNamespaces"] = [served]
    text = ct.helm_template_text(values, namespace=operator_ns)
    kubectl_ok(testbed, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=text)
    wait_established(testbed.kubectl)
    home = tmp_path_factory.mktemp(f"install-{request.param}")
    kubeconfig = token_kubeconfig(testbed, operator_ns, home / "kubeconfig")
    docs = ct.documents(text)
    try:
        yield Install(request.param, operator_ns, served, other, docs, kubeconfig)
    finally:
        for doc in docs:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                testbed.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"])
        for ns in (operator_ns, served, other):
            testbed.kubectl("delete", "namespace", ns, "--wait=false")


def can_i(testbed: Any, user: str, namespace: str) -> set[tuple[str, str, str]]:
    """Rows of ``kubectl auth can-i --list``: (resource or URL, resource names, verbs)."""
    out = kubectl_ok(testbed, "auth", "can-i", "--list", f"--as={user}", "-n", namespace)
    header, *lines = out.splitlines()
    urls, names, verbs = (header.index(c) for c in ("Non-Resource", "Resource Names", "Verbs"))
    rows = set()
    for line in lines:
        resource, url = line[:urls].strip(), line[urls:names].strip()
        target = resource or url
        rows.add((target, line[names:verbs].strip(), line[verbs:].strip().strip("[]")))
    return rows


def test_can_i_list_is_exactly_what_the_operator_needs(install: Install, testbed: Any) -> None:
    user = f"system:serviceaccount:{install.operator_ns}:{SA_NAME}"
    fresh = f"baseline-{secrets.token_hex(2)}"
    kubectl_ok(testbed, "-n", install.served_ns, "create", "serviceaccount", fresh)
    baseline = can_i(testbed, f"system:serviceaccount:{install.served_ns}:{fresh}", "default")
    expected = {(resource, "[]", verbs) for resource, verbs in OPERATOR_ROWS}
    if install.mode == "cluster-wide":
        expected |= {(resource, "[]", verbs) for resource, verbs in CLUSTER_ONLY_ROWS}
    assert can_i(testbed, user, install.served_ns) - baseline == expected
    elsewhere = expected if install.mode == "cluster-wide" else set()
    assert can_i(testbed, user, install.other_ns) - baseline == elsewhere
    lease = {(resource, "[]", verbs) for resource, verbs in LEASE_ROWS}
    assert can_i(testbed, user, install.operator_ns) - baseline == elsewhere | lease


class Operator:
    """``dbmigrate operator`` with the rendered Deployment's args and env, as the chart's SA."""

    def __init__(self, install: Install, log_path: Path, testbed: Any) -> None:
        (container,) = install.deployment["spec"]["template"]["spec"]["containers"]
        self.args = [*container["args"], f"--kubeconfig={install.kubeconfig}"]
        self.ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: env_value(testbed, install, e) for e in container["env"]}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        self.env.update(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "dbmigrate.cli.main", *self.args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def get(self, port: str, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.ports[port]}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def env_value(testbed: Any, install: Install, env: dict[str, Any]) -> str:
    """What the kubelet puts in an env variable of the rendered container."""
    if "value" in env:
        return str(env["value"])
    field = env["valueFrom"].get("fieldRef", {}).get("fieldPath")
    if field is not None:  # the downward API
        return {"metadata.name": POD_NAME, "metadata.namespace": install.operator_ns}[field]
    return secret_env(testbed, install, env["valueFrom"])


def secret_env(testbed: Any, install: Install, source: dict[str, Any]) -> str:
    """What the kubelet puts in an env variable ``valueFrom.secretKeyRef`` (operator's ns)."""
    ref = source["secretKeyRef"]
    path = f"jsonpath={{.data.{ref['key']}}}"
    raw = kubectl_ok(testbed, "-n", install.operator_ns, "get", "secret", ref["name"], "-o", path)
    return base64.b64decode(raw).decode()


def create_secret(testbed: Any, namespace: str, name: str, data: dict[str, str]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
    secret["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    kubectl_ok(testbed, "-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump(secret))


def migration(namespace: str) -> str:
    """A tiny DatabaseMigration (one CREATE TABLE, no backup) so the flow is quick."""
    obj = {
        "apiVersion": "dbmigrate.io/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": "tiny", "namespace": namespace},
        "spec": {
            "database": {"secretRef": {"name": "tiny-db", "uriKey": "uri"}},
            "source": {"inline": [{"name": "001_tiny.sql", "sql": TINY_SQL}]},
            "backup": {"enabled": False},
            "notifications": [{"name": "team", "secretRef": {"name": "tiny-hooks"}}],
        },
    }
    return yaml.safe_dump(obj)


def wait_terminal(
    testbed: Any, namespace: str, operator: Operator, timeout: float = 300
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if operator.proc is not None and operator.proc.poll() is not None:
            pytest.fail(f"the operator exited ({operator.proc.returncode}):\n{operator.log()}")
        out = kubectl_ok(testbed, "-n", namespace, "get", "dbm", "tiny", "-o", "yaml")
        status = yaml.safe_load(out).get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "RolledBack"):
            return status
        time.sleep(1)
    pytest.fail(f"no terminal phase after {timeout}s: {status}")


def remove_migration(testbed: Any, namespace: str) -> None:
    """Delete the resource while the operator runs (its finalizer); force it if that fails."""
    testbed.kubectl("-n", namespace, "delete", "dbm", "tiny", "--wait=false")
    gone = testbed.kubectl("-n", namespace, "wait", "--for=delete", "dbm/tiny", "--timeout=60s")
    if gone.returncode != 0:
        patch = '{"metadata":{"finalizers":null}}'
        testbed.kubectl("-n", namespace, "patch", "dbm", "tiny", "--type=merge", "-p", patch)


def test_operator_with_the_chart_credentials_reconciles(
    install: Install, testbed: Any, database_url: str, tmp_path: Path
) -> None:
    ns = install.served_ns
    create_secret(testbed, ns, "tiny-db", {"uri": pod_url(database_url)})
    with running_receiver() as receiver:
        # the resource's target: a Secret the operator reads with the chart's RBAC; the
        # operator-wide one: a Secret of the operator's namespace, through its environment
        create_secret(testbed, ns, "tiny-hooks", {"url": receiver.url("json")})
        create_secret(testbed, install.operator_ns, "hook", {"url": receiver.url("slack")})
        operator = Operator(install, tmp_path / "operator.log", testbed)
        operator.start()
        try:
            kubectl_ok(testbed, "apply", "--server-side", "-f", "-", stdin=migration(ns))
            status = wait_terminal(testbed, ns, operator)
            assert status["phase"] == "Succeeded", status
            receiver.wait_for(1, "json")
            assert [b["event"] for b in receiver.received("json")] == ["Succeeded"]
            # operator-wide: cluster-wide it also hears of other namespaces' migrations
            ours = f" {ns}/tiny "
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                chats = [m for m in receiver.received("slack") if ours in m["text"]]
                if chats:
                    break
                time.sleep(0.2)
            [chat] = chats
            assert chat["text"].startswith(f"DatabaseMigration {ns}/tiny succeeded")
            wait_delivered(testbed, ns)
            _check_operator(install, testbed, operator, database_url)
        finally:
            remove_migration(testbed, ns)
            operator.stop()
            print(operator.log()[-20000:])


def wait_delivered(testbed: Any, namespace: str, timeout: float = 30) -> None:
    """Until both deliveries are recorded Delivered in status.notifications."""
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        out = kubectl_ok(testbed, "-n", namespace, "get", "dbm", "tiny", "-o", "yaml")
        records = (yaml.safe_load(out).get("status") or {}).get("notifications") or []
        states = [d["state"] for r in records for d in r["deliveries"]]
        if states == ["Delivered", "Delivered"]:
            return
        time.sleep(1)
    pytest.fail(f"deliveries not recorded: {states}")


def _check_operator(install: Install, testbed: Any, operator: Operator, database_url: str) -> None:
    """Health, metrics, Events and log of the operator that drove the migration."""
    ns = install.served_ns
    assert operator.get("health", "/healthz")[0] == 200
    code, metrics = operator.get("metrics", "/metrics")
    assert code == 200
    found = re.search(r'^dbmigrate_migrations\{phase="Succeeded"\} (\S+)$', metrics, re.M)
    succeeded = float(found.group(1)) if found else 0.0
    # cluster-wide, the gauge also counts other namespaces' resources (a test's namespace that is
    # still being deleted, say); namespaced, only this one
    assert succeeded == 1.0 if install.mode == "namespaced" else succeeded >= 1.0, metrics
    for target in ("platform", "team"):
        assert (
            f'dbmigrate_notifications_total{{event="Succeeded",name="tiny",namespace="{ns}",'
            f'outcome="delivered",target="{target}"}} 1.0'
        ) in metrics
    events = kubectl_ok(testbed, "-n", ns, "get", "events", "-o", "json")
    assert '"reason"' in events, "the operator posted no Event"
    password = urlsplit(database_url).password
    assert not password or password not in events, "an Event carries the database password"
    assert TOKEN not in events, "an Event carries a webhook URL"
    lease_path = ["-n", install.operator_ns, "get", "lease", SA_NAME, "-o", "yaml"]
    lease = yaml.safe_load(kubectl_ok(testbed, *lease_path))["spec"]
    assert lease["holderIdentity"] == POD_NAME and lease["leaseDurationSeconds"] == 15
    log = operator.log()
    assert "is forbidden: User" not in log, "an API call was refused by RBAC"
    assert "Not enough permissions" not in log, "Kopf lacked a permission"
    assert not password or password not in log, "the database password was logged"
    assert TOKEN not in log, "a webhook URL was logged"
