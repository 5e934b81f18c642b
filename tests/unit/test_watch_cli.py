"""dbmigrate snapshot and watch without a server: their options, the thresholds they build, what
they refuse and how a verdict reads as text."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbmigrate.api.watch import QueryComparison, WatchReport, WatchWindow
from dbmigrate.cli.main import main
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner import watch
from dbmigrate.runner.verdict_text import report_text

pytestmark = pytest.mark.unit


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    watch.add_arguments(parser)
    return parser.parse_args(["--baseline", "b.json", *argv])


def test_flags_become_the_thresholds() -> None:
    limits = watch.thresholds_from(
        parse("--min-calls", "5", "--ratio", "2", "--statement-timeout", "2s", "--top-n", "30")
    )
    assert (limits.min_calls, limits.ratio, limits.statement_timeout_ms, limits.top_n) == (
        5,
        2.0,
        2000,
        30,
    )


def test_bad_thresholds_name_the_flag() -> None:
    with pytest.raises(StepError, match="--ratio"):
        watch.thresholds_from(parse("--ratio", "0.5"))
    with pytest.raises(StepError, match="--statement-timeout"):
        watch.thresholds_from(parse("--statement-timeout", "0"))


def test_a_missing_or_foreign_baseline_exits_2(tmp_path: Path) -> None:
    other = tmp_path / "plan.json"
    other.write_text('{"versions": []}')
    url = "postgresql://nobody@127.0.0.1:1/none"
    for path in (tmp_path / "absent.json", other):
        assert main(["watch", "--database-url", url, "--baseline", str(path)]) == 2


def test_the_verdict_as_text() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    row = QueryComparison(
        query="SELECT * FROM page_views WHERE path = $1",
        calls_before=40,
        calls_after=30,
        mean_before_ms=0.2,
        mean_after_ms=19.0,
        ratio=95.0,
        extra_ms_per_hour=200_000,
        share_percent=80,
        t_score=40,
        matched_by="text",
    )
    report = WatchReport(
        verdict="Regressed",
        reason="1 query slower",
        offenders=[row],
        before=WatchWindow(start=when, end=when, seconds=60),
        after=WatchWindow(start=when, end=when, seconds=30),
        samples=3,
        missing=["pg_stat_statements_info is not there"],
    )
    text = "\n".join(report_text(report))
    assert text.startswith("verdict: Regressed: 1 query slower")
    assert "0.2 -> 19 ms/call (x95)" in text and "[matched by text]" in text
    assert "SELECT * FROM page_views WHERE path = $1" in text and "missing: " in text
