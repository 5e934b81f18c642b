"""Every end state says what went wrong and why, and the next step its message or
docs/conditions.md gives works when a person does it. One operator serves every case at once, each
on its own small database: a refused login (the Secret and its key named, never the password), a
probe that misses its index (named in the message and the Event; the workload's scale-down and
scale-up told by Events), a missing backup PVC, a missing ConfigMap, a missing Secret key, lint
errors, drift of an applied file, an invalid maintenance window. Each is then fixed as the docs
say, and must end Succeeded. Beside them, in a thread, the scenario of ``changed_plan``: files
edited after the review never lead to a backup, a scale-down or a rollback.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from dbmigrate.controller.kube import path_of
from tests.cluster.changed_plan import files_changed_after_the_review_are_found_before_any_change
from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    app_image,
    cluster,
    condition,
    crd,
    databases,
    deployment,
    history_versions,
    inline_files,
    operator,
    pod_url,
    sample_spec,
    stalled_by,
)

__all__ = ["cluster", "crd", "databases", "operator"]  # fixtures used by name

pytestmark = pytest.mark.local_testbed(
    reason="eight resources at once on one operator (process pods); the kind tier keeps its budget"
)

WRONG_PASSWORD = "not-the-password-7f3a"
NOTES = {
    "001_notes.sql": "CREATE TABLE notes (id bigint PRIMARY KEY, body text);",
    "002_notes_body_index.sql": "CREATE INDEX CONCURRENTLY idx_notes_body ON notes (body);",
}


def _spec(secret: str, **overrides: Any) -> dict[str, Any]:
    """Small and quick: inline files, no backup, no probes, one pod per step Job."""
    base: dict[str, Any] = {
        "database": {"secretRef": {"name": secret, "uriKey": "uri"}},
        "source": {"inline": inline_files(NOTES)},
        "backup": {"enabled": False},
        "verification": {"analyze": False},
        "jobs": {"backoffLimit": 0},
    }
    return sample_spec(**{**base, **overrides})


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = (parts.username or "").replace("@", "%40")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def _succeeded(cluster: Cluster, name: str, timeout: float = 120) -> None:
    done = cluster.wait_terminal(name, timeout=timeout)
    if done.get("observedGeneration") != (cluster.get(name) or {})["metadata"]["generation"]:
        done = cluster.wait(name, lambda s: condition(s, "Ready").get("status") == "True", "Ready")
    assert done["phase"] == "Succeeded", (name, done.get("message"))


def _respec(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    cluster.patch(name, {"spec": spec})


def _in_thread(scenario: Callable[[], None]) -> Callable[[], None]:
    """Start ``scenario`` in a thread; the returned function joins it and raises what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            scenario()
        except BaseException as exc:  # pytest.fail raises a BaseException: hand it over
            raised.append(exc)

    thread = threading.Thread(target=run, name="changed-plan", daemon=True)
    thread.start()

    def join() -> None:
        thread.join(timeout=300)
        assert not thread.is_alive(), "the changed-plan scenario did not end within 300 s"
        if raised:
            raise raised[0]

    return join


