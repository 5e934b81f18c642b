"""How GitOps tools judge a DatabaseMigration, shared by the unit tests (hand-written statuses) and
the cluster tests (statuses captured from live resources): Argo CD's view through the real Lua
health script (lupa, Lua 5.1 like Argo CD's gopher-lua), Flux's view through the kstatus program
in health/kstatus (sigs.k8s.io/cli-utils' own status.Compute), and what each should conclude.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lupa import lua51

ROOT = Path(__file__).resolve().parents[1]
LUA_SCRIPT = (ROOT / "health" / "argocd" / "health.lua").read_text()
KSTATUS_MODULE = ROOT / "health" / "kstatus"
SUSPENDED = {"WaitingForApproval", "WaitingForWindow"}
DEGRADED = {"Failed", "RolledBack"}


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run health.lua as Argo CD does: a global ``obj`` table, the script's returned table."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(LUA_SCRIPT)
    return str(result["status"]), str(result["message"])


def _stalled(status: dict[str, Any]) -> bool:
    conditions = status.get("conditions") or []
    return any(c["type"] == "Stalled" and c["status"] == "True" for c in conditions)


def expected_argocd_health(obj: dict[str, Any]) -> str:
    """The health Argo CD should show, from the phase, the generations and Stalled alone."""
    status = obj.get("status") or {}
    phase = status.get("phase")
    observed = status.get("observedGeneration")
    if phase is None or (observed is not None and observed < obj["metadata"]["generation"]):
        return "Progressing"
    if phase == "Succeeded" and not _stalled(status):
        return "Healthy"
    if phase in DEGRADED or _stalled(status):
        return "Degraded"
    return "Suspended" if phase in SUSPENDED else "Progressing"


def expected_kstatus(obj: dict[str, Any]) -> str:
    """The kstatus result Flux should get: Current, InProgress or Failed."""
    status = obj["status"]
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return "InProgress"
    if status["phase"] == "Succeeded" and not _stalled(status):
        return "Current"
    if status["phase"] in DEGRADED:
        return "Failed"
    return "Failed" if _stalled(status) else "InProgress"


def kstatus_cache_dir() -> Path:
    base = os.environ.get("DBMIGRATE_TESTBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dbmigrate-testbed"
    )
    return Path(base)


def build_kstatus() -> Path | None:
    """The kstatus program, built once per source version; None when Go is not installed."""
    go = shutil.which("go")
    if go is None:
        return None
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((KSTATUS_MODULE / name).read_bytes())
    binary = kstatus_cache_dir() / f"kstatus-{digest.hexdigest()[:16]}" / "kstatus"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
        subprocess.run(
            [go, "build", "-o", str(binary) + ".tmp", "."],
            cwd=KSTATUS_MODULE,
            env=env,
            check=True,
            timeout=900,
        )
        os.replace(str(binary) + ".tmp", binary)
    return binary


def run_kstatus(binary: Path, paths: list[Path]) -> dict[str, tuple[str, str]]:
    """{file stem: (status, message)} as the program computes them for those JSON files."""
    out = subprocess.run(
        [str(binary), *map(str, paths)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    result = {}
    for line in out.splitlines():
        state, path, message = line.split("\t", 2)
        result[Path(path).stem] = (state, message)
    return result


def kstatus_of_objects(
    binary: Path, objects: dict[str, dict[str, Any]], folder: Path
) -> dict[str, tuple[str, str]]:
    """Write each object to ``folder``/NAME.json (a temporary folder) and run the program."""
    paths = []
    for name, obj in objects.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(obj))
        paths.append(path)
    return run_kstatus(binary, paths)
