"""The test bed's local kubelet turns a Pod into argv: mounted paths are rewritten, the command is
not. A checkout under /tmp (where step pods mount an emptyDir) once had its own `dbmigrate`
rewritten into the pod's volume, and every step pod failed with "No such file or directory"."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from testbed import podrun

pytestmark = pytest.mark.unit


def _pod(command: list[str]) -> dict[str, Any]:
    container = {
        "name": "step",
        "command": command,
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
    }
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [container],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }


def _prepare(pod: dict[str, Any], root: Path) -> podrun.Prepared:
    api: Any = None  # this pod reads no Secret, ConfigMap or token
    return podrun.prepare(api, pod, root / "pod", root / "pvcs", ("127.0.0.1", 6443), b"")


def test_a_bare_command_beside_an_interpreter_under_a_mount_is_not_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "checkout" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "dbmigrate").write_text("#!/bin/sh\n")
    (venv / "dbmigrate").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    assert str(tmp_path).startswith("/tmp/"), "the case needs the interpreter under the mount"

    prepared = _prepare(_pod(["dbmigrate", "plan", "--dir", "/tmp/out"]), tmp_path)

    scratch = tmp_path / "pod" / "volumes" / "scratch"
    assert prepared.argv == [str(venv / "dbmigrate"), "plan", "--dir", f"{scratch}/out"]


def test_a_command_given_by_a_mounted_path_is_rewritten(tmp_path: Path) -> None:
    prepared = _prepare(_pod(["/tmp/tool", "--flag"]), tmp_path)
    assert prepared.argv == [str(tmp_path / "pod" / "volumes" / "scratch" / "tool"), "--flag"]
