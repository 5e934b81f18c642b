"""Flux's view of a DatabaseMigration: kstatus's own Compute (sigs.k8s.io/cli-utils), run by the
small Go program in health/kstatus on every status in tests/data/statuses.

Current when Succeeded; Failed (Stalled=True) when Failed or RolledBack; InProgress otherwise,
including a generation the operator has not observed yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "health" / "kstatus"
STATUSES = sorted((ROOT / "tests" / "data" / "statuses").glob("*.json"))


def cache_dir() -> Path:
    base = os.environ.get("DBMIGRATE_TESTBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dbmigrate-testbed"
    )
    return Path(base)


@pytest.fixture(scope="module")
def kstatus_bin() -> Path:
    """The program, built once per source version (go.sum pins every module)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed: the kstatus check needs it (as the test bed does)")
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((MODULE / name).read_bytes())
    binary = cache_dir() / f"kstatus-{digest.hexdigest()[:16]}" / "kstatus"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
        subprocess.run(
            [go, "build", "-o", str(binary) + ".tmp", "."],
            cwd=MODULE,
            env=env,
            check=True,
            timeout=900,
        )
        os.replace(str(binary) + ".tmp", binary)
    return binary


def expected(obj: dict[str, Any]) -> str:
    status = obj["status"]
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return "InProgress"
    if status["phase"] == "Succeeded":
        return "Current"
    if status["phase"] in ("Failed", "RolledBack"):
        return "Failed"
    stalled = any(c["type"] == "Stalled" and c["status"] == "True" for c in status["conditions"])
    return "Failed" if stalled else "InProgress"


def run(binary: Path, paths: list[Path]) -> dict[str, tuple[str, str]]:
    out = subprocess.run(
        [str(binary), *map(str, paths)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    result = {}
    for line in out.splitlines():
        state, path, message = line.split("\t", 2)
        result[Path(path).stem] = (state, message)
    return result


def test_statuses_cover_current_inprogress_failed() -> None:
    kinds = {expected(json.loads(p.read_text())) for p in STATUSES}
    assert kinds == {"Current", "InProgress", "Failed"}


def test_kstatus_agrees_with_every_status(kstatus_bin: Path) -> None:
    computed = run(kstatus_bin, STATUSES)
    assert set(computed) == {p.stem for p in STATUSES}
    wrong = {
        p.stem: (computed[p.stem], expected(json.loads(p.read_text())))
        for p in STATUSES
        if computed[p.stem][0] != expected(json.loads(p.read_text()))
    }
    assert wrong == {}


def test_messages_explain(kstatus_bin: Path) -> None:
    by_name = {p.stem: p for p in STATUSES}
    computed = run(kstatus_bin, [by_name["rolled-back"], by_name["succeeded-new-generation"]])
    assert computed["rolled-back"] == (
        "Failed",
        "apply failed at 005 (lock timeout after 5 retries); dropped what this run created",
    )
    assert computed["succeeded-new-generation"][1] == (
        "DatabaseMigration generation is 2, but latest observed generation is 1"
    )


def test_bad_file_is_an_error(kstatus_bin: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    proc = subprocess.run([str(kstatus_bin), str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad.json" in proc.stderr
