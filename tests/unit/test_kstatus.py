"""Flux's view of a DatabaseMigration: kstatus's own Compute (sigs.k8s.io/cli-utils), run by the
small Go program in health/kstatus on every status in tests/data/statuses.

Current when Succeeded; Failed (Stalled=True) when Failed or RolledBack; InProgress otherwise,
including a generation the operator has not observed yet.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.health_checks import build_kstatus
from tests.health_checks import expected_kstatus as expected
from tests.health_checks import run_kstatus as run

ROOT = Path(__file__).resolve().parents[2]
STATUSES = sorted((ROOT / "tests" / "data" / "statuses").glob("*.json"))


@pytest.fixture(scope="module")
def kstatus_bin() -> Path:
    """The program, built once per source version (go.sum pins every module)."""
    binary = build_kstatus()
    if binary is None:
        pytest.skip("Go is not installed: the kstatus check needs it (as the test bed does)")
    return binary


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


def test_kstatus_judges_a_rollout_like_a_migration(kstatus_bin: Path, tmp_path: Path) -> None:
    """A DatabaseMigrationRollout's conditions, as decide_rollout writes them: Completed is
    Current, a budget exceeded is Failed, a wave under way is InProgress."""
    from dbmigrate.decision.rollout import decide_rollout
    from tests.unit.test_rollout import _child, _observed, _spec

    spec = _spec(waves=[{"name": "all", "maxParallel": 5}], failureBudget={"maxFailures": 0})
    cases = {
        "completed": [_child(f"t{i:02d}", "all", "succeeded", spec) for i in range(2)],
        "stopped": [_child("t00", "all", "failed", spec, reason="ApplyFailed", message="x")],
        "progressing": [_child("t00", "all", "running", spec)],
    }
    paths = []
    for name, children in cases.items():
        status = decide_rollout(_observed(spec, n=2, children=children)).status
        obj = {
            "apiVersion": "dbmigrate.io/v1alpha1",
            "kind": "DatabaseMigrationRollout",
            "metadata": {"name": name, "namespace": "apps", "generation": 1},
            "status": status.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(obj))
        paths.append(path)
    computed = run(kstatus_bin, paths)
    assert {k: v[0] for k, v in computed.items()} == {
        "completed": "Current",
        "stopped": "Failed",
        "progressing": "InProgress",
    }
