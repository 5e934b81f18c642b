"""Helpers of the operator's end-to-end tests: the operator as a subprocess, the objects a
DatabaseMigration needs, polling its status, and fingerprints of the database.

The operator runs as ``dbmigrate operator --kubeconfig ... --namespace NS`` in its own process
group, so a test can kill it (SIGKILL, no goodbye) at any moment and start it again. Nothing here
mocks anything: the API server, the Job controller, the local kubelet and PostgreSQL are real.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.labels import BACKUP_MOUNT
from dbmigrate.controller.kube import Kube, Obj, load_api_client
from dbmigrate.specs.jobs import container_security_context, pod_security_context
from testbed.bed import with_host
from testbed.crd import install_crd
from testbed.postgres import fresh_database

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "dbmigrate.io_databasemigrations.yaml"
SAMPLE = ROOT / "manifests" / "samples" / "analytics-migration.yaml"
MIGRATIONS = ROOT / "database" / "migrations"
TERMINAL = ("Succeeded", "Failed", "RolledBack")
ROLLOUTS = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{{ns}}/databasemigrationrollouts"


def migration_files(up_to: int = 5) -> dict[str, str]:
    """The analytics migrations 001..up_to as {file name: SQL}."""
    files = sorted(MIGRATIONS.glob("*.sql"))
    return {f.name: f.read_text() for f in files if int(f.name.split("_", 1)[0]) <= up_to}


class OperatorProcess:
    """``dbmigrate operator`` as a child process that can be stopped, killed and restarted."""

    def __init__(
        self,
        kubeconfig: Path,
        namespaces: list[str],
        log_path: Path,
        *,
        extra_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_path
        self.extra_args = extra_args
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        argv = [sys.executable, "-m", "dbmigrate.cli.main", "operator"]
        argv += ["--kubeconfig", str(self.kubeconfig), "--resync-seconds", "3"]
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        argv += self.extra_args
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to clean anything up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_alive(self) -> None:
        """Fail at once (with its log) if the operator died instead of timing out later."""
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"the operator exited with {self.proc.returncode}:\n{self.log()[-3000:]}")


class Cluster:
    """The objects of one test namespace, through the API server (plain JSON)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.ns = namespace
        self.watchdogs: list[Callable[[], None]] = []

    # --- objects ----------------------------------------------------------------------------

    def create(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["namespace"] = self.ns
        self.kube.create(obj)
        return obj

    def secret(self, name: str, data: dict[str, str]) -> None:
        self.create(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
        )

    def config_map(self, name: str, files: dict[str, str]) -> None:
        self.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": files}
        )

    def pvc(self, name: str) -> None:
        self.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )

    def migration(self, name: str, spec: dict[str, Any]) -> Obj:
        return self.create(
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "DatabaseMigration",
                "metadata": {"name": name},
                "spec": spec,
            }
        )

    def get(self, name: str) -> Obj | None:
        return self.kube.get("DatabaseMigration", self.ns, name)

    def status(self, name: str) -> dict[str, Any]:
        return (self.get(name) or {}).get("status") or {}

    def patch(self, name: str, body: Obj) -> Obj:
        return self.kube.request(
            "PATCH",
            f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{self.ns}/{PLURAL}/{name}",
            body,
            content_type="application/merge-patch+json",
        )

    def annotate(self, name: str, key: str, value: str) -> None:
        self.patch(name, {"metadata": {"annotations": {key: value}}})

    def delete(self, name: str) -> None:
        self.kube.request(
            "DELETE", f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{self.ns}/{PLURAL}/{name}"
        )

    def jobs(self, name: str | None = None) -> list[Obj]:
        selector = f"{API_GROUP}/migration={name}" if name else None
        return self.kube.list("Job", self.ns, selector)

    def events(self, name: str) -> list[Obj]:
        items = self.kube.list("Event", self.ns)
        found = [e for e in items if e.get("involvedObject", {}).get("name") == name]
        return sorted(found, key=lambda e: e.get("lastTimestamp") or "")

    def event_reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in self.events(name)]

    def wait_event_reasons(self, name: str, expected: set[str], timeout: float = 15.0) -> list[str]:
        """The reasons of the Events about the resource once they include ``expected`` (an
        Event is posted just after the status patch a test waits for, so it may lag it)."""
        deadline = time.monotonic() + timeout
        while not expected <= set(reasons := self.event_reasons(name)):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Events about {name} lack {sorted(expected - set(reasons))}: {reasons}"
                )
            time.sleep(0.5)
        return reasons

    # --- waiting ----------------------------------------------------------------------------

    def wait_event(self, name: str, check: Callable[[Obj], bool], timeout: float = 15.0) -> Obj:
        """The first Event about the resource passing ``check`` (posted just after its status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events(name) if check(e)]
            if found:
                return found[0]
            time.sleep(0.5)
        got = [(e["type"], e["reason"], e["message"]) for e in self.events(name)]
        pytest.fail(f"no matching Event about {name}; got {got}")

    def _poll(
        self,
        read: Callable[[], dict[str, Any]],
        check: Callable[[dict[str, Any]], bool],
        timeout: float,
    ) -> tuple[bool, dict[str, Any]]:
        """Read until ``check`` holds or ``timeout`` passes (the watchdogs run between reads);
        whether it held, and the last read."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = read()
            if check(status):
                return True, status
            for watchdog in self.watchdogs:
                watchdog()
            time.sleep(0.5)
        return False, status

    def wait(
        self,
        name: str,
        check: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Poll the resource's status until ``check(status)``; fail with the last status."""
        held, status = self._poll(lambda: self.status(name), check, timeout)
        if held:
            return status
        summary = {k: status.get(k) for k in ("phase", "message", "conditions", "jobs")}
        pytest.fail(f"{self.ns}/{name}: timed out after {timeout}s waiting for {what}: {summary}")

    def rollout(self, name: str, spec: dict[str, Any]) -> Obj:
        """Create the DatabaseMigrationRollout ``name``; the object as the API server stored it."""
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "DatabaseMigrationRollout",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        }
        return self.kube.request("POST", ROLLOUTS.format(ns=self.ns), body)

    def rollout_status(self, name: str) -> dict[str, Any]:
        found = self.kube.request("GET", ROLLOUTS.format(ns=self.ns) + f"/{name}")
        return dict(found.get("status") or {})

    def wait_rollout(
        self, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float
    ) -> dict[str, Any]:
        """Poll the rollout's status until ``check(status)``; fail with the last status."""
        held, status = self._poll(lambda: self.rollout_status(name), check, timeout)
        if held:
            return status
        pytest.fail(f"rollout {name}: timed out after {timeout}s waiting for {what}: {status}")

    def wait_phase(self, name: str, *phases: str, timeout: float = 120.0) -> dict[str, Any]:
        return self.wait(
            name, lambda s: s.get("phase") in phases, f"phase {'|'.join(phases)}", timeout
        )

    def wait_terminal(self, name: str, timeout: float = 180.0) -> dict[str, Any]:
        return self.wait_phase(name, *TERMINAL, timeout=timeout)

    def finished_jobs(self, name: str, timeout: float = 30.0) -> list[Obj]:
        """The resource's Jobs once the Job controller has marked each Complete or Failed.

        The operator moves on when a step reports its exit (status.stepExit); the Job
        controller marks the Job a second or more later, so a test that checks the Jobs waits.
        """
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs(name)
            if all(_job_finished(job) for job in jobs) or time.monotonic() > deadline:
                return jobs
            time.sleep(0.5)


