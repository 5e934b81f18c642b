"""Staging first, end to end: a production DatabaseMigration whose files have not succeeded in
the "staging" database waits (WaitingForPromotion) instead of failing, refuses a changed file,
and starts by itself once staging has applied the same file; the same when staging is another
DatabaseMigration (``requireSucceeded``) that has not Succeeded yet.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from testbed.postgres import fresh_database
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    operator,
    pod_url,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

APPROVE = "dbmigrate.io/approve"

FILES = {
    "001_accounts.sql": "CREATE TABLE accounts (id bigint PRIMARY KEY, email text);\n",
    "002_accounts_name.sql": "ALTER TABLE accounts ADD COLUMN name text;\n",
}
CHANGED = {
    **FILES,
    "001_accounts.sql": FILES["001_accounts.sql"].replace("email text", "mail text"),
}


def _apply_by_hand(url: str, files: dict[str, str], folder: Path, target: int) -> None:
    """``dbmigrate apply`` on the staging database, as the staging pipeline would."""
    folder.mkdir()
    for name, sql in files.items():
        (folder / name).write_text(sql)
    argv = [sys.executable, "-m", "dbmigrate.cli.main", "apply", "--database-url", url]
    argv += ["--migrations", str(folder), "--target", str(target)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _spec(config_map: str, secret: str) -> dict[str, Any]:
    return {
        "database": {"secretRef": {"name": secret, "uriKey": "uri"}},
        "source": {"configMap": {"name": config_map}},
        "backup": {"enabled": False},
        "verification": {"analyze": False},
        "promotion": {
            "requireAppliedIn": [{"secretRef": {"name": "staging-db", "uriKey": "uri"}}],
            "recheckInterval": "2s",
        },
    }


def _staged_by_migration(cluster: Cluster, staging_secret: str, prod_secret: str) -> None:
    """A staging DatabaseMigration held at its approval, and a production one that requires it
    to have Succeeded (``requireSucceeded``)."""
    staging_spec = _spec("files", staging_secret)
    del staging_spec["promotion"]
    staging_spec["approval"] = {"mode": "Manual"}  # held until the test approves its plan
    cluster.migration("staging", staging_spec)
    prod_spec = _spec("files", prod_secret)
    prod_spec["promotion"] = {
        "requireSucceeded": [{"namespace": cluster.ns, "name": "staging"}],
        "recheckInterval": "2s",
    }
    cluster.migration("prod-dm", prod_spec)


def test_promotion_refuses_a_changed_file_and_starts_once_staging_has_it(
    cluster: Cluster, operator: OperatorProcess, pg_admin_url: str, tmp_path: Path
) -> None:
    """Staging databases (``requireAppliedIn``) and, alongside, a staging DatabaseMigration
    (``requireSucceeded``): production waits naming the versions, then starts by itself."""
    began = time.monotonic()
    with (
        fresh_database(pg_admin_url, "staging") as staging,
        fresh_database(pg_admin_url, "prod") as prod,
        fresh_database(pg_admin_url, "other") as other,
        fresh_database(pg_admin_url, "stagingdm") as staging_dm,
        fresh_database(pg_admin_url, "proddm") as prod_dm,
    ):
        _apply_by_hand(staging, FILES, tmp_path / "v1", target=1)  # staging is at 001
        cluster.secret("staging-db", {"uri": pod_url(staging)})
        cluster.secret("prod-db", {"uri": pod_url(prod)})
        cluster.secret("other-db", {"uri": pod_url(other)})
        cluster.secret("staging-dm-db", {"uri": pod_url(staging_dm)})
        cluster.secret("prod-dm-db", {"uri": pod_url(prod_dm)})
        cluster.config_map("files", FILES)
        cluster.config_map("changed", CHANGED)
        cluster.migration("prod", _spec("files", "prod-db"))
        cluster.migration("changed", _spec("changed", "other-db"))
        _staged_by_migration(cluster, "staging-dm-db", "prod-dm-db")

        waiting = cluster.wait_phase("prod", "WaitingForPromotion", timeout=60)
        assert condition(waiting, "Ready")["reason"] == "WaitingForPromotion"
        assert condition(waiting, "Reconciling")["status"] == "True"
        assert "2 not applied there yet" in waiting["message"], waiting["message"]
        assert waiting["promotion"]["checks"][0]["missing"] == [2]
        refused = cluster.wait_phase("changed", "WaitingForPromotion", timeout=30)
        assert "1 applied there from a different file" in refused["message"], refused["message"]
        assert "2 not applied there yet" in refused["message"]
        assert history_versions(prod) == {} and history_versions(other) == {}

        _apply_by_hand(staging, FILES, tmp_path / "v2", target=2)  # staging catches up
        done = cluster.wait_terminal("prod", timeout=90)
        assert done["phase"] == "Succeeded", done.get("message")
        assert done["promotion"]["passed"] is True
        assert history_versions(prod) == {1: "applied", 2: "applied"}
        plan_jobs = [j["name"] for j in done["jobs"] if j["step"] == "plan"]
        assert plan_jobs[0] == "prod-plan-g1" and len(plan_jobs) >= 2  # planned again

        # its 001 is still not the file staging ran: it goes on waiting (planning again now and
        # then to check staging once more), and never fails
        still = cluster.wait_phase("changed", "WaitingForPromotion", timeout=30)
        assert "1 applied there from a different file" in still["message"]
        assert history_versions(other) == {}

        # requireSucceeded: production waits while the staging DatabaseMigration has not
        # Succeeded, naming the versions, and starts by itself once it has
        held = cluster.wait_phase("staging", "WaitingForApproval", timeout=30)
        waiting = cluster.wait_phase("prod-dm", "WaitingForPromotion", timeout=30)
        assert condition(waiting, "Ready")["reason"] == "WaitingForPromotion"
        message = waiting["message"]
        assert "versions 1, 2 must succeed in staging first" in message, message
        assert f"migration {cluster.ns}/staging" in message and "not Succeeded" in message
        check = waiting["promotionMigrations"][0]
        assert check["source"] == f"migration {cluster.ns}/staging" and not check["passed"]
        assert history_versions(prod_dm) == {}
        cluster.annotate("staging", APPROVE, held["approval"]["planHash"])
        first = cluster.wait_terminal("staging", timeout=90)
        assert first["phase"] == "Succeeded", first.get("message")
        done = cluster.wait_terminal("prod-dm", timeout=90)  # nobody touched it: it went on
        assert done["phase"] == "Succeeded", done.get("message")
        assert done["promotionMigrations"][0]["passed"] is True
        first_done = datetime.fromisoformat(first["finishedAt"].replace("Z", "+00:00"))
        apply_job = next(j for j in done["jobs"] if j["step"] == "apply")
        assert datetime.fromisoformat(apply_job["createdAt"].replace("Z", "+00:00")) >= first_done
        assert history_versions(prod_dm) == {1: "applied", 2: "applied"}
    print(f"promotion scenario took {time.monotonic() - began:.1f}s")
