"""Runs the install checks' real tools: helm, kubeconform and kubectl (for kustomize).

helm and kubeconform are built from the Go module proxy by tools/install-tools.sh, kubectl by
the test bed's testbed/build-controlplane.sh; all are cached outside the repo and built only once.
kubeconform's schemas are written offline by tools/k8s_jsonschema.py. The chart and cluster tests
import this module; ``python tools/chart_tools.py`` prints the rendered installs' check summary.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "Chart" / "dbmigrate-operator"
KUBE_VERSION = "1.34.4"  # the test bed's version (testbed/build-controlplane.sh)
RELEASE = "dbmigrate"
NAMESPACE = "dbmigrate-system"
BUILD_TIMEOUT = 1800  # helm takes ~6 minutes cold on two busy cores


class ToolError(RuntimeError):
    """A tool failed; the message carries its stderr."""


def _last_line(argv: list[str]) -> Path:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(argv)} failed:\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@functools.cache
def tools_bin() -> Path:
    """The folder holding helm and kubeconform (built on first use)."""
    return _last_line([str(ROOT / "tools" / "install-tools.sh"), "helm", "kubeconform"])


@functools.cache
def kubectl_bin() -> Path:
    """kubectl of the test bed's Kubernetes version (its `kustomize` builds the overlays)."""
    return _last_line([str(ROOT / "testbed" / "build-controlplane.sh"), "kubectl"]) / "kubectl"


@functools.cache
def schema_dir() -> Path:
    """kubeconform schemas of the built-in kinds and of DatabaseMigration."""
    cache = os.environ.get("DBMIGRATE_TESTBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dbmigrate-testbed"
    )
    out = Path(cache) / f"kubeconform-schemas-v{KUBE_VERSION}"
    return _last_line([sys.executable, str(ROOT / "tools" / "k8s_jsonschema.py"), str(out)])


def run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output (never raises on a non-zero exit)."""
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return run([str(tools_bin() / "helm"), *args])


def set_args(values: dict[str, Any] | None) -> list[str]:
    """``--set-json`` arguments for a values override (one per top-level key)."""
    return [f"--set-json={key}={json.dumps(value)}" for key, value in (values or {}).items()]


def helm_template_text(
    values: dict[str, Any] | None = None, *extra: str, namespace: str = NAMESPACE
) -> str:
    """``helm template`` of the chart; raises ToolError with helm's message on failure."""
    proc = helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *set_args(values),
        *extra,
    )
    if proc.returncode != 0:
        raise ToolError(proc.stderr)
    return proc.stdout


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm_template(values: dict[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
    return documents(helm_template_text(values, *extra))


def kustomize_text(path: Path) -> str:
    proc = run([str(kubectl_bin()), "kustomize", str(path)])
    if proc.returncode != 0:
        raise ToolError(proc.stderr)
    return proc.stdout


def kubeconform(text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """kubeconform -strict on a YAML stream, with our offline schemas."""
    location = str(schema_dir()) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    argv = [str(tools_bin() / "kubeconform"), "-strict", "-summary", "-output", "json"]
    return run([*argv, "-schema-location", location, *extra, "-"], stdin=text)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Documents of that kind (and name)."""
    return [
        d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]


if __name__ == "__main__":
    for mode in ({}, {"watchNamespaces": ["apps"]}):
        result = kubeconform(helm_template_text(mode))
        print(mode or "cluster-wide", result.returncode, result.stdout.strip()[-300:])
