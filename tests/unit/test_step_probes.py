"""Probe definitions and the walk of EXPLAIN (FORMAT JSON) plan trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbmigrate.api.evidence import ProbeResult
from dbmigrate.engine.after import probes

PLAN = [
    {
        "Plan": {
            "Node Type": "Limit",
            "Total Cost": 12.5,
            "Plans": [
                {
                    "Node Type": "Nested Loop",
                    "Plans": [
                        {"Node Type": "Index Scan", "Index Name": "idx_a", "Plans": []},
                        {
                            "Node Type": "Bitmap Heap Scan",
                            "Plans": [
                                {"Node Type": "BitmapOr", "Plans": [
                                    {"Node Type": "Bitmap Index Scan", "Index Name": "idx b"},
                                    {"Node Type": "Bitmap Index Scan", "Index Name": "idx_a"},
                                ]},
                            ],
                        },
                        {"Node Type": "Index Only Scan", "Index Name": "idx_c"},
                    ],
                }
            ],
        },
        "Execution Time": 0.42,
    }
]  # fmt: skip


def test_walk_finds_every_index_node_in_order() -> None:
    types, used, cost, ms = probes.summarize_plan(PLAN)
    assert used == ["idx_a", "idx b", "idx_c"]
    assert types[:3] == ["Limit", "Nested Loop", "Index Scan"]
    assert len(types) == 8 and cost == 12.5 and ms == 0.42


def test_seq_scan_plan_uses_no_index() -> None:
    plan = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 1.0}}]
    assert probes.summarize_plan(plan) == (["Seq Scan"], [], 1.0, None)


def test_parse_probe_argument_keeps_colons_in_sql() -> None:
    probe = probes.parse_probe_arg("recent=idx_x:SELECT '1:2' FROM t WHERE a = 1")
    assert probe == probes.Probe("recent", "SELECT '1:2' FROM t WHERE a = 1", "idx_x")
    for bad in ("recent", "recent=idx", "=idx:SELECT 1", "r=:SELECT 1", "r=idx:"):
        with pytest.raises(probes.ProbeError, match="NAME=INDEX:SQL"):
            probes.parse_probe_arg(bad)


def test_probes_file(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("- name: a\n  sql: SELECT 1\n  expectIndex: idx\n")
    assert probes.load_probes_file(good) == [probes.Probe("a", "SELECT 1", "idx")]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: a\n  sql: SELECT 1\n")
    with pytest.raises(probes.ProbeError, match="lacks expectIndex"):
        probes.load_probes_file(bad)
    bad.write_text("name: a\n")
    with pytest.raises(probes.ProbeError, match="YAML list"):
        probes.load_probes_file(bad)
    with pytest.raises(probes.ProbeError, match="cannot read"):
        probes.load_probes_file(tmp_path / "missing.yaml")


def test_only_a_single_select_is_explained() -> None:
    assert probes.select_problem("SELECT * FROM t WHERE a = 1") is None
    assert probes.select_problem("WITH x AS (SELECT 1) SELECT * FROM x") is None
    assert "must be a SELECT" in str(probes.select_problem("DELETE FROM t"))
    assert "exactly one" in str(probes.select_problem("SELECT 1; SELECT 2"))
    assert "does not parse" in str(probes.select_problem("SELEC 1"))


def test_baseline_is_matched_by_name() -> None:
    now = [ProbeResult(name="a", expected_index="i", passed=True, estimated_cost=2.0)]
    before = [
        ProbeResult(name="a", expected_index="i", passed=False, estimated_cost=90.0,
                    used_indexes=[], execution_ms=5.0),
        ProbeResult(name="other", expected_index="j", passed=False),
    ]  # fmt: skip
    probes.attach_baseline(now, before)
    assert now[0].baseline_estimated_cost == 90.0 and now[0].baseline_execution_ms == 5.0
    assert now[0].baseline_used_indexes == []
