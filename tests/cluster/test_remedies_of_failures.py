"""The failure reasons of docs/conditions.md, each produced for real and then remedied exactly as
its row says, on one operator at once, each on its own small database: the end state must say
what went wrong and why, and doing the documented next step must lead to Succeeded with every
version applied once.

- SecretNotFound: the Secret appears later; the run goes on by itself.
- InvalidSpec: a probe that deletes; the fixed probe (a new generation) succeeds.
- PreflightFailed: a UNIQUE index over duplicate values; the duplicates are removed, then the
  retry annotation starts a new run of the same generation.
- BackupFailed: pg_dump may not read a table the application's role cannot read; the grant, then
  the retry annotation.
- ApplyFailed: a statement naming a missing column; rolled back, then fixed by a new generation.
- StepNotReported: the step service account loses the right to patch the status while the apply
  runs; the rule is given back, then the retry annotation: the new run finds every version applied
  and applies nothing twice.
- RollbackFailed: a session holds a lock on an index the rollback must drop; `dbmigrate history`
  shows the database's state, the session is ended, the workloads are scaled back with the
  command the message gives, and a new generation with the fixed file succeeds.
- InvalidResource: the CRD is one field newer than the operator's model (a version skew: the
  model and the CRD are generated from one source, so nothing else the API server admits is
  refused); the field taken out of the spec, it succeeds.
- RollbackImpossible: while the rollback waits for the application to stop, the run's kept spec
  is deleted and the spec switched to no rollback (the only way a run sees its spec change); the
  history read, the workload scaled back as the message says, the fixed generation succeeds.
- ApiError: a second operator runs as the chart's ServiceAccount with the chart's Role less the
  right to create Jobs; the Role given back, the run goes on by itself.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from psycopg import sql

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.labels import RETRY_ANNOTATION
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.controller.kube import ApiError, path_of
from dbmigrate.specs.naming import (
    run_spec_config_map_name,
    status_role_name,
    step_service_account_name,
)
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
from tools import chart_tools as chart

__all__ = ["cluster", "crd", "databases", "operator"]  # fixtures used by name

pytestmark = pytest.mark.local_testbed(
    reason="seven resources at once on one operator (process pods); the kind tier keeps its budget"
)

NOTES = {
    "001_notes.sql": "CREATE TABLE notes (id bigint PRIMARY KEY, body text);",
    "002_notes_body_index.sql": "CREATE INDEX CONCURRENTLY idx_notes_body ON notes (body);",
}
UNIQUE_BODY = {
    "003_unique_body.sql": "CREATE UNIQUE INDEX CONCURRENTLY uq_notes_body ON notes (body);"
}
MISSING_COLUMN = {"003_tag_index.sql": "CREATE INDEX CONCURRENTLY idx_notes_tag ON notes (tag);"}
FIXED_COLUMN = {"003_tag_index.sql": "CREATE INDEX CONCURRENTLY idx_notes_tag ON notes (id, body);"}
QUIET_GATE, STUCK_GATE = 71_001, 71_002  # advisory lock keys the test holds as gates


def _gate_file(key: int) -> dict[str, str]:
    """003: waits while the test holds the advisory lock ``key`` (001 and 002 are applied)."""
    return {"003_gate.sql": f"SELECT pg_advisory_xact_lock({key});"}


QUIET = {**NOTES, **_gate_file(QUIET_GATE)}
# 001 creates the table, 003 waits for the test to lock it, 004 fails
STUCK = {
    **NOTES,
    **_gate_file(STUCK_GATE),
    "004_tag_index.sql": MISSING_COLUMN["003_tag_index.sql"],
}
UNSTUCK = {
    **NOTES,
    **_gate_file(STUCK_GATE),
    "004_tag_index.sql": FIXED_COLUMN["003_tag_index.sql"],
}
# the gate's wait: lock_timeout 3 s, retried; the rollback's DROP gives up after 3 s
GATED_SAFETY = {"lintPolicy": "strict", "lockTimeout": "3s", "lockRetries": 10}


def _spec(secret: str, files: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """Small and quick: inline files, no backup, no probes, one pod per step Job."""
    base: dict[str, Any] = {
        "database": {"secretRef": {"name": secret, "uriKey": "uri"}},
        "source": {"inline": inline_files(files)},
        "backup": {"enabled": False},
        "verification": {"analyze": False},
        "jobs": {"backoffLimit": 0},
    }
    return sample_spec(**{**base, **overrides})


def _ended(cluster: Cluster, name: str, reason: str, timeout: float = 120) -> dict[str, Any]:
    """The terminal status of the run, which must have Stalled=True with ``reason``."""
    done = cluster.wait_terminal(name, timeout=timeout)
    stalled = condition(done, "Stalled")
    assert (stalled.get("status"), stalled.get("reason")) == ("True", reason), (name, done)
    assert stalled["message"] == done["message"], (name, done)
    return done


def _succeeded(cluster: Cluster, name: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the current generation's run is Succeeded (Ready=True)."""

    def ready(s: dict[str, Any]) -> bool:
        generation = (cluster.get(name) or {})["metadata"]["generation"]
        return s.get("observedGeneration") == generation and s.get("phase") in (
            "Succeeded",
            "Failed",
            "RolledBack",
        )

    done = cluster.wait(name, ready, "the current generation's run to end", timeout)
    assert done["phase"] == "Succeeded", (name, done.get("message"))
    assert condition(done, "Ready").get("status") == "True", (name, done)
    return done


