"""The krew manifest of ``kubectl dbmigrate`` matches the archive the tree builds, and the
launcher in that archive runs the plugin (or says what to install when it cannot)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from dbmigrate import __version__
from tools import krew

pytestmark = pytest.mark.unit


def test_the_manifest_names_this_version_and_the_hash_of_a_fresh_build() -> None:
    manifest = yaml.safe_load(krew.MANIFEST.read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "dbmigrate"
    spec = manifest["spec"]
    assert spec["version"] == f"v{__version__}" == f"v{krew.version()}"
    assert spec["shortDescription"] and spec["description"] and spec["homepage"]
    (platform,) = spec["platforms"]
    assert platform["uri"].endswith(f"/v{__version__}/{krew.archive_name(__version__)}")
    built = krew.archive_bytes()
    assert krew.archive_bytes() == built  # reproducible: the same bytes every time
    assert platform["sha256"] == hashlib.sha256(built).hexdigest(), "run make krew"
    with tarfile.open(fileobj=io.BytesIO(built), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {f["from"] for f in platform["files"]} <= set(members)
    assert members[platform["bin"]].mode == 0o755


def test_the_launcher_runs_the_plugin_or_says_what_to_install(tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(krew.archive_bytes()), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    launcher = str(tmp_path / "kubectl-dbmigrate")
    env = {"PATH": os.environ.get("PATH", ""), "DBMIGRATE_PYTHON": sys.executable}
    ran = subprocess.run([launcher, "--version"], capture_output=True, text=True, env=env)
    assert ran.returncode == 0 and ran.stdout.strip() == f"kubectl-dbmigrate {__version__}"
    bare = subprocess.run(
        ["/bin/sh", launcher, "status", "x"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path)},  # no interpreter at all
    )
    assert bare.returncode == 2 and "pip install dbmigrate" in bare.stderr
