"""Progress samples: the measure that moves in each index-build phase, and the percent."""

from __future__ import annotations

import pytest

from dbmigrate.engine.progress import (
    CurrentStatement,
    ProgressMonitor,
    build_progress,
    measure,
    percent,
)
from dbmigrate.engine.settings import ApplySettings

ROW = {
    "blocks_done": 10,
    "blocks_total": 40,
    "tuples_done": 3,
    "tuples_total": 12,
    "lockers_done": 1,
    "lockers_total": 2,
}


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("building index: scanning table", (10, 40)),
        ("index validation: scanning table", (10, 40)),
        ("building index: loading tuples in tree", (3, 12)),
        ("index validation: scanning index", (3, 12)),
        ("waiting for writers before build", (1, 2)),
        ("waiting for old snapshots", (1, 2)),
        (None, (None, None)),
    ],
)
def test_measure_per_phase(phase: str | None, expected: tuple[int | None, int | None]) -> None:
    assert measure(phase, ROW) == expected  # type: ignore[arg-type]


def test_percent_bounds() -> None:
    assert percent(10, 40) == 25.0
    assert percent(5, 0) is None
    assert percent(None, 10) is None
    assert percent(50, 40) == 100.0


def test_progress_sample_marks_waiting_on_old_snapshots() -> None:
    current = CurrentStatement(version=5, name="x", index=2, total=5, statement="CREATE INDEX ...")
    row: dict[str, object] = {
        "phase": "waiting for old snapshots",
        "current_locker_pid": 42,
        "wait_event_type": None,
        **ROW,
    }
    sample = build_progress(current, row, [])
    assert sample.waiting
    assert sample.percent == 50.0
    assert (sample.statement_index, sample.statements_total) == (2, 5)


def test_backoff_doubles_and_is_capped() -> None:
    settings = ApplySettings(retry_backoff_seconds=1.0, retry_backoff_max_seconds=5.0)
    assert [settings.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    with pytest.raises(ValueError, match="lock_timeout_ms"):
        ApplySettings(lock_timeout_ms=-1)


def test_a_failing_progress_callback_never_stops_the_migration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_: object) -> None:
        raise ConnectionError("API server unreachable")

    monitor = ProgressMonitor("postgresql://unused", "run", 1, broken)
    monitor.begin(CurrentStatement(version=1, name="x", index=1, total=1, statement="SELECT 1"))
    assert "API server unreachable" in caplog.text
