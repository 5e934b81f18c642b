"""The demo's second half: the emergency paths, after the sample migration has succeeded.

1. A second migration (``analytics-extra``: the sample's files plus a 006 that builds one more
   index) whose verification fails (its probe expects an index no file creates): the operator
   rolls it back by itself (drops the 006 index) and it ends RolledBack.
2. A rollback on demand of the first migration, as a person asks it at night: the application
   (Deployment ``web``, 2 replicas) has meanwhile started filling the new ``users.email_hash``
   column, so the request's dry run finds data that the rollback would drop and waits for the
   confirmation; the demo shows the plan and the data-loss check, confirms with the command the
   request prints, and follows the rollback: the application scaled down, the objects dropped,
   verified, the application scaled back.
3. The data proven identical: every application table's row count and content hash equal what
   they were before the first migration.

The request is made through the ``kubectl dbmigrate`` plugin when it is installed
(``kubectl-dbmigrate`` on PATH), else by creating the MigrationRollback object itself. The
application (``web_deployment``) is created before the first migration, whose
``spec.rollback.scaleDown`` names it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

from testbed.bed import ExternalTestbed, LocalTestbed

Bed = LocalTestbed | ExternalTestbed
Kubectl = Callable[..., str]
EXTRA_FILE = "006_add_page_views_path_session_index.sql"
EXTRA_SQL = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_page_views_path_session "
    "ON page_views (path, session_id);\n"
)
TABLES_SQL = (
    "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN"
    " ('pg_catalog', 'information_schema', 'dbmigrate') ORDER BY 1, 2"
)


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Per application table: its row count and the md5 of all its rows (ordered)."""
    found: dict[str, tuple[int, str]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for schema, table in conn.execute(TABLES_SQL).fetchall():
            name = f'"{schema}"."{table}"'
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                f" FROM {name} t"  # names from the catalog
            ).fetchone()
            assert row is not None
            found[f"{schema}.{table}"] = (int(row[0]), str(row[1]))
    return found


def web_deployment(image: str) -> str:
    """The application: 2 replicas that only sleep (their pods stop when scaled to 0)."""
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "securityContext": {
                            "runAsNonRoot": True, "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": "web", "image": image, "command": ["sleep", "3600"],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }],
                    },
                },
            },
        }
    )  # fmt: skip


def extra_migration(files_configmap: str) -> str:
    """The second migration: the sample's spec, one more file, a probe no index satisfies."""
    return json.dumps(
        {
            "apiVersion": "dbmigrate.io/v1alpha1",
            "kind": "DatabaseMigration",
            "metadata": {"name": "analytics-extra"},
            "spec": {
                "database": {"secretRef": {"name": "analytics-db", "uriKey": "uri"}},
                "source": {"configMap": {"name": files_configmap}},
                "backup": {"enabled": True, "pvcName": "dbmigrate-backups"},
                "verification": {
                    "analyze": True,
                    "probes": [{
                        "name": "views-by-referrer",
                        "sql": "SELECT * FROM page_views WHERE path = '/reports' AND "
                        "session_id = 7",
                        "expectIndex": "idx_page_views_by_referrer",
                    }],
                },
                "rollback": {"strategy": "DropCreatedObjects"},
            },
        }
    )  # fmt: skip


def request_manifest(name: str, migration: str, reason: str) -> str:
    """A MigrationRollback asking to undo ``migration`` (its workloads: the migration's)."""
    return json.dumps(
        {
            "apiVersion": "dbmigrate.io/v1alpha1",
            "kind": "MigrationRollback",
            "metadata": {"name": name},
            "spec": {"migration": migration, "reason": reason, "requestedBy": "on-call (demo)"},
        }
    )


