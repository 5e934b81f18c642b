"""Heal when the cause is fixed, on the test bed: a run whose plan could not log in (a wrong
password in the Secret) ends Failed with a retry scheduled and goes on to Succeeded once the
Secret is fixed, without a spec change; a run that failed for a reason of the migration itself
(SQL that does not parse) is not retried by itself, and the ``dbmigrate.io/retry`` annotation
starts a new run of the same generation once the files are fixed. A retry asked for while the run
was under way was echoed and ignored (RetryIgnored); asked again once it ended, it works.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

from dbmigrate.api.labels import RETRY_ANNOTATION
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    history_versions,
    indexes,
    operator,
    pod_url,
    sample_spec,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

TERMINAL = ("Succeeded", "Failed", "RolledBack")
FILES = {
    "001_notes.sql": "CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY);\n",
    "002_notes_index.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_notes_id ON notes (id);\n",
}


def lean_spec(secret: str, config_map: str) -> dict[str, object]:
    """A quick run: no backup, no probes, no retry of a failed pod by the Job controller."""
    return sample_spec(
        database={"secretRef": {"name": secret, "uriKey": "uri"}},
        source={"configMap": {"name": config_map}},
        backup={"enabled": False},
        verification={"analyze": False, "probes": []},
        jobs={"backoffLimit": 0},
    )


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{host}"))


def test_a_wrong_password_fixed_in_the_secret_heals_without_a_spec_change(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    right = pod_url(database_url)
    assert urlsplit(right).password, "the test database's URL has a password"
    cluster.secret("heal-db", {"uri": with_password(right, "not-the-password")})
    cluster.config_map("heal-sql", FILES)
    cluster.migration("heal", lean_spec("heal-db", "heal-sql"))

    failed = cluster.wait(
        "heal",
        lambda s: s.get("phase") == "Failed" and bool((s.get("retry") or {}).get("nextAttemptAt")),
        "Failed with an automatic retry scheduled",
        timeout=60,
    )
    retry = failed["retry"]
    assert (retry["run"], retry["automatic"], retry["limit"]) == (1, 0, 5)
    assert retry["secretVersion"]
    assert "starts again by itself" in failed["message"], failed["message"]
    assert "not-the-password" not in str(failed)
    assert condition(failed, "Stalled")["status"] == "True"
    assert history_versions(database_url) == {}  # nothing was changed

    # the fix: the right password in the Secret; the spec is not touched
    cluster.kube.request(
        "PATCH",
        f"/api/v1/namespaces/{cluster.ns}/secrets/heal-db",
        {"stringData": {"uri": right}},
        content_type="application/merge-patch+json",
    )
    done = cluster.wait(
        "heal",
        lambda s: (s.get("retry") or {}).get("run") == 2 and s.get("phase") in TERMINAL,
        "the second run to end",
        timeout=90,
    )
    assert done["phase"] == "Succeeded", done.get("message")
    assert (cluster.get("heal") or {})["metadata"]["generation"] == 1
    assert done["observedGeneration"] == 1
    assert done["retry"]["run"] == 2 and done["retry"]["automatic"] == 1
    assert done["runId"].endswith("-r2")
    assert history_versions(database_url) == {1: "applied", 2: "applied"}
    assert "idx_notes_id" in indexes(database_url)
    plans = sorted(
        j["metadata"]["name"] for j in cluster.jobs("heal") if "-plan-" in j["metadata"]["name"]
    )
    assert plans == ["heal-plan-g1", "heal-plan-g1-a2"]
    retried = cluster.wait_event("heal", lambda e: e["reason"] == "AutomaticRetry")
    assert "the Secret changed" in retried["message"]
    print(f"wrong password healed in {time.monotonic() - began:.1f}s")


def test_the_retry_annotation_reruns_a_failed_run_of_the_same_generation(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    cluster.secret("retry-db", {"uri": pod_url(database_url)})
    cluster.config_map("retry-sql", {**FILES, "003_broken.sql": "CREATE TABLE (;\n"})
    cluster.migration("retry", lean_spec("retry-db", "retry-sql"))
    # asked while the run is under way (its plan Job exists): echoed, and ignored
    cluster.wait("retry", lambda s: bool(s.get("jobs")), "the plan Job", timeout=30)
    cluster.annotate("retry", RETRY_ANNOTATION, "2026-12-07T11:00:00Z")
    ignored = cluster.wait_event("retry", lambda e: e["reason"] == "RetryIgnored", timeout=30)
    assert "ignored: a run is under way" in ignored["message"], ignored["message"]
    assert "retry once it has ended" in ignored["message"]

    failed = cluster.wait_terminal("retry", timeout=60)
    assert failed["lastHandledRetry"] == "2026-12-07T11:00:00Z"
    plans = [j["metadata"]["name"] for j in cluster.jobs("retry")]
    assert plans == ["retry-plan-g1"], plans  # the ignored request started no run
    assert failed["phase"] == "Failed", failed.get("message")
    assert failed.get("retry") is None  # the migration's own failure: no automatic retry
    assert history_versions(database_url) == {}

    # the files are fixed in the ConfigMap (no new generation), then a person asks for a retry
    cluster.kube.request(
        "PATCH",
        f"/api/v1/namespaces/{cluster.ns}/configmaps/retry-sql",
        {"data": {"003_broken.sql": None}},
        content_type="application/merge-patch+json",
    )
    token = "2026-12-07T12:00:00Z"
    cluster.annotate("retry", RETRY_ANNOTATION, token)
    done = cluster.wait(
        "retry",
        lambda s: s.get("lastHandledRetry") == token and s.get("phase") == "Succeeded",
        "the retry handled and the run Succeeded",
        timeout=60,
    )
    assert done["observedGeneration"] == 1 and done["runId"].endswith("-r2")
    assert history_versions(database_url) == {1: "applied", 2: "applied"}
    cluster.wait_event_reasons("retry", {"RetryRequested"})
    print(f"retry annotation scenario took {time.monotonic() - began:.1f}s")