def _job_finished(job: Obj) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition of that type (an empty dict if absent)."""
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def inline_files(files: dict[str, str]) -> list[dict[str, str]]:
    """Migration files as ``spec.source.inline`` holds them."""
    return [{"name": name, "sql": sql} for name, sql in files.items()]


def stalled_by(reason: str) -> Callable[[dict[str, Any]], bool]:
    """A check of a status: Stalled=True with ``reason``."""
    return lambda s: (
        condition(s, "Stalled").get("status") == "True"
        and condition(s, "Stalled").get("reason") == reason
    )


def sample_spec(**overrides: Any) -> dict[str, Any]:
    """The spec of manifests/samples/analytics-migration.yaml with top-level keys replaced;
    without its performance watch (15 minutes of sampling after each run) unless one is given."""
    spec: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())["spec"]
    spec.pop("watch", None)
    spec.update(overrides)
    return spec


def kube_for(kubeconfig: Path) -> Kube:
    return Kube(load_api_client(str(kubeconfig)))


# --- the database --------------------------------------------------------------------------


def indexes(url: str) -> set[str]:
    """Names of the valid indexes in schema public."""
    query = """
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND i.indisvalid
    """
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(query)}


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Per table of schema public: (row count, md5 of all rows in primary-key order)."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        out: dict[str, tuple[int, str]] = {}
        for table in tables:
            ident = psycopg.sql.Identifier(table)
            query = psycopg.sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
                "FROM {} AS t"
            ).format(ident)
            row = conn.execute(query).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
        return out


def columns(url: str, table: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        return [r[0] for r in rows]


def history_versions(url: str) -> dict[int, str]:
    """version -> status from the history table ({} if it does not exist yet)."""
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('dbmigrate.schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return {}
        rows = conn.execute("SELECT version, status FROM dbmigrate.schema_migrations")
        return {int(v): str(s) for v, s in rows}


def seed_analytics(url: str, up_to: int = 1, rows: int = 200) -> None:
    """Apply 001 by hand (psql-like) and insert a few rows, as an application would have."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name, sql in migration_files(up_to).items():
            del name
            conn.execute(sql)  # trusted repository files
        conn.execute(
            "INSERT INTO users (email, display_name) SELECT 'u' || g || '@example.com', 'U' || g "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute(
            "INSERT INTO visitor_sessions (visitor_id, user_id) "
            "SELECT 'v' || g, 1 + g %% %s FROM generate_series(1, %s) g",
            (rows, rows),
        )
        conn.execute(
            "INSERT INTO page_views (session_id, user_id, path, timestamp) SELECT 1 + g %% %s, "
            "1 + g %% %s, (ARRAY['/dashboard', '/reports', '/settings'])[1 + g %% 3], "
            "now() - g * interval '1 minute' FROM generate_series(1, %s) g",
            (rows, rows, rows * 50),
        )


# --- fixtures (imported by the test modules) -----------------------------------------------


@pytest.fixture(scope="session")
def crd(testbed: Any) -> None:
    install_crd(testbed.kubectl)


@pytest.fixture
def databases(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh databases, all dropped at the end."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(fresh_database(pg_admin_url))


@pytest.fixture
def cluster(testbed: Any, namespace: str, crd: None) -> Cluster:
    return Cluster(kube_for(testbed.kubeconfig), namespace)


@pytest.fixture
def operator(testbed: Any, namespace: str, crd: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(Path(testbed.kubeconfig), [namespace], tmp_path / "operator.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print(f"----- operator log ({proc.log_path}) -----")
        print(proc.log()[-20000:])


def app_image() -> str:
    """An image for an application's pods: the project's own where a kubelet runs images (it
    has python3), a name that is never pulled on the local test bed (which runs the command)."""
    return os.environ.get("DBMIGRATE_IMAGE") or "example/web:1"


def deployment(name: str, replicas: int, pod_spec: dict[str, Any]) -> Obj:
    """A Deployment ``name`` whose pods (label app=<name>) run ``pod_spec``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def pod_url(url: str) -> str:
    """The database URL as the cluster's pods reach it (see `testbed.bed`)."""
    external = bool(os.environ.get("DBMIGRATE_TEST_KUBECONFIG"))
    return with_host(url, os.environ.get("DBMIGRATE_TEST_POD_DATABASE_HOST") if external else None)


def on_backup_volume(testbed: Any, cluster: Cluster, claim: str, command: list[str]) -> str:
    """Run ``command`` in the project's image as a restricted, non-root pod with the PVC
    ``claim`` mounted where the step pods mount backups; return its log. (On the local test bed,
    where that folder is a host folder, run the command here.)"""
    if not testbed.real_kubelet:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout
    name = f"backups-{secrets.token_hex(3)}"
    volume = {"name": "backups", "persistentVolumeClaim": {"claimName": claim}}
    container = {
        "name": "main",
        "image": os.environ["DBMIGRATE_IMAGE"],
        "command": command,
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "backups", "mountPath": BACKUP_MOUNT}],
    }
    spec = {
        "restartPolicy": "Never",
        "securityContext": pod_security_context(),
        "volumes": [volume],
        "containers": [container],
    }
    cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        phase = ((cluster.kube.get("Pod", cluster.ns, name) or {}).get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            logs = testbed.kubectl("-n", cluster.ns, "logs", name)
            assert phase == "Succeeded", logs.stdout + logs.stderr
            return str(logs.stdout)
        time.sleep(1)
    pytest.fail(f"pod {name} did not finish within 120 s")


def ready_database(cluster: Cluster, database_url: str, *, files: dict[str, str] | None) -> None:
    """Secret analytics-db (uri, as pods reach the database), ConfigMap analytics-migrations,
    PVC dbmigrate-backups."""
    cluster.secret("analytics-db", {"uri": pod_url(database_url)})
    cluster.config_map("analytics-migrations", files if files is not None else migration_files())
    cluster.pvc("dbmigrate-backups")
