"""The watch's API models: camelCase on the wire, sound defaults, bounded lists and text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dbmigrate.api.watch import (
    QUERY_TEXT_LIMIT,
    REPORT_LIMIT,
    QueryComparison,
    Snapshot,
    StatementCounters,
    WatchReport,
    WatchThresholds,
)

pytestmark = pytest.mark.unit


def test_thresholds_defaults_and_camel_case() -> None:
    wire = WatchThresholds().to_wire()
    assert wire["minCalls"] >= 1 and wire["ratio"] > 1.0 and wire["minDeltaMs"] > 0
    assert "minSharePercent" in wire and "minExtraMsPerHour" in wire and "topN" in wire
    parsed = WatchThresholds.model_validate({"minCalls": 5, "ratio": 2})
    assert parsed.min_calls == 5 and parsed.ratio == 2.0


@pytest.mark.parametrize("bad", [{"minCalls": 0}, {"ratio": 0.9}, {"topN": 5000}, {"unknown": 1}])
def test_thresholds_refuse_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WatchThresholds.model_validate(bad)


def test_statement_text_is_bounded() -> None:
    with pytest.raises(ValidationError):
        StatementCounters(
            dbid=1,
            userid=1,
            queryid=1,
            query="x" * (QUERY_TEXT_LIMIT + 1),
            calls=1,
            total_exec_time=1.0,
        )


def test_report_lists_are_bounded_and_round_trip() -> None:
    row = QueryComparison(
        query="SELECT 1",
        calls_before=1,
        calls_after=1,
        mean_before_ms=1,
        mean_after_ms=2,
        ratio=2,
        extra_ms_per_hour=1,
        share_percent=1,
    )
    with pytest.raises(ValidationError):
        WatchReport(verdict="Regressed", reason="r", offenders=[row] * (REPORT_LIMIT + 1))
    report = WatchReport(verdict="Regressed", reason="slower", offenders=[row])
    assert WatchReport.model_validate(report.to_wire()) == report
    with pytest.raises(ValidationError):
        WatchReport.model_validate({"verdict": "Maybe", "reason": "r"})


def test_snapshot_round_trips() -> None:
    snap = Snapshot(taken_at=datetime(2026, 1, 1, tzinfo=UTC), server_version_num=170002)
    assert Snapshot.model_validate_json(snap.model_dump_json(by_alias=True)) == snap
