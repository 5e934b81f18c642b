"""The operator's metrics: values derived from statuses, and the /metrics + /healthz server."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.controller.metrics import OperatorMetrics, start_metrics_server

T0 = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)


def samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back by prometheus-client's own parser."""
    text = metrics.exposition().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metrics: OperatorMetrics, metric: str, /, **labels: str) -> float:
    return samples(metrics)[(metric, tuple(sorted(labels.items())))]


def succeeded_status() -> DatabaseMigrationStatus:
    job = {"step": "plan", "name": "m-plan-1", "generation": 1, "createdAt": T0}
    return DatabaseMigrationStatus.model_validate(
        {
            "phase": "Succeeded",
            "runId": "run-1",
            "finishedAt": T0 + timedelta(minutes=5),
            "jobs": [
                {**job, "outcome": "Succeeded", "finishedAt": T0 + timedelta(seconds=7)},
                {
                    **job,
                    "step": "backup",
                    "name": "m-backup-1",
                    "outcome": "Succeeded",
                    "finishedAt": T0 + timedelta(seconds=70),
                },
                {**job, "step": "apply", "name": "m-apply-1"},  # still running: not observed
            ],
            "backup": {
                "path": "/backups/m.dump",
                "format": "custom",
                "sizeBytes": 123456,
                "sha256": "0" * 64,
                "durationSeconds": 3.5,
                "pgDumpVersion": "17.2",
                "serverVersion": "15.8",
                "startedAt": T0,
                "finishedAt": T0 + timedelta(seconds=60),
                "restoreListEntries": 12,
                "verified": True,
            },
            "lint": {
                "policy": "warn",
                "files": 2,
                "findings": [
                    _finding("warning", suppressed=False),
                    _finding("warning", suppressed=False),
                    _finding("error", suppressed=True),
                ],
                "errorCount": 0,
                "warningCount": 2,
                "suppressedCount": 1,
                "passed": True,
            },
        }
    )


def _finding(severity: str, suppressed: bool) -> dict[str, object]:
    return {
        "rule": "DBM001",
        "name": "create-index-blocking",
        "severity": severity,
        "file": "002_x.sql",
        "line": 1,
        "column": 1,
        "message": "blocks writes",
        "hint": "use CONCURRENTLY",
        "suppressed": suppressed,
    }


def test_phase_gauge_counts_resources_per_phase() -> None:
    metrics = OperatorMetrics()
    metrics.observe_phase("a", "m1", "Planning")
    metrics.observe_phase("a", "m2", "Planning")
    metrics.observe_phase("b", "m1", "Migrating")
    metrics.observe_phase("a", "m1", "BackingUp")  # m1 moved on: counted once, in its new phase
    assert value(metrics, "dbmigrate_migrations", phase="Planning") == 1
    assert value(metrics, "dbmigrate_migrations", phase="BackingUp") == 1
    assert value(metrics, "dbmigrate_migrations", phase="Migrating") == 1
    assert value(metrics, "dbmigrate_migrations", phase="Succeeded") == 0
    metrics.forget("b", "m1")
    assert value(metrics, "dbmigrate_migrations", phase="Migrating") == 0


def test_unknown_phase_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown phase 'Done'"):
        OperatorMetrics().observe_phase("a", "m", "Done")


def test_status_feeds_every_metric_once() -> None:
    clock = [(T0 + timedelta(hours=1)).timestamp()]
    metrics = OperatorMetrics(clock=lambda: clock[0])
    status = succeeded_status()
    metrics.observe_status("ns", "m", status)
    metrics.observe_status("ns", "m", status)  # every reconcile calls it: jobs counted once
    ns_m = {"namespace": "ns", "name": "m"}
    assert value(metrics, "dbmigrate_migrations", phase="Succeeded") == 1
    count = "dbmigrate_step_duration_seconds_count"
    assert value(metrics, count, step="plan", outcome="Succeeded") == 1
    total = "dbmigrate_step_duration_seconds_sum"
    assert value(metrics, total, step="backup", outcome="Succeeded") == 70
    assert (count, (("outcome", "Running"), ("step", "apply"))) not in samples(metrics)
    success = value(metrics, "dbmigrate_last_success_timestamp_seconds", **ns_m)
    assert success == (T0 + timedelta(minutes=5)).timestamp()
    assert value(metrics, "dbmigrate_backup_size_bytes", **ns_m) == 123456
    assert value(metrics, "dbmigrate_backup_age_seconds", **ns_m) == 3600 - 60
    clock[0] += 600
    assert value(metrics, "dbmigrate_backup_age_seconds", **ns_m) == 3600 - 60 + 600
    assert value(metrics, "dbmigrate_lint_findings", severity="warning", **ns_m) == 2
    assert value(metrics, "dbmigrate_lint_findings", severity="error", **ns_m) == 0  # suppressed


def test_rollback_counted_once_per_run() -> None:
    metrics = OperatorMetrics()
    status = DatabaseMigrationStatus.model_validate(
        {
            "phase": "RolledBack",
            "runId": "run-7",
            "rollback": {
                "strategy": "dropCreatedObjects",
                "targetDatabase": "shop",
                "durationSeconds": 1.0,
                "verified": True,
                "message": "dropped 1 index",
            },
        }
    )
    metrics.observe_status("ns", "m", status)
    metrics.observe_status("ns", "m", status)
    labels = {"namespace": "ns", "name": "m", "outcome": "verified"}
    assert value(metrics, "dbmigrate_rollbacks_total", **labels) == 1


def test_forget_drops_the_resource_series() -> None:
    metrics = OperatorMetrics()
    metrics.observe_status("ns", "m", succeeded_status())
    metrics.forget("ns", "m")
    names = {name for name, labels in samples(metrics) if ("name", "m") in labels}
    assert names == set()


def test_server_serves_metrics_and_health() -> None:
    metrics = OperatorMetrics()
    metrics.observe_phase("ns", "m", "Verifying")
    server = start_metrics_server(0, "127.0.0.1", metrics=metrics, max_silence=0.0)
    base = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain")
        assert 'dbmigrate_migrations{phase="Verifying"} 1.0' in body
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
            assert response.status == 200  # no heartbeat yet: starting up counts as alive
        metrics.heartbeat()
        with pytest.raises(urllib.error.HTTPError) as silent:
            urllib.request.urlopen(f"{base}/healthz", timeout=10)  # max_silence 0: stale at once
        assert silent.value.code == 503
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/other", timeout=10)
        assert missing.value.code == 404
    finally:
        server.stop()
