"""The operator end to end on the test bed: the sample migration 001-005 from apply to Succeeded,
a second apply that changes nothing, and unsafe SQL stopped by the strict lint policy before any
backup. The operator runs as a subprocess; Jobs run through the real Job controller and the local
kubelet against a real PostgreSQL database.
"""

from __future__ import annotations

import time

from dbmigrate.api.labels import LABEL_GENERATION, LABEL_STEP
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    indexes,
    migration_files,
    operator,
    ready_database,
    sample_spec,
    seed_analytics,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

NEW_INDEXES = {
    "idx_users_email_lower",
    "idx_users_email_hash",
    "idx_page_views_timestamp_desc_path",
    "idx_page_views_session_timestamp_desc",
    "idx_visitor_sessions_active_last_activity",
    "idx_visitor_sessions_last_activity_at",
    "idx_system_metrics_recorded_at",
}


def test_sample_migrates_001_to_005(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    seed_analytics(database_url, rows=400)  # the application's tables and data already exist
    ready_database(cluster, database_url, files=None)
    cluster.migration("analytics", sample_spec())

    status = cluster.wait_terminal("analytics", timeout=240)
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["observedGeneration"] == 1
    assert status["currentVersion"] == "5" and status["targetVersion"] == "5"
    for type_, reason in (("Ready", "Succeeded"), ("Reconciling", None), ("Stalled", None)):
        found = condition(status, type_)
        assert found, f"condition {type_} missing"
        if type_ == "Ready":
            assert found["status"] == "True" and found["reason"] == reason
        else:
            assert found["status"] == "False"
    steps = (("BackedUp", "BackupVerified"), ("Migrated", "Applied"), ("Verified", "Verified"))
    for type_, reason in steps:  # docs/conditions.md, "A step went well": nothing to do
        assert (condition(status, type_)["status"], condition(status, type_)["reason"]) == (
            "True",
            reason,
        ), type_

    # Evidence written by each step under its own key.
    assert status["backup"]["verified"] is True and status["backup"]["sizeBytes"] > 0
    assert [v["version"] for v in status["apply"]["versions"]] == [1, 2, 3, 4, 5]
    assert status["apply"]["status"] == "succeeded"
    assert status["verification"]["passed"] is True
    probe = status["verification"]["probes"][0]
    assert probe["name"] == "recent-views-by-path" and probe["passed"] is True
    assert status["database"]["database"] == database_url.rsplit("/", 1)[1]
    assert status["lint"]["passed"] is True and status["preflight"]["passed"] is True
    assert {j["step"] for j in status["jobs"]} == {"plan", "backup", "apply", "verify"}
    assert all(j["outcome"] == "Succeeded" for j in status["jobs"])

    # The database: every index of 002-005 exists and is valid; the history says 1-5 applied.
    assert indexes(database_url) >= NEW_INDEXES
    assert history_versions(database_url) == dict.fromkeys(range(1, 6), "applied")

    expected = {"Planning", "BackingUp", "Migrating", "Verifying", "Succeeded"}
    cluster.wait_event_reasons("analytics", expected)
    print(f"happy path took {time.monotonic() - began:.1f}s")


def test_second_apply_of_the_same_resource_is_a_noop(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    seed_analytics(database_url, rows=50)
    spec = sample_spec(verification={"analyze": True}, backup={"enabled": False})
    del spec["rollback"]
    ready_database(cluster, database_url, files=migration_files(2))
    cluster.migration("analytics", spec)
    first = cluster.wait_terminal("analytics", timeout=180)
    assert first["phase"] == "Succeeded", first.get("message")
    jobs_before = {j["metadata"]["name"] for j in cluster.jobs("analytics")}
    events_before = len(cluster.events("analytics"))

    # Apply the same manifest again (kubectl apply / a GitOps resync): nothing changes.
    cluster.patch("analytics", {"spec": spec})
    time.sleep(8)  # several resync periods of the operator (3 s)
    again = cluster.status("analytics")
    assert again["phase"] == "Succeeded"
    assert again["observedGeneration"] == 1
    assert {j["metadata"]["name"] for j in cluster.jobs("analytics")} == jobs_before
    assert len(cluster.events("analytics")) == events_before
    assert history_versions(database_url) == {1: "applied", 2: "applied"}
    print(f"second apply no-op took {time.monotonic() - began:.1f}s")


UNSAFE = {
    "001_initial.sql": "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name text);\n",
    "002_drop_everything.sql": "DROP TABLE accounts;\n",
}


def test_unsafe_sql_under_strict_policy_stops_before_the_backup(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    ready_database(cluster, database_url, files=UNSAFE)
    spec = sample_spec(verification={"analyze": True})
    cluster.migration("unsafe", spec)

    status = cluster.wait_terminal("unsafe", timeout=120)
    assert status["phase"] == "Failed"
    assert status["lint"]["passed"] is False and status["lint"]["errorCount"] >= 1
    assert any(f["file"] == "002_drop_everything.sql" for f in status["lint"]["findings"])
    ready = condition(status, "Ready")
    assert ready["status"] == "False"
    assert condition(status, "Stalled")["status"] == "True"
    assert "lint" in (status.get("message") or "").lower()
    assert "backup" not in status  # no backup was taken
    assert {j["step"] for j in status["jobs"]} == {"plan"}
    assert [j for j in cluster.jobs("unsafe") if "backup" in j["metadata"]["name"]] == []
    assert history_versions(database_url) == {}  # nothing ran
    cluster.wait_event_reasons("unsafe", {"Failed"})
    print(f"strict lint stop took {time.monotonic() - began:.1f}s")


SLOW = {
    "001_notes.sql": "CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY);\n",
    "002_slow.sql": "SELECT pg_sleep(4);\n",
}


def test_a_spec_change_mid_run_waits_and_the_run_keeps_its_own_spec(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    """GitOps applies a new revision while the migration runs: the run that is changing the
    database finishes with the spec it started with (its later Jobs still use its Secret), then
    the new generation runs with the new spec (here: a Secret that does not exist, so it stalls)."""
    began = time.monotonic()
    ready_database(cluster, database_url, files=SLOW)
    spec = sample_spec(verification={"analyze": True}, backup={"enabled": False})
    del spec["rollback"]
    cluster.migration("analytics", spec)
    cluster.wait_phase("analytics", "Migrating", timeout=120)
    changed = {**spec, "database": {"secretRef": {"name": "missing-db", "uriKey": "uri"}}}
    cluster.patch("analytics", {"spec": changed})

    stalled = cluster.wait(
        "analytics",
        lambda s: (
            s.get("observedGeneration") == 2
            and (condition(s, "Stalled") or {}).get("status") == "True"
        ),
        "generation 2 to stall on its missing Secret",
        timeout=180,
    )
    assert "missing-db" in (stalled.get("message") or "")
    cluster.wait_event_reasons("analytics", {"Succeeded"})  # generation 1 ended well
    assert history_versions(database_url) == {1: "applied", 2: "applied"}
    jobs = cluster.jobs("analytics")
    first_run = [j for j in jobs if j["metadata"]["labels"].get(LABEL_GENERATION) == "1"]
    assert {j["metadata"]["labels"][LABEL_STEP] for j in first_run} >= {"apply", "verify"}
    for job in first_run:
        env = job["spec"]["template"]["spec"]["containers"][0].get("env") or []
        secrets = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in env
            if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        }
        assert secrets == {"analytics-db"}, job["metadata"]["name"]
    print(f"spec change mid-run took {time.monotonic() - began:.1f}s")
