"""The verify step on real PostgreSQL: index checks, probe plans, failures reported as results."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from dbmigrate.api.evidence import VerificationResult
from dbmigrate.engine import preflight, verify
from dbmigrate.engine.indexdefs import index_defs
from dbmigrate.engine.probes import Probe
from dbmigrate.engine.sources import load_directory
from dbmigrate.engine.undo import rollback
from tests.db.data import (
    MIGRATIONS,
    app_tables,
    fingerprint,
    load_sample_data,
    migrate,
    run_cli,
)

RECENT = Probe(
    "recent-views",
    "SELECT id, path FROM page_views ORDER BY timestamp DESC LIMIT 20",
    "idx_page_views_timestamp_desc_path",
)
SESSION = Probe(
    "session-views",
    "SELECT * FROM page_views WHERE session_id = 7 ORDER BY timestamp DESC",
    "idx_page_views_session_timestamp_desc",
)
ACTIVE = Probe(
    "active-sessions",
    "SELECT id FROM visitor_sessions WHERE ended_at IS NULL"
    " AND last_activity_at > timestamptz '2024-01-07' ORDER BY last_activity_at DESC LIMIT 5",
    "idx_visitor_sessions_active_last_activity",
)
UNUSABLE = Probe(
    "by-referrer", "SELECT * FROM page_views WHERE referrer = 'x'", "idx_page_views_user_id"
)


def _ready(url: str) -> None:
    migrate(url, MIGRATIONS, 4)
    with psycopg.connect(url, autocommit=True) as conn:
        load_sample_data(conn)


def _verify(url: str, probes: list[Probe], **kw: object) -> VerificationResult:
    with psycopg.connect(url, autocommit=True) as conn:
        return verify.verify(conn, list(load_directory(MIGRATIONS)), probes, **kw)  # type: ignore[arg-type]


def test_verify_passes_with_baseline(database_url: str) -> None:
    _ready(database_url)
    options = preflight.PreflightOptions(probes=[RECENT, SESSION, ACTIVE], sample_builds=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = preflight.run_preflight(conn, list(load_directory(MIGRATIONS))[4:], options)
    migrate(database_url, MIGRATIONS)
    result = _verify(
        database_url,
        [RECENT, SESSION, ACTIVE],
        explain_analyze=True,
        baseline=before.probe_baseline,
        size_before=before.database_size_bytes,
    )
    assert result.passed, result.message
    assert len(result.indexes) == 11
    assert all(i.valid and i.ready and i.definition_matches for i in result.indexes)
    assert all(i.size_bytes and i.size_bytes > 0 for i in result.indexes)
    assert "public.page_views" in result.analyzed_tables
    recent = result.probes[0]
    assert recent.used_indexes == ["idx_page_views_timestamp_desc_path"]
    assert "Index Scan" in recent.node_types and recent.execution_ms is not None
    assert recent.baseline_used_indexes == [] and recent.baseline_estimated_cost is not None
    assert recent.estimated_cost is not None
    assert recent.estimated_cost < recent.baseline_estimated_cost
    assert result.database_size_before == before.database_size_bytes
    assert result.database_size_after and result.database_size_after > before.database_size_bytes


def test_unusable_probe_and_invalid_index_fail_then_rollback(database_url: str) -> None:
    _ready(database_url)
    tables = app_tables(database_url)
    before = fingerprint(database_url, tables)
    migrate(database_url, MIGRATIONS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # leave one of 005's indexes INVALID: a UNIQUE CONCURRENTLY build that fails on duplicates
        conn.execute("DROP INDEX idx_visitor_sessions_last_activity_at")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY idx_visitor_sessions_last_activity_at"
                " ON visitor_sessions ((page_view_count))"
            )
    result = _verify(database_url, [RECENT, UNUSABLE])
    assert not result.passed
    broken = {i.name: i for i in result.indexes}["idx_visitor_sessions_last_activity_at"]
    assert broken.exists and broken.valid is False and broken.definition_matches is False
    assert "INVALID" in broken.message and "DROP INDEX CONCURRENTLY" in broken.message
    probe = {p.name: p for p in result.probes}["by-referrer"]
    assert not probe.passed and "does not use idx_page_views_user_id" in probe.message
    assert "Seq Scan" in probe.node_types
    assert "by-referrer" in result.message

    record = rollback.rollback(database_url, "dropCreatedObjects", run_id="after-verify")
    assert record.verified, record.message
    assert fingerprint(database_url, tables).schema == before.schema


def test_missing_index_and_changed_definition(database_url: str) -> None:
    _ready(database_url)
    migrate(database_url, MIGRATIONS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_system_metrics_recorded_at")
        conn.execute("DROP INDEX idx_page_views_session_timestamp_desc")
        conn.execute(
            "CREATE INDEX idx_page_views_session_timestamp_desc"
            " ON page_views (session_id, timestamp)"
        )
    result = _verify(database_url, [])
    found = {i.name: i for i in result.indexes}
    assert found["idx_system_metrics_recorded_at"].exists is False
    changed = found["idx_page_views_session_timestamp_desc"]
    assert changed.valid and changed.definition_matches is False
    assert "differs from the file" in changed.message and not result.passed
    (unnamed,) = index_defs("CREATE INDEX ON page_views (referrer)")
    with psycopg.connect(database_url, autocommit=True) as conn:
        check = verify.check_index(conn, unnamed)
    assert not check.passed and "give it a name" in check.message


def test_probe_must_be_a_select(database_url: str) -> None:
    _ready(database_url)
    bad = Probe("wipe", "DELETE FROM page_views", "idx_page_views_user_id")
    result = _verify(database_url, [bad], explain_analyze=True)
    assert not result.probes[0].passed and "must be a SELECT" in result.probes[0].message
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM page_views").fetchone() == (5000,)


def test_cli_verify_with_probes_file(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ready(database_url)
    migrate(database_url, MIGRATIONS)
    probes = tmp_path / "probes.yaml"
    probes.write_text(
        f"- name: {RECENT.name}\n  sql: {RECENT.sql}\n  expectIndex: {RECENT.expect_index}\n"
    )
    argv = ["verify", "--database-url", database_url, "--migrations", MIGRATIONS]
    assert run_cli([*argv, "--probes", str(probes), "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["probes"][0]["usedIndexes"] == [RECENT.expect_index]
    probe = f"bad=idx_page_views_user_id:{UNUSABLE.sql}"
    assert run_cli([*argv, "--probe", probe, "--no-analyze"]) == 1
    out = capsys.readouterr().out
    assert "verification FAILED" in out and "does not use idx_page_views_user_id" in out
    assert run_cli([*argv, "--probe", "no-colon"]) == 2


def test_cli_baseline_from_preflight_json(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ready(database_url)
    probe = f"{RECENT.name}={RECENT.expect_index}:{RECENT.sql}"
    common = ["--database-url", database_url, "--migrations", MIGRATIONS, "--probe", probe]
    assert run_cli(["preflight", *common, "--no-sample-builds", "--output", "json"]) == 0
    baseline = tmp_path / "preflight.json"
    baseline.write_text(capsys.readouterr().out)
    migrate(database_url, MIGRATIONS)
    assert run_cli(["verify", *common, "--baseline", str(baseline), "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    before = json.loads(baseline.read_text())
    assert data["databaseSizeBefore"] == before["databaseSizeBytes"]
    assert data["probes"][0]["baselineEstimatedCost"] == before["probeBaseline"][0]["estimatedCost"]
    assert data["probes"][0]["baselineUsedIndexes"] == []
    baseline.write_text("[1, 2]")
    assert run_cli(["verify", *common, "--baseline", str(baseline)]) == 2
