"""The Helm chart: helm lint, a schema that refuses wrong types, a comment on every value, the
operator pod's security and probes, both RBAC modes, the CRD copy, NOTES and the ServiceMonitor.

helm is the real one, built from the Go module proxy (tools/install-tools.sh).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbmigrate.decision.notifications import parse_operator_target
from tools import chart_tools as ct

pytestmark = pytest.mark.timeout(2400)  # the first run builds helm (minutes on two cores)
VALUES = ct.CHART / "values.yaml"
SCHEMA = json.loads((ct.CHART / "values.schema.json").read_text())
CRD_SOURCE = ct.ROOT / "crds" / "dbmigrate.io_databasemigrations.yaml"
KEEP = {"helm.sh/resource-policy": "keep"}
HOOK = {"name": "platform", "secretRef": {"name": "platform-hook"}}
LEASE_ROLE = "dbmigrate-dbmigrate-operator-leader-election"


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a", "team-b"]}])
def test_helm_lint_strict(values: dict[str, Any]) -> None:
    proc = ct.helm("lint", "--strict", str(ct.CHART), *ct.set_args(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": -1}, "replicaCount"),
        ({"leaderElection": {"leaseDurationSeconds": 1}}, "leaseDurationSeconds"),
        ({"podDisruptionBudget": {"minAvailable": 0}}, "minAvailable"),
        ({"replicaCount": "1"}, "replicaCount"),
        ({"watchNamespaces": "team-a"}, "watchNamespaces"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"crds": {"create": "yes"}}, "crds"),
        ({"metrics": {"port": "9090"}}, "metrics"),
        ({"operator": {"logFormat": "xml"}}, "logFormat"),
        ({"operator": {"resyncSeconds": 0}}, "resyncSeconds"),
        ({"serviceMonitor": {"interval": 30}}, "interval"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"podLabels": {"team": 7}}, "podLabels"),
        ({"metric": {"enabled": True}}, "metric"),  # a typo of a key is refused, not ignored
        ({"notifications": {"targets": [{"name": "ops"}]}}, "secretRef"),
        ({"notifications": {"targets": [{**HOOK, "format": "teams"}]}}, "format"),
        ({"notifications": {"targets": [{**HOOK, "events": ["Exploded"]}]}}, "events"),
        ({"notifications": {"targets": [{**HOOK, "url": "https://x"}]}}, "url"),
        ({"notifications": {"attempts": 0}}, "attempts"),
    ],
)
def test_schema_refuses_wrong_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ct.ToolError, match="values don't meet the specifications") as refused:
        ct.helm_template(values)
    assert complaint in str(refused.value)


def _schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, child in node.get("properties", {}).items():
        paths.add(prefix + key)
        paths |= _schema_paths(child, f"{prefix}{key}.")
    return paths


def test_every_value_is_documented_and_declared() -> None:
    declared = _schema_paths(SCHEMA) - {"global"}
    stack: list[tuple[int, str]] = []
    seen, undocumented = set(), []
    previous = ""
    for line in VALUES.read_text().splitlines():
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if match:
            indent, key = len(match.group(1)), match.group(2)
            stack = [(i, k) for i, k in stack if i < indent]
            path = ".".join([k for _, k in stack] + [key])
            stack.append((indent, key))
            if path in declared:
                seen.add(path)
                if not previous.lstrip().startswith("#"):
                    undocumented.append(path)
        if line.strip():
            previous = line
    assert undocumented == []
    assert declared - seen == set(), "declared in values.schema.json but absent in values.yaml"


def _deployment(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (deployment,) = ct.find(ct.helm_template(values), "Deployment")
    return deployment


def test_operator_pod_is_restricted_and_probed() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    health_port = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert f"--liveness=http://0.0.0.0:{health_port}/healthz" in container["args"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    assert pod["serviceAccountName"] == "dbmigrate-dbmigrate-operator"


def test_args_follow_the_mode() -> None:
    args = _deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["operator", "--all-namespaces"]
    assert "--metrics-port=9090" in args and "--log-format=json" in args
    values = {"watchNamespaces": ["a", "b"], "metrics": {"enabled": False}}
    args = _deployment(values)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["operator", "--namespace=a", "--namespace=b"]
    assert not any(a.startswith(("--all-namespaces", "--metrics-port")) for a in args)


def test_the_operator_wide_pause_switch() -> None:
    args = _deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--paused" not in args
    paused = _deployment({"operator": {"paused": True}})
    assert "--paused" in paused["spec"]["template"]["spec"]["containers"][0]["args"]


def test_operator_wide_notification_targets() -> None:
    targets = [
        {**HOOK, "format": "slack", "events": ["Failed", "RolledBack"]},
        {"name": "audit", "secretRef": {"name": "audit-hook", "key": "endpoint"}},
    ]
    values = {"notifications": {"targets": targets, "attempts": 3, "timeoutSeconds": 2}}
    (container,) = _deployment(values)["spec"]["template"]["spec"]["containers"]
    notify = [a for a in container["args"] if a.startswith("--notify")]
    assert notify == [
        "--notify=name=platform,url-env=DBMIGRATE_NOTIFY_URL_0,format=slack,"
        "events=Failed+RolledBack",
        "--notify=name=audit,url-env=DBMIGRATE_NOTIFY_URL_1,format=json",
        "--notify-attempts=3",
        "--notify-timeout=2",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["DBMIGRATE_NOTIFY_URL_0"]["valueFrom"] == {
        "secretKeyRef": {"name": "platform-hook", "key": "url"}
    }
    assert env["DBMIGRATE_NOTIFY_URL_1"]["valueFrom"] == {
        "secretKeyRef": {"name": "audit-hook", "key": "endpoint"}
    }
    for arg in notify[:2]:  # the CLI accepts what the chart writes
        parse_operator_target(arg.removeprefix("--notify="))


def test_image_and_step_image_follow_values() -> None:
    values = {"image": {"repository": "registry.example/dbm", "tag": "1.2.3"}}
    (container,) = _deployment(values)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/dbm:1.2.3"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DBMIGRATE_IMAGE"] == "registry.example/dbm:1.2.3"
    (default,) = _deployment()["spec"]["template"]["spec"]["containers"]
    assert default["image"].endswith(":0.1.0")  # appVersion


def test_the_operator_accepts_the_deployment_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's args and env, parsed by the real CLI, are the settings the values say."""
    from dbmigrate.cli.main import build_parser
    from dbmigrate.cli.operator import operator_settings

    values = {
        "image": {"repository": "registry.example/dbm", "tag": "1.2.3"},
        "operator": {"resyncSeconds": 4},
        "watchNamespaces": ["a"],
    }
    (container,) = _deployment(values)["spec"]["template"]["spec"]["containers"]
    for var in container["env"]:
        if "value" in var:
            monkeypatch.setenv(var["name"], var["value"])
    monkeypatch.setenv("POD_NAMESPACE", ct.NAMESPACE)  # the chart's fieldRef
    args = build_parser(container["args"]).parse_args(container["args"])
    settings = operator_settings(args)
    assert settings is not None
    assert settings.resync_seconds == 4 and settings.namespaces == ("a",)
    assert settings.job_image == "registry.example/dbm:1.2.3"
    assert settings.lease is not None and settings.lease.namespace == ct.NAMESPACE


