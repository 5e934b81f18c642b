"""Installs the CRDs (DatabaseMigration, and with it MigrationRollback) on a test bed and
waits until the API server serves them.

One place for tests, benchmarks and the demo. It polls the Established condition instead of
``kubectl wait``, which fails outright while a just-created CRD has no conditions yet.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from dbmigrate import API_GROUP, PLURAL

CRD_FILE = Path(__file__).resolve().parents[1] / "crds" / "dbmigrate.io_databasemigrations.yaml"
CRD_NAME = f"crd/{PLURAL}.{API_GROUP}"
ROLLBACK_CRD_FILE = CRD_FILE.with_name("dbmigrate.io_migrationrollbacks.yaml")
ROLLBACK_CRD_NAME = f"crd/migrationrollbacks.{API_GROUP}"
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


def wait_established(kubectl: Kubectl, timeout: float = 60, name: str = CRD_NAME) -> None:
    """Return once the CRD is Established; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    jsonpath = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
    while time.monotonic() < deadline:
        if kubectl("get", name, "-o", jsonpath).stdout.strip() == "True":
            return
        time.sleep(0.5)
    raise RuntimeError(f"{name} did not become Established within {timeout:.0f} s")


def install_crd(kubectl: Kubectl, crd_file: Path = CRD_FILE, timeout: float = 60) -> None:
    """Server-side apply the CRD (taking over conflicting fields) and wait until it is served;
    the MigrationRollback CRD comes with it (the operator watches both)."""
    for path, name in ((crd_file, CRD_NAME), (ROLLBACK_CRD_FILE, ROLLBACK_CRD_NAME)):
        done = kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        if done.returncode != 0:
            raise RuntimeError(f"installing {path.name} failed: {done.stderr.strip()}")
        wait_established(kubectl, timeout, name)