def test_each_end_state_says_why_and_its_remedy_works(
    cluster: Cluster, operator: OperatorProcess, databases: Callable[[], str], tmp_path: Path
) -> None:
    began = time.monotonic()
    changed = databases()
    changed_plan = _in_thread(
        lambda: files_changed_after_the_review_are_found_before_any_change(cluster, changed)
    )
    urls = {name: databases() for name in ("login", "probe", "pvc", "cm", "key", "lint", "drift")}
    for name, url in urls.items():
        if name != "key":
            password = WRONG_PASSWORD if name == "login" else urlsplit(url).password or ""
            cluster.secret(f"{name}-db", {"uri": pod_url(_with_password(url, password))})
    cluster.secret("key-db", {"url": pod_url(urls["key"])})  # the wrong key name
    web = {"containers": [{"name": "web", "image": app_image(), "command": ["sleep", "3600"]}]}
    cluster.create(deployment("web", 3, web))
    # an applied file that is edited afterwards: applied by hand, then the set disagrees
    applied = tmp_path / "applied"
    applied.mkdir()
    for file, sql in NOTES.items():
        (applied / file).write_text(sql)
    command = [sys.executable, "-m", "dbmigrate.cli.main", "apply", "--migrations", str(applied)]
    subprocess.run([*command, "--database-url", urls["drift"]], check=True, capture_output=True)
    edited = {**NOTES, "001_notes.sql": NOTES["001_notes.sql"] + " -- edited"}
    cluster.config_map("drift-v1", edited)

    probe = {
        "name": "by-body",
        "sql": "SELECT id FROM notes WHERE body = 'x'",
        "expectIndex": "idx_absent",
    }
    scale = {"strategy": "DropCreatedObjects", "scaleDown": [{"kind": "Deployment", "name": "web"}]}
    specs = {
        "login": _spec("login-db"),
        "probe": _spec(
            "probe-db", verification={"analyze": False, "probes": [probe]}, rollback=scale
        ),
        "pvc": _spec("pvc-db", backup={"enabled": True, "pvcName": "late-backups"}),
        "cm": _spec("cm-db", source={"configMap": {"name": "late-migrations"}}),
        "key": _spec("key-db"),
        "lint": _spec(
            "lint-db",
            source={"inline": inline_files({**NOTES, "003_drop.sql": "DROP TABLE notes;"})},
        ),
        "drift": _spec("drift-db", source={"configMap": {"name": "drift-v1"}}),
        "window": _spec(
            "login-db",
            maintenanceWindow={
                "schedule": "0 2 * * *",
                "duration": "1h",
                "timeZone": "Mars/Olympus",
            },
        ),
    }
    for name, spec in specs.items():
        cluster.migration(name, spec)

    # --- what each says ------------------------------------------------------------------------
    failed = cluster.wait("login", lambda s: s.get("phase") == "Failed", "Failed", 90)
    message = failed["message"]
    assert "authentication failed" in message, message
    assert "Secret login-db (key uri" in message and WRONG_PASSWORD not in message
    assert message.index("authentication failed") < message.index("BackoffLimitExceeded")
    assert condition(failed, "Stalled")["reason"] == "PlanFailed"
    assert condition(failed, "Stalled")["message"] == message
    event = cluster.wait_event("login", lambda e: e["reason"] == "Failed")
    assert event["type"] == "Warning" and "Secret login-db" in event["message"]
    assert WRONG_PASSWORD not in event["message"]

    pvc = cluster.wait("pvc", stalled_by("BackupVolumeNotFound"), "BackupVolumeNotFound", 60)
    assert "PersistentVolumeClaim late-backups (spec.backup.pvcName)" in pvc["message"]
    cm = cluster.wait("cm", stalled_by("ConfigMapNotFound"), "ConfigMapNotFound", 60)
    assert "late-migrations" in cm["message"]
    # the first Event of a run that stops where it is names the cause, not the phase Pending
    cm_event = cluster.wait_event("cm", lambda e: e["reason"] == "ConfigMapNotFound")
    assert cm_event["type"] == "Warning" and "late-migrations" in cm_event["message"]
    key = cluster.wait("key", stalled_by("SecretKeyMissing"), "SecretKeyMissing", 60)
    assert "uri" in key["message"]
    window = cluster.wait("window", stalled_by("InvalidMaintenanceWindow"), "a bad window", 60)
    assert "Mars/Olympus" in window["message"]
    assert cluster.jobs("cm") == cluster.jobs("key") == cluster.jobs("window") == []
    lint = cluster.wait("lint", lambda s: s.get("phase") == "Failed", "lint Failed", 90)
    assert condition(lint, "Stalled")["reason"] == "LintFailed"
    drift = cluster.wait("drift", lambda s: s.get("phase") == "Failed", "drift Failed", 90)
    assert condition(drift, "Stalled")["reason"] == "DriftDetected"

    rolled = cluster.wait_terminal("probe", timeout=120)
    assert rolled["phase"] == "RolledBack", rolled.get("message")
    assert "probe by-body (expects index idx_absent)" in rolled["message"]
    assert condition(rolled, "Stalled")["reason"] == "VerificationFailed"
    rolling = cluster.wait_event("probe", lambda e: e["reason"] == "RollingBack")
    assert rolling["type"] == "Warning" and "idx_absent" in rolling["message"]
    down = cluster.wait_event("probe", lambda e: e["reason"] == "WorkloadScaledDown")
    up = cluster.wait_event("probe", lambda e: e["reason"] == "WorkloadScaledUp")
    assert "Deployment web from 3 to 0" in down["message"]
    assert up["type"] == "Normal" and "Deployment web back to 3 replicas" in up["message"]
    assert cluster.kube.replicas("Deployment", cluster.ns, "web") == 3
    print(f"every failure said why after {time.monotonic() - began:.1f}s")

    # --- the remedies, as docs/conditions.md gives them ------------------------------------------
    cluster.pvc("late-backups")  # BackupVolumeNotFound: create the PVC; it goes on by itself
    cluster.config_map("late-migrations", NOTES)  # ConfigMapNotFound: create it
    path = path_of("Secret", cluster.ns, "key-db")  # SecretKeyMissing: add the key
    body = {"stringData": {"uri": pod_url(urls["key"])}}
    cluster.kube.request("PATCH", path, body, content_type="application/merge-patch+json")
    # PlanFailed (a refused login): correct the Secret, then a new generation
    body = {"stringData": {"uri": pod_url(urls["login"])}}
    path = path_of("Secret", cluster.ns, "login-db")
    cluster.kube.request("PATCH", path, body, content_type="application/merge-patch+json")
    _respec(cluster, "login", {"jobs": {"backoffLimit": 1}})
    _respec(
        cluster, "window", {"maintenanceWindow": {"timeZone": "UTC", "appliesTo": "LargeTables"}}
    )
    _respec(cluster, "lint", {"source": {"inline": inline_files(NOTES)}})  # LintFailed: fix the SQL
    cluster.config_map("drift-v2", NOTES)  # DriftDetected: the applied files as they were
    _respec(cluster, "drift", {"source": {"configMap": {"name": "drift-v2"}}})
    _respec(cluster, "probe", {"verification": {"analyze": False, "probes": []}})  # fix the probe

    for name in specs:
        _succeeded(cluster, name)
    backed_up = condition(cluster.status("cm"), "BackedUp")  # backup.enabled: false, as meant
    assert (backed_up["status"], backed_up["reason"]) == ("False", "BackupDisabled")
    for name in ("login", "probe", "pvc", "cm", "key", "lint"):
        assert history_versions(urls[name]) == {1: "applied", 2: "applied"}, name
    print(f"every remedy worked after {time.monotonic() - began:.1f}s")
    changed_plan()