def get_json(bed: Bed, namespace: str, *what: str) -> dict[str, Any]:
    out = bed.kubectl("-n", namespace, "get", *what, "-o", "json")
    if out.returncode != 0:
        return {}
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def wait_for(
    bed: Bed, namespace: str, what: tuple[str, str], phases: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """Print each phase of the object until it reaches one of ``phases``; its status."""
    seen: str | None = None
    status: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = get_json(bed, namespace, *what).get("status") or {}
        phase = status.get("phase")
        if phase and phase != seen:
            seen = phase
            print(f"  [{time.strftime('%H:%M:%S')}] {what[1]} {phase}: {status.get('message', '')}")
        if phase in phases:
            return status
        time.sleep(1)
    raise RuntimeError(f"{what[0]}/{what[1]} did not reach {phases} in {timeout:.0f}s: {status}")


def newest_request(bed: Bed, namespace: str) -> str:
    """The name of the newest MigrationRollback in the namespace."""
    items = get_json(bed, namespace, "dbmr").get("items") or []
    items.sort(key=lambda i: i["metadata"]["creationTimestamp"])
    return str(items[-1]["metadata"]["name"]) if items else ""


def ask_rollback(bed: Bed, kubectl: Kubectl, namespace: str, reason: str, timeout: float) -> str:
    """Ask for the rollback on demand of ``analytics``: through ``kubectl dbmigrate rollback``
    when the plugin is installed (it shows the plan and the data-loss check, and confirms with
    ``--confirm``, as a script does), else by creating the request and confirming it with the
    command its status prints. The request's name."""
    plugin = shutil.which("kubectl-dbmigrate")
    if plugin is not None:
        argv = [plugin, "rollback", "analytics", "-n", namespace, "--kubeconfig",
                str(bed.kubeconfig), "--reason", reason, "--yes", "--confirm", "analytics",
                "--timeout", f"{timeout:.0f}s"]  # fmt: skip
        print(f"    $ kubectl dbmigrate rollback analytics -n {namespace} --reason {reason!r} "
              "--yes --confirm analytics")  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(bed.kubeconfig)}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        print("\n".join("    " + line for line in done.stdout.splitlines()))
        if done.returncode != 0:
            print(f"    (the plugin exited {done.returncode}: {done.stderr.strip()[:300]})")
        return newest_request(bed, namespace)
    print("    (kubectl dbmigrate is not installed: creating the MigrationRollback directly)")
    kubectl("-n", namespace, "apply", "-f", "-",
            stdin=request_manifest("analytics-undo", "analytics", reason))  # fmt: skip
    status = wait_for(bed, namespace, ("dbmr", "analytics-undo"),
                      ("AwaitingConfirmation", "Running", "Succeeded", "Refused", "Failed"),
                      timeout)  # fmt: skip
    plan = status.get("plan") or {}
    print(f"    plan: {plan.get('strategy')}, versions leaving the history {plan.get('versions')}")
    for dropped in plan.get("drop") or []:
        print(f"      drop {dropped}")
    for w in plan.get("workloads") or []:
        print(f"      scale {w['kind']}/{w['name']} from {w.get('from')} to {w['to']}")
    print(f"    data-loss check: {(status.get('dataLoss') or {}).get('summary')}")
    if status.get("phase") == "AwaitingConfirmation":
        print(f"    confirming, knowingly: {status.get('howToConfirm')}")
        kubectl("-n", namespace, "patch", "dbmr", "analytics-undo", "--type", "merge", "-p",
                json.dumps({"spec": {"confirm": "analytics"}}))  # fmt: skip
    return "analytics-undo"


def run_emergency(
    bed: Bed,
    kubectl: Kubectl,
    step: Callable[[str], None],
    namespace: str,
    url: str,
    before: dict[str, tuple[int, str]],
    timeout: float,
) -> bool:
    """The emergency half of the demo (see the module docstring); True when it all held."""
    step(f"a second migration, analytics-extra (adds {EXTRA_FILE}), whose probe must fail")
    files = {p.name: p.read_text() for p in _migration_files()}
    files[EXTRA_FILE] = EXTRA_SQL
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "analytics-extra-migrations"}, "data": files}  # fmt: skip
    kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(config))
    kubectl(
        "-n", namespace, "apply", "-f", "-", stdin=extra_migration("analytics-extra-migrations")
    )
    extra = wait_for(bed, namespace, ("dbm", "analytics-extra"),
                     ("Succeeded", "Failed", "RolledBack"), timeout)  # fmt: skip
    print(f"    rolled back by itself: {extra.get('phase') == 'RolledBack'}")

    step("the application starts filling users.email_hash (a column 003 added)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE users SET email_hash = sha256(convert_to(lower(email), 'UTF8'))"
                     " WHERE id <= 25")  # fmt: skip

    step("night: p99 latency doubled since the migration; asking for a rollback on demand")
    request = ask_rollback(bed, kubectl, namespace, "p99 latency doubled", timeout)
    ended = wait_for(bed, namespace, ("dbmr", request),
                     ("Succeeded", "Refused", "Failed"), timeout)  # fmt: skip
    evidence = ended.get("evidence") or {}
    for w in evidence.get("workloadsRestored") or []:
        print(f"    {w['kind']}/{w['name']} scaled down and back to {w['replicas']}")
    print(kubectl("-n", namespace, "get", "dbm,dbmr"))

    step("the data, proven identical to before the first migration")
    after = fingerprint(url)
    for table, (rows, digest) in sorted(after.items()):
        same = "identical" if before.get(table) == (rows, digest) else "DIFFERENT"
        print(f"    {table:<28} {rows:>8} rows  md5 {digest[:12]}...  {same}")
    return (
        extra.get("phase") == "RolledBack" and ended.get("phase") == "Succeeded" and after == before
    )


def _migration_files() -> list[Any]:
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "database" / "migrations"
    return sorted(folder.glob("*.sql"))