def _served_roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The (Cluster)Roles or bindings of the served namespaces, not the Lease's."""
    return [d for d in ct.find(docs, kind) if d["metadata"]["name"] != LEASE_ROLE]


def test_rbac_modes() -> None:
    cluster = ct.helm_template()
    (role,) = ct.find(cluster, "ClusterRole")
    (binding,) = ct.find(cluster, "ClusterRoleBinding")
    assert _served_roles(cluster, "Role") == [] and _served_roles(cluster, "RoleBinding") == []
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "dbmigrate-dbmigrate-operator",
            "namespace": ct.NAMESPACE,
        }
    ]
    namespaced = ct.helm_template({"watchNamespaces": ["team-a", "team-b"]})
    assert (
        ct.find(namespaced, "ClusterRole") == [] and ct.find(namespaced, "ClusterRoleBinding") == []
    )
    roles = _served_roles(namespaced, "Role")
    assert [r["metadata"]["namespace"] for r in roles] == ["team-a", "team-b"]
    assert [b["metadata"]["namespace"] for b in _served_roles(namespaced, "RoleBinding")] == [
        "team-a",
        "team-b",
    ]
    crd_rule = {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    }
    assert role["rules"] == [*roles[0]["rules"], crd_rule]  # the same rules, plus Kopf's CRD watch
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a"]}])
def test_leader_election_by_default(values: dict[str, Any]) -> None:
    """Two replicas elect a leader on a Lease of the release's namespace, named like the
    release, with the pod's name as identity; rollouts overlap; a PDB keeps one pod up."""
    docs = ct.helm_template(values)
    (deployment,) = ct.find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    lease_args = [a for a in container["args"] if a.startswith(("--leader", "--lease"))]
    assert lease_args == [
        "--leader-elect",
        "--lease-name=dbmigrate-dbmigrate-operator",
        "--lease-duration=15",
        "--lease-renew=5",
    ]
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    role = next(r for r in ct.find(docs, "Role") if r["metadata"]["name"] == LEASE_ROLE)
    assert role["metadata"]["namespace"] == ct.NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    binding = next(b for b in ct.find(docs, "RoleBinding") if b["metadata"]["name"] == LEASE_ROLE)
    assert binding["roleRef"]["name"] == LEASE_ROLE
    assert binding["subjects"][0]["namespace"] == ct.NAMESPACE
    (pdb,) = ct.find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector


def test_one_replica_has_no_pdb_and_standalone_stays_single() -> None:
    assert ct.find(ct.helm_template({"replicaCount": 1}), "PodDisruptionBudget") == []
    standalone = {"replicaCount": 1, "leaderElection": {"enabled": False}}
    docs = ct.helm_template(standalone)
    (deployment,) = ct.find(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith(("--leader", "--lease"))]
    assert not [r for r in ct.find(docs, "Role") if r["metadata"]["name"] == LEASE_ROLE]
    with pytest.raises(ct.ToolError, match=r"replicaCount > 1 needs leaderElection\.enabled"):
        ct.helm_template({"replicaCount": 2, "leaderElection": {"enabled": False}})


def test_rbac_and_service_account_can_be_left_out() -> None:
    values = {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "mine"}}
    docs = ct.helm_template(values)
    kinds = {d["kind"] for d in docs}
    assert not kinds & {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    }
    assert _deployment(values)["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    with pytest.raises(ct.ToolError, match=r"serviceAccount\.name is required"):
        ct.helm_template({"serviceAccount": {"create": False}})


def test_crd_template_is_the_generated_crd() -> None:
    check = subprocess.run(
        [sys.executable, str(ct.ROOT / "tools" / "sync_chart_crd.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    template = (ct.CHART / "templates" / "crd.yaml").read_text()
    body = "\n".join(line for line in template.splitlines() if not line.startswith(("#", "{{")))
    chart_crd = yaml.safe_load(body)
    assert chart_crd["metadata"].pop("annotations") == KEEP
    assert chart_crd == yaml.safe_load(CRD_SOURCE.read_text())
    rendered = ct.find(ct.helm_template(), "CustomResourceDefinition")
    names = sorted(r["metadata"]["name"] for r in rendered)
    assert names == ["databasemigrations.dbmigrate.io", "migrationrollbacks.dbmigrate.io"]
    assert all(r["metadata"]["annotations"] == KEEP for r in rendered)
    assert ct.find(ct.helm_template({"crds": {"create": False}}), "CustomResourceDefinition") == []


def test_service_monitor() -> None:
    assert ct.find(ct.helm_template(), "ServiceMonitor") == []
    values = {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}
    (monitor,) = ct.find(ct.helm_template(values), "ServiceMonitor")
    (service,) = ct.find(ct.helm_template(values), "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    with pytest.raises(ct.ToolError, match=r"serviceMonitor\.enabled needs metrics\.enabled"):
        ct.helm_template({"serviceMonitor": {"enabled": True}, "metrics": {"enabled": False}})


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a"], "crds": {"create": False}}])
def test_notes_tell_what_to_do_next(values: dict[str, Any], tmp_path: Path) -> None:
    # helm renders NOTES.txt only when installing into a cluster; in a copy of the chart the same
    # text becomes a named template, printed as a YAML string by `helm template`.
    chart = tmp_path / "chart"
    shutil.copytree(ct.CHART, chart)
    text = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    named = '{{- define "notes" -}}' + text + "{{- end }}"
    (chart / "templates" / "_notes.tpl").write_text(named)
    (chart / "templates" / "notes.yaml").write_text('notes: {{ include "notes" . | toJson }}\n')
    args = ["--namespace", ct.NAMESPACE, "--kube-version", ct.KUBE_VERSION, *ct.set_args(values)]
    proc = ct.helm("template", ct.RELEASE, str(chart), "--show-only", "templates/notes.yaml", *args)
    assert proc.returncode == 0, proc.stderr
    notes = yaml.safe_load(proc.stdout)["notes"]
    assert "kubectl -n APP_NS get dbm -w" in notes
    assert "keeps the CRD" in notes
    lease = "get lease dbmigrate-dbmigrate-operator -o jsonpath='{.spec.holderIdentity}'"
    assert lease in notes  # where to find the leader among the replicas
    if values:
        assert "team-a (Roles there only)" in notes
        assert "install the CRD yourself" in notes
    else:
        assert "every namespace" in notes