def _retry(cluster: Cluster, name: str, token: str) -> None:
    """The documented retry: a new value of the retry annotation, echoed once acted on."""
    cluster.annotate(name, RETRY_ANNOTATION, token)
    cluster.wait(name, lambda s: s.get("lastHandledRetry") == token, f"the retry {token}", 30)


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def _apply_by_hand(url: str, files: dict[str, str], folder: Path) -> None:
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    command = [sys.executable, "-m", "dbmigrate.cli.main", "apply", "--migrations", str(folder)]
    subprocess.run([*command, "--database-url", url], check=True, capture_output=True)


def _in_thread(name: str, scenario: Callable[[], None]) -> Callable[[], None]:
    """Start ``scenario`` in a thread; the returned function joins it and raises what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            scenario()
        except BaseException as exc:  # pytest.fail raises a BaseException: hand it over
            raised.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(timeout=240)
        assert not thread.is_alive(), f"the {name} scenario did not end within 240 s"
        if raised:
            raise raised[0]

    return join


@pytest.fixture
def app_role(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """A login role that is no superuser (name, password), dropped at the end."""
    name, password = f"app_{int(time.time() * 1000) % 10**9}", "app-password-3c1d"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
    try:
        yield name, password
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def _gate(url: str, key: int) -> Iterator[tuple[Callable[[], None], Callable[[], None]]]:
    """Hold the advisory lock ``key`` on a session of the test; yields ``reached()``, which waits
    until a session of the step waits for it (the apply reached 003), and ``opened()``, which
    releases it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objid = %s AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"
        )

        def reached() -> None:
            deadline = time.monotonic() + 120
            while (conn.execute(waiting, (key,)).fetchone() or (0,))[0] == 0:
                assert time.monotonic() < deadline, "the apply never reached the gate"
                time.sleep(0.1)

        def opened() -> None:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

        yield reached, opened


def _patch(cluster: Cluster, kind: str, name: str, body: dict[str, Any], merge: bool) -> None:
    content = "application/merge-patch+json" if merge else "application/json-patch+json"
    cluster.kube.request("PATCH", path_of(kind, cluster.ns, name), body, content_type=content)


