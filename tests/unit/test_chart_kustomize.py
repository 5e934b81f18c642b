"""Both installs pass kubeconform (strict, with our CRD's schema), and the kustomize manifests
are the chart's objects: base = the chart's defaults, overlay = watchNamespaces [apps].

kubeconform and helm are built from the Go module proxy, kubectl (kustomize) by the test bed.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from tools import chart_tools as ct

pytestmark = pytest.mark.timeout(2400)  # the first run builds helm and kubectl
BASE = ct.ROOT / "manifests" / "base"
OVERLAY = ct.ROOT / "manifests" / "overlays" / "namespaced"
SAMPLES = sorted((ct.ROOT / "manifests" / "samples").glob("*.yaml"))
TOOL_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
MODES = {"cluster-wide": {}, "namespaced": {"watchNamespaces": ["team-a", "team-b"]}}


def assert_valid(text: str, *extra: str) -> dict[str, Any]:
    proc = ct.kubeconform(text, *extra)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, json.dumps(report["resources"], indent=1)
    return dict(report["summary"])


@pytest.mark.parametrize("mode", MODES)
def test_helm_template_passes_kubeconform(mode: str) -> None:
    values = {**MODES[mode], "serviceMonitor": {"enabled": True}}
    summary = assert_valid(ct.helm_template_text(values), "-skip", "ServiceMonitor")
    # SA, the two CRDs, (Cluster)Role(s) + binding(s), the Lease's Role + binding, Service,
    # Deployment, PodDisruptionBudget; the ServiceMonitor is skipped
    expected = 11 if mode == "cluster-wide" else 13
    assert (summary["valid"], summary["skipped"]) == (expected - 1, 1)


@pytest.mark.parametrize("path", [BASE, OVERLAY], ids=["base", "namespaced"])
def test_kustomize_passes_kubeconform(path: Any) -> None:
    summary = assert_valid(ct.kustomize_text(path))
    assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0


def test_samples_pass_kubeconform_with_the_crd_schema() -> None:
    assert SAMPLES, "manifests/samples has no sample"
    summary = assert_valid("---\n".join(p.read_text() for p in SAMPLES))
    assert summary["valid"] == len(SAMPLES)


def test_kubeconform_refuses_a_bad_migration() -> None:
    bad = yaml.safe_load(SAMPLES[0].read_text())
    bad["spec"]["backup"]["retention"] = "five"
    bad["spec"]["unknownField"] = True
    proc = ct.kubeconform(yaml.safe_dump(bad))
    assert proc.returncode == 1
    assert "retention" in proc.stdout and "unknownField" in proc.stdout


def normalised(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Objects by (kind, namespace, name), without the tools' own labels and annotations."""
    out = {}
    for doc in copy.deepcopy(docs):
        if doc["kind"] == "Namespace":
            continue  # the chart leaves namespace creation to `helm --create-namespace`
        meta = doc["metadata"]
        if doc["kind"] == "CustomResourceDefinition":
            meta.pop("labels", None)  # the chart's copy is crds/ verbatim; kustomize labels it
        for holder in (meta, doc.get("spec", {}).get("template", {}).get("metadata", {})):
            for label in TOOL_LABELS:
                holder.get("labels", {}).pop(label, None)
        meta.get("annotations", {}).pop("helm.sh/resource-policy", None)
        if meta.get("annotations") == {}:
            del meta["annotations"]
        out[(doc["kind"], meta.get("namespace", ""), meta["name"])] = doc
    return out


@pytest.mark.parametrize(
    ("path", "values"),
    [(BASE, {}), (OVERLAY, {"watchNamespaces": ["apps"]})],
    ids=["base", "namespaced"],
)
def test_kustomize_is_the_chart(path: Any, values: dict[str, Any]) -> None:
    chart = normalised(ct.helm_template({**values, "fullnameOverride": "dbmigrate-operator"}))
    plain = normalised(ct.documents(ct.kustomize_text(path)))
    assert sorted(plain) == sorted(chart)
    for key, obj in chart.items():
        assert plain[key] == obj, key
