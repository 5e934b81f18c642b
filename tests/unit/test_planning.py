"""The plan computed from history rows: pending, drift, out of order, resume, hash."""

from __future__ import annotations

import pytest

from dbmigrate.engine.history import HistoryRow
from dbmigrate.engine.planning import compute_plan
from dbmigrate.engine.sources import load_mapping

FILES = {"001_a.sql": "SELECT 1;", "002_b.sql": "SELECT 2;", "003_c.sql": "SELECT 3;"}


def row(version: int, checksum: str, status: str = "applied", done: int = 0) -> HistoryRow:
    return HistoryRow(
        version=version, name="x", checksum=checksum, status=status, statements_done=done
    )


def test_fresh_database_has_everything_pending() -> None:
    plan = compute_plan([], load_mapping(FILES), None, "db")
    assert [p.version for p in plan.pending] == [1, 2, 3]
    assert plan.target == 3
    assert not plan.drift_errors


def test_applied_versions_are_not_pending_and_hash_changes() -> None:
    migrations = load_mapping(FILES)
    fresh = compute_plan([], migrations, None, "db")
    later = compute_plan([row(1, migrations.get(1).checksum)], migrations, None, "db")  # type: ignore[union-attr]
    assert [p.version for p in later.pending] == [2, 3]
    assert later.plan_hash != fresh.plan_hash
    assert compute_plan([], migrations, None, "other").plan_hash == fresh.plan_hash


def test_target_limits_and_enters_the_hash() -> None:
    migrations = load_mapping(FILES)
    plan = compute_plan([], migrations, 2, "db")
    assert [p.version for p in plan.pending] == [1, 2]
    assert plan.plan_hash != compute_plan([], migrations, None, "db").plan_hash


def test_changed_checksum_is_drift_naming_file_and_both_checksums() -> None:
    migrations = load_mapping(FILES)
    plan = compute_plan([row(1, "0" * 64)], migrations, None, "db")
    [error] = plan.drift_errors
    assert "001_a.sql" in error.message
    assert "0" * 64 in error.message
    assert migrations.get(1).checksum in error.message  # type: ignore[union-attr]


def test_applied_version_missing_from_the_set_is_drift() -> None:
    plan = compute_plan([row(9, "abc")], load_mapping(FILES), None, "db")
    assert any("missing from the migration set" in e.message for e in plan.drift_errors)


def test_out_of_order_pending_version_is_refused() -> None:
    migrations = load_mapping(FILES)
    plan = compute_plan([row(3, migrations.get(3).checksum)], migrations, None, "db")  # type: ignore[union-attr]
    assert [e.version for e in plan.drift_errors] == [1, 2]


@pytest.mark.parametrize(
    ("status", "same", "expected"),
    [
        ("failed", True, 2),
        ("running", True, 2),
        ("failed", False, None),
        ("rolled_back", True, None),
    ],
)
def test_resume_point_of_an_interrupted_version(
    status: str, same: bool, expected: int | None
) -> None:
    migrations = load_mapping(FILES)
    checksum = migrations.get(1).checksum if same else "f" * 64  # type: ignore[union-attr]
    plan = compute_plan([row(1, checksum, status, done=2)], migrations, None, "db")
    assert plan.pending[0].version == 1
    assert plan.pending[0].resume_from == expected
    assert not plan.drift_errors