def _may_patch_status(cluster: Cluster, account: str, resource: str) -> bool:
    """Whether the API server's RBAC lets ``account`` patch ``resource``'s status now."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{cluster.ns}:{account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{cluster.ns}"],
            "resourceAttributes": {
                "namespace": cluster.ns,
                "verb": "patch",
                "group": API_GROUP,
                "resource": PLURAL,
                "subresource": "status",
                "name": resource,
            },
        },
    }
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    return bool(cluster.kube.request("POST", path, review)["status"].get("allowed"))


def step_not_reported(cluster: Cluster, url: str) -> None:
    """The apply runs (slowly) while its service account loses the right to patch the status:
    the run ends Failed with StepNotReported; the rule given back and a retry finish it without
    applying anything twice."""
    cluster.secret("quiet-db", {"uri": pod_url(url)})
    role = status_role_name("quiet")
    with _gate(url, QUIET_GATE) as (reached, opened):
        cluster.migration("quiet", _spec("quiet-db", QUIET, safety=GATED_SAFETY))
        reached()  # the apply runs: its Job, the Role and its binding exist
        saved = cluster.kube.get("Role", cluster.ns, role)
        assert saved is not None
        status_rules = [r for r in saved["rules"] if r["resources"][0].endswith("/status")]
        assert status_rules, saved["rules"]
        others = [r for r in saved["rules"] if r not in status_rules]
        account = step_service_account_name("quiet")
        assert _may_patch_status(cluster, account, "quiet")
        _patch(cluster, "Role", role, {"rules": others}, merge=True)
        deadline = time.monotonic() + 30  # the authorizer's cache follows within moments
        while _may_patch_status(cluster, account, "quiet"):
            assert time.monotonic() < deadline, "the Role's change never took effect"
            time.sleep(0.2)
        opened()
    failed = _ended(cluster, "quiet", "StepNotReported", timeout=120)
    assert failed["phase"] == "Failed" and failed.get("failedStep") == "apply", failed
    message = failed["message"]
    assert "succeeded but did not write status.apply" in message, message
    assert "may patch databasemigrations/status" in message, message
    # the apply did run: the database has what it applied, and the history says so
    assert history_versions(url) == {1: "applied", 2: "applied", 3: "applied"}

    # remedy: give the service account its rule back, then retry; nothing is applied twice
    _patch(cluster, "Role", role, {"rules": saved["rules"]}, merge=True)
    deadline = time.monotonic() + 30
    while not _may_patch_status(cluster, account, "quiet"):
        assert time.monotonic() < deadline, "the Role given back never took effect"
        time.sleep(0.2)
    _retry(cluster, "quiet", "after-rbac-fixed")
    done = _succeeded(cluster, "quiet")
    assert "nothing to apply" in done["message"], done["message"]
    assert not any(
        j["metadata"]["name"].startswith("quiet-apply") and "-r2" in j["metadata"]["name"]
        for j in cluster.jobs("quiet")
    ), [j["metadata"]["name"] for j in cluster.jobs("quiet")]
    assert history_versions(url) == {1: "applied", 2: "applied", 3: "applied"}


def rollback_failed(cluster: Cluster, url: str) -> None:
    """A session holds the table the rollback must drop: RollbackFailed, the workload stays
    down; the documented steps (look at the history, end the session, scale back, new
    generation) end Succeeded."""
    cluster.secret("stuck-db", {"uri": pod_url(url)})
    web = {"containers": [{"name": "web", "image": app_image(), "command": ["sleep", "3600"]}]}
    cluster.create(deployment("stuckweb", 2, web))
    rollback = {
        "strategy": "DropCreatedObjects",
        "scaleDown": [{"kind": "Deployment", "name": "stuckweb"}],
    }
    spec = _spec("stuck-db", STUCK, rollback=rollback, safety=GATED_SAFETY)
    holder = psycopg.connect(url)
    try:
        with _gate(url, STUCK_GATE) as (reached, opened):
            cluster.migration("stuck", spec)
            reached()  # 001 created the table
            holder.execute("LOCK TABLE notes IN ACCESS SHARE MODE")  # held: no commit
            opened()
        failed = _ended(cluster, "stuck", "RollbackFailed", timeout=120)
        assert failed["phase"] == "Failed", failed
        message = failed["message"]
        assert "ApplyFailed" in message and 'column "tag" does not exist' in message, message
        assert "stopped: DROP of index public.idx_notes_body failed" in message, message
        assert "lock timeout" in message, message
        assert "Deployment/stuckweb (was 2)" in message, message
        assert "backup" not in message.replace("rollback", ""), message  # there is none
        # the row's steps, as the message gives them
        assert "dbmigrate history" in message, message
        scale = f"kubectl scale -n {cluster.ns} deployment/stuckweb --replicas=2"
        assert scale in message, message
        assert condition(failed, "RolledBack")["reason"] == "RollbackFailed", failed
        assert cluster.kube.replicas("Deployment", cluster.ns, "stuckweb") == 0
        # remedy: the row's command shows the database's state ...
        shown = subprocess.run(
            [sys.executable, "-m", "dbmigrate.cli.main", "history", "--database-url", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert re.search(r"\b1\b.*applied", shown) and re.search(r"\b4\b.*failed", shown), shown
    finally:
        holder.close()  # ... the session that held the table ends ...
    # ... the workloads go back to the replicas the message lists ...
    replicas = int(re.search(r"Deployment/stuckweb \(was (\d+)\)", message).group(1))  # type: ignore[union-attr]
    _patch_scale(cluster, "stuckweb", replicas)
    assert cluster.kube.replicas("Deployment", cluster.ns, "stuckweb") == 2
    # ... and the fixed migration is a new generation
    cluster.patch("stuck", {"spec": {"source": {"inline": inline_files(UNSTUCK)}}})
    _succeeded(cluster, "stuck", timeout=150)
    assert history_versions(url) == {1: "applied", 2: "applied", 3: "applied", 4: "applied"}


def secret_not_found(cluster: Cluster, url: str) -> None:
    """SecretNotFound: the run waits in Pending; creating the Secret with the keys the message
    names lets it go on by itself."""
    cluster.migration("late", _spec("late-db", NOTES))
    late = cluster.wait("late", stalled_by("SecretNotFound"), "SecretNotFound", 60)
    assert late["phase"] == "Pending", late
    assert "Secret late-db (spec.database.secretRef.name) was not found" in late["message"]
    assert "with the keys uri" in late["message"], late["message"]
    assert cluster.jobs("late") == []
    cluster.secret("late-db", {"uri": pod_url(url)})  # create it with the keys named
    _succeeded(cluster, "late")
    assert history_versions(url) == {1: "applied", 2: "applied"}


def invalid_spec(cluster: Cluster, url: str) -> None:
    """InvalidSpec: a probe that deletes (the API server admits it, PostgreSQL's parser does not);
    the fixed probe, a new generation, succeeds."""
    purge = "WITH gone AS (DELETE FROM notes RETURNING 1) SELECT count(*) FROM gone"
    probe = {"name": "purge", "sql": purge, "expectIndex": "idx_notes_body"}
    cluster.secret("probe-db", {"uri": pod_url(url)})
    cluster.migration(
        "probe", _spec("probe-db", NOTES, verification={"analyze": False, "probes": [probe]})
    )
    invalid = cluster.wait("probe", stalled_by("InvalidSpec"), "InvalidSpec", 60)
    assert "spec.verification.probes[0].sql (probe purge)" in invalid["message"]
    assert "runs a DELETE" in invalid["message"], invalid["message"]
    assert cluster.jobs("probe") == []
    fixed = {"name": "by-body", "sql": "SELECT id FROM notes WHERE body = 'x'"}
    fixed["expectIndex"] = "idx_notes_body"
    cluster.patch("probe", {"spec": {"verification": {"analyze": False, "probes": [fixed]}}})
    _succeeded(cluster, "probe")
    assert history_versions(url) == {1: "applied", 2: "applied"}


def preflight_failed(cluster: Cluster, url: str, folder: Path) -> None:
    """PreflightFailed: a UNIQUE index over duplicate values; the duplicates removed (what the
    check names), the retry annotation finishes the same generation."""
    _apply_by_hand(url, NOTES, folder)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO notes VALUES (1, 'same'), (2, 'same'), (3, 'other')")
    cluster.secret("preflight-db", {"uri": pod_url(url)})
    cluster.migration("preflight", _spec("preflight-db", {**NOTES, **UNIQUE_BODY}))
    failed = _ended(cluster, "preflight", "PreflightFailed", 90)
    assert failed["phase"] == "Failed", failed
    message = failed["message"]
    assert "unique-duplicates:uq_notes_body" in message, message
    assert "duplicate values in (body)" in message and "remove the duplicates first" in message
    checks = failed["preflight"]["checks"]
    assert {"unique-duplicates:uq_notes_body"} == {
        c["name"] for c in checks if c["status"] == "fail"
    }
    assert [j for j in cluster.jobs("preflight") if "-backup-" in j["metadata"]["name"]] == []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE notes SET body = 'same again' WHERE id = 2")
    _retry(cluster, "preflight", "after-duplicates-removed")
    _succeeded(cluster, "preflight")
    assert history_versions(url) == {1: "applied", 2: "applied", 3: "applied"}


def backup_failed(cluster: Cluster, url: str, admin_url: str, role: tuple[str, str]) -> None:
    """BackupFailed: the application's role owns its database but may not read one table, so
    pg_dump fails; the grant, then the retry annotation, and the backup is taken."""
    name, password = role
    database = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(name)
            )
        )
    with psycopg.connect(url, autocommit=True) as conn:  # as the superuser
        conn.execute("CREATE TABLE audit_trail (id bigint PRIMARY KEY, what text)")
    cluster.secret("backup-db", {"uri": pod_url(_with_user(url, name, password))})
    cluster.pvc("backups")
    backup = {"enabled": True, "pvcName": "backups"}
    cluster.migration("backup", _spec("backup-db", NOTES, backup=backup))
    failed = _ended(cluster, "backup", "BackupFailed", 90)
    assert failed["phase"] == "Failed", failed
    message = failed["message"]
    assert "permission denied for table audit_trail" in message, message
    assert "Nothing was changed" in message and password not in message, message
    assert condition(failed, "BackedUp")["reason"] == "BackupFailed"
    assert history_versions(url) == {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT SELECT ON audit_trail TO {}").format(sql.Identifier(name)))
    _retry(cluster, "backup", "after-grant")
    done = _succeeded(cluster, "backup")
    assert done["backup"]["verified"] is True, done["backup"]
    assert history_versions(url) == {1: "applied", 2: "applied"}


def apply_failed(cluster: Cluster, url: str) -> None:
    """ApplyFailed: a statement naming a missing column; rolled back, then the fixed migration
    (a new generation) succeeds."""
    cluster.secret("apply-db", {"uri": pod_url(url)})
    cluster.migration("apply", _spec("apply-db", {**NOTES, **MISSING_COLUMN}))
    failed = _ended(cluster, "apply", "ApplyFailed", 120)
    assert failed["phase"] == "RolledBack", failed
    assert 'column "tag" does not exist' in failed["message"], failed["message"]
    assert condition(failed, "Migrated")["reason"] == "ApplyFailed"
    assert history_versions(url) == {1: "rolled_back", 2: "rolled_back", 3: "rolled_back"}
    cluster.patch(
        "apply", {"spec": {"source": {"inline": inline_files({**NOTES, **FIXED_COLUMN})}}}
    )
    _succeeded(cluster, "apply")
    assert history_versions(url) == {1: "applied", 2: "applied", 3: "applied"}


def _token_kubeconfig(
    cluster: Cluster, admin: Path, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig that logs in as the ServiceAccount (a TokenRequest token)."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    issued = cluster.kube.request(
        "POST", path_of("ServiceAccount", namespace, account, "token"), request
    )
    config = yaml.safe_load(admin.read_text())
    user = {"name": "operator", "user": {"token": issued["status"]["token"]}}
    context = {"cluster": config["clusters"][0]["name"], "user": "operator"}
    config["users"] = [user]
    config["contexts"] = [{"name": "operator", "context": context}]
    config["current-context"] = "operator"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def api_error(cluster: Cluster, url: str, admin_kubeconfig: Path, folder: Path) -> None:
    """ApiError: a second operator, in a namespace of its own, runs as the chart's
    ServiceAccount with the chart's Role but for the right to create Jobs: the run stalls with
    the API server's Forbidden; the chart's Role given back (check its RBAC), it goes on by
    itself."""
    namespace = f"{cluster.ns}-rbac"
    kube = cluster.kube
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    operator = None
    try:
        values = {"fullnameOverride": "dbmigrate-operator", "replicaCount": 0}
        values["watchNamespaces"] = [namespace]
        docs = chart.helm_template(values, "--namespace", namespace)
        (role,) = chart.find(docs, "Role", "dbmigrate-operator")
        (binding,) = chart.find(docs, "RoleBinding", "dbmigrate-operator")
        (account,) = chart.find(docs, "ServiceAccount", "dbmigrate-operator")
        jobs = next(r for r in role["rules"] if r["resources"] == ["jobs"])
        assert "create" in jobs["verbs"], role["rules"]
        rules = [
            {**r, "verbs": [v for v in r["verbs"] if v != "create"]} if r is jobs else r
            for r in role["rules"]
        ]
        for doc in (account, {**role, "rules": rules}, binding):
            kube.create(doc)
        folder.mkdir()
        config = _token_kubeconfig(
            cluster, admin_kubeconfig, namespace, "dbmigrate-operator", folder / "kubeconfig"
        )
        operator = OperatorProcess(config, [namespace], folder / "operator.log")
        operator.start()
        other = Cluster(kube, namespace)
        other.secret("denied-db", {"uri": pod_url(url)})
        other.migration("denied", _spec("denied-db", NOTES))
        stalled = other.wait("denied", stalled_by("ApiError"), "ApiError", 90)
        message = stalled["message"]
        assert "the operator's API call failed" in message, message
        assert "forbidden" in message.lower() and "jobs" in message, message
        assert condition(stalled, "Ready")["message"] == message
        assert condition(stalled, "Reconciling")["status"] == "False", stalled
        assert other.jobs("denied") == []
        # remedy: the operator's log says the same; its RBAC is the chart's again
        assert "forbidden" in operator.log().lower(), operator.log()[-3000:]
        _patch(other, "Role", "dbmigrate-operator", {"rules": role["rules"]}, merge=True)
        _succeeded(other, "denied")
        assert history_versions(url) == {1: "applied", 2: "applied"}
    finally:
        if operator is not None:
            operator.stop()
        kube.request("DELETE", path_of("Namespace", None, namespace))


def rollback_impossible(cluster: Cluster, url: str) -> None:
    """RollbackImpossible: while the rollback waits for the application to stop, the run's kept
    spec is deleted and the spec asks for no rollback (with the fixed file): the run ends Failed
    saying so, with the commands that scale the workload back; done, the fixed generation
    (queued meanwhile) succeeds."""
    cluster.secret("imp-db", {"uri": pod_url(url)})
    web = {"containers": [{"name": "web", "image": app_image(), "command": ["sleep", "3600"]}]}
    cluster.create(deployment("impweb", 2, web))
    # a pod of the workload that no controller stops: the rollback waits for it
    labels = {"app": "impweb"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "impweb-0", "labels": labels}}
    cluster.create({**pod, "spec": {**web, "restartPolicy": "Never"}})
    rollback = {
        "strategy": "DropCreatedObjects",
        "scaleDown": [{"kind": "Deployment", "name": "impweb"}],
    }
    cluster.migration("imp", _spec("imp-db", {**NOTES, **MISSING_COLUMN}, rollback=rollback))
    waiting = cluster.wait(
        "imp",
        lambda s: "waiting for the application to stop" in (s.get("message") or ""),
        "the rollback to wait for the application",
        120,
    )
    assert waiting["phase"] == "RollingBack", waiting
    kept = run_spec_config_map_name("imp")
    cluster.kube.request("DELETE", path_of("ConfigMap", cluster.ns, kept))
    fixed = inline_files({**NOTES, **FIXED_COLUMN})
    cluster.patch("imp", {"spec": {"source": {"inline": fixed}, "rollback": {"strategy": "None"}}})
    # a reconcile has seen generation 2 (a reconcile begun before may still use the kept spec)
    seen = cluster.wait(
        "imp",
        lambda s: "generation 2 is queued" in (s.get("message") or ""),
        "the operator to see generation 2",
        60,
    )
    assert "waiting for the application to stop" in seen["message"], seen["message"]
    cluster.kube.request(
        "DELETE", path_of("Pod", cluster.ns, "impweb-0"), {"gracePeriodSeconds": 0}
    )
    event = cluster.wait_event("imp", lambda e: "cannot roll back" in e["message"], 90)
    message = event["message"]
    assert event["type"] == "Warning" and "ApplyFailed" in message, message
    assert "rollback.strategy was changed to None" in message, message
    assert "dbmigrate history" in message, message
    scale = f"kubectl scale -n {cluster.ns} deployment/impweb --replicas=2"
    assert scale in message, message
    assert cluster.kube.replicas("Deployment", cluster.ns, "impweb") == 0
    # remedy: the history says what the failed apply left ...
    shown = subprocess.run(
        [sys.executable, "-m", "dbmigrate.cli.main", "history", "--database-url", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert re.search(r"\b3\b.*failed", shown), shown
    # ... the workload goes back as the message says, and the fixed generation succeeds
    _patch_scale(cluster, "impweb", 2)
    _succeeded(cluster, "imp", timeout=150)
    assert history_versions(url) == {1: "applied", 2: "applied", 3: "applied"}
    assert cluster.kube.replicas("Deployment", cluster.ns, "impweb") == 2


def _patch_scale(cluster: Cluster, deployment_name: str, replicas: int) -> None:
    """kubectl scale deployment/NAME --replicas=N, through the scale subresource."""
    cluster.kube.request(
        "PATCH",
        path_of("Deployment", cluster.ns, deployment_name, "scale"),
        {"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
    )


CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{API_GROUP}"
SPEC_PROPERTIES = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties"
FUTURE_FIELD = "rolloutHints"  # a field a newer CRD might have; this operator's model has none


@contextlib.contextmanager
def newer_crd(cluster: Cluster) -> Iterator[None]:
    """The DatabaseMigration CRD with one more spec field than the operator knows (a CRD newer
    than the operator), served before the block and taken out again after it."""
    assert FUTURE_FIELD not in DatabaseMigrationSpec.model_json_schema(by_alias=True)["properties"]
    json_patch = "application/json-patch+json"
    add = [{"op": "add", "path": f"{SPEC_PROPERTIES}/{FUTURE_FIELD}", "value": {"type": "string"}}]
    cluster.kube.request("PATCH", CRD_PATH, add, content_type=json_patch)
    try:
        probe = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "DatabaseMigration",
            "metadata": {"name": "served", "namespace": cluster.ns},
            "spec": {**_spec("none", NOTES), FUTURE_FIELD: "x"},
        }
        path = path_of("DatabaseMigration", cluster.ns)
        deadline = time.monotonic() + 60
        while True:  # the API server serves the new schema once a dry run keeps the field
            try:
                kept = cluster.kube.request("POST", path, probe, query={"dryRun": "All"})
                if FUTURE_FIELD in kept["spec"]:
                    break
            except ApiError as exc:
                assert exc.status == 429, exc  # storage (re)initializing
            assert time.monotonic() < deadline, "the newer CRD was never served"
            time.sleep(0.5)
        yield
    finally:
        remove = [{"op": "remove", "path": f"{SPEC_PROPERTIES}/{FUTURE_FIELD}"}]
        cluster.kube.request("PATCH", CRD_PATH, remove, content_type=json_patch)


def invalid_resource(cluster: Cluster, url: str) -> None:
    """InvalidResource: a resource using a field of the newer CRD that the operator's model
    refuses; the field taken out of the spec, as the message says, it succeeds."""
    cluster.secret("skew-db", {"uri": pod_url(url)})
    cluster.migration("skew", {**_spec("skew-db", NOTES), FUTURE_FIELD: "wave-1"})
    stalled = cluster.wait("skew", stalled_by("InvalidResource"), "InvalidResource", 60)
    message = stalled["message"]
    assert "does not match the operator's API model" in message, message
    assert FUTURE_FIELD in message and "fix the spec" in message, message
    assert condition(stalled, "Ready")["message"] == message
    assert cluster.jobs("skew") == []
    cluster.patch("skew", {"spec": {FUTURE_FIELD: None}})  # fix the spec as the message says
    _succeeded(cluster, "skew")
    assert history_versions(url) == {1: "applied", 2: "applied"}


def test_each_failure_says_why_and_its_documented_remedy_works(
    cluster: Cluster,
    operator: OperatorProcess,
    app_role: tuple[str, str],  # before databases: dropped after them
    databases: Callable[[], str],
    pg_admin_url: str,
    tmp_path: Path,
    testbed: Any,
) -> None:
    began = time.monotonic()
    urls = {
        name: databases()
        for name in ("late", "probe", "pre", "backup", "apply", "q", "rb", "api", "skew", "imp")
    }
    scenarios = {
        "SecretNotFound": lambda: secret_not_found(cluster, urls["late"]),
        "InvalidSpec": lambda: invalid_spec(cluster, urls["probe"]),
        "PreflightFailed": lambda: preflight_failed(cluster, urls["pre"], tmp_path / "applied"),
        "BackupFailed": lambda: backup_failed(cluster, urls["backup"], pg_admin_url, app_role),
        "ApplyFailed": lambda: apply_failed(cluster, urls["apply"]),
        "StepNotReported": lambda: step_not_reported(cluster, urls["q"]),
        "RollbackFailed": lambda: rollback_failed(cluster, urls["rb"]),
        "InvalidResource": lambda: invalid_resource(cluster, urls["skew"]),
        "RollbackImpossible": lambda: rollback_impossible(cluster, urls["imp"]),
        "ApiError": lambda: api_error(
            cluster, urls["api"], Path(testbed.kubeconfig), tmp_path / "rbac"
        ),
    }
    with newer_crd(cluster):
        joins = {reason: _in_thread(reason, scenario) for reason, scenario in scenarios.items()}
        for reason, join in joins.items():
            join()
            took = time.monotonic() - began
            print(f"{reason}: said why, and its remedy worked, after {took:.1f}s")
