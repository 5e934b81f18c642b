"""``make demo``: the whole story on this machine, from an empty test bed to a verified migration.

Starts the test bed (etcd, kube-apiserver, kube-controller-manager, PostgreSQL, the local
kubelet), loads the analytics schema with a few hundred thousand page views, installs the CRD,
starts ``dbmigrate operator``, creates the Secret, the ConfigMap of ``database/migrations/`` and
the backup PVC, applies ``manifests/samples/analytics-migration.yaml`` and follows it: every phase
change, the live progress of the index builds, then ``kubectl get dbm`` and a summary of the
backup, the applied versions and the verification. ``--keep`` leaves everything running.

Then the emergency paths (``testbed.emergency``): a second migration whose verification fails is
rolled back by itself, and the first one is rolled back on demand (through ``kubectl dbmigrate``
when installed), the application (Deployment ``web``) scaled down and back, ending with every
application table proven identical to what it was before the first migration.

``--kind`` (``make demo-kind``) runs the same sample on the kind cluster of ``make kind-up``
instead: the operator is the one the Helm chart installed there, the steps run the project's image
on real kubelets, and PostgreSQL is the cluster's StatefulSet (reached by its Service's name).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from testbed.bed import ExternalTestbed, LocalTestbed
from testbed.crd import install_crd
from testbed.emergency import fingerprint, run_emergency, web_deployment
from testbed.postgres import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "dbmigrate.io_databasemigrations.yaml"
SAMPLE = ROOT / "manifests" / "samples" / "analytics-migration.yaml"
MIGRATIONS = ROOT / "database" / "migrations"
NAMESPACE = "analytics"
LOCAL_WEB_IMAGE = "example/web:1"  # never pulled: the test bed runs no Deployment's pods
TERMINAL = ("Succeeded", "Failed", "RolledBack")


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def load_analytics(url: str, page_views: int) -> None:
    """The application's tables (001, as deployed before dbmigrate) and some traffic."""
    users, sessions = max(page_views // 60, 10), max(page_views // 15, 10)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((MIGRATIONS / "001_initial_schema.sql").read_text())
        conn.execute(
            "INSERT INTO users (email, display_name, role) SELECT 'user' || g || '@example.com',"
            " 'User ' || g, (ARRAY['viewer','analyst','admin'])[1 + g %% 3]"
            " FROM generate_series(1, %s) g",
            (users,),
        )
        conn.execute(
            "INSERT INTO visitor_sessions (visitor_id, user_id, started_at, last_activity_at,"
            " ended_at) SELECT 'v' || g, 1 + g %% %s, now() - g * interval '20 seconds',"
            " now() - g * interval '10 seconds',"
            " CASE WHEN g %% 10 = 0 THEN NULL ELSE now() - g * interval '5 seconds' END"
            " FROM generate_series(1, %s) g",
            (users, sessions),
        )
        conn.execute(
            "INSERT INTO page_views (session_id, user_id, path, timestamp, duration_ms,"
            " status_code) SELECT 1 + g %% %s, 1 + g %% %s,"
            " (ARRAY['/dashboard','/reports','/settings','/users','/export'])[1 + g %% 5],"
            " now() - g * interval '2 seconds', g %% 5000, 200"
            " FROM generate_series(1, %s) g",
            (sessions, users, page_views),
        )
        conn.execute("ANALYZE")
    print(f"    {users} users, {sessions} sessions, {page_views} page views")


Bed = LocalTestbed | ExternalTestbed
KIND_NAMESPACE = "dbmigrate-demo"  # watched by the Helm-installed operator (testbed.kindcluster)


def kubectl(bed: Bed, *args: str, stdin: str | None = None) -> str:
    result = bed.kubectl(*args, input=stdin)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def start_operator(bed: LocalTestbed, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "dbmigrate.cli.main", "operator"]
    argv += ["--kubeconfig", str(bed.kubeconfig), "--namespace", NAMESPACE]
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def create_inputs(bed: Bed, url: str, namespace: str) -> None:
    if namespace == NAMESPACE:
        kubectl(bed, "create", "namespace", NAMESPACE)
    secret = ("create", "secret", "generic", "analytics-db", "--from-file=uri=/dev/stdin")
    kubectl(bed, "-n", namespace, *secret, stdin=url)  # the URL never appears on a command line
    files = ("create", "configmap", "analytics-migrations", f"--from-file={MIGRATIONS}")
    kubectl(bed, "-n", namespace, *files)
    pvc = (
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: dbmigrate-backups}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"
    )
    kubectl(bed, "-n", namespace, "apply", "-f", "-", stdin=pvc)


def clear_previous(bed: Bed, namespace: str) -> None:
    """A previous demo's objects in the kind namespace (it is kept between runs)."""
    kubectl(bed, "-n", namespace, "delete", "dbmr", "--all", "--ignore-not-found", "--wait=true")
    for kind, name in (
        ("dbm", "analytics"),
        ("dbm", "analytics-extra"),
        ("deployment", "web"),
        ("secret", "analytics-db"),
        ("configmap", "analytics-migrations"),
        ("configmap", "analytics-extra-migrations"),
        ("pvc", "dbmigrate-backups"),
    ):
        args = (kind, name, "--ignore-not-found", "--wait=true")
        kubectl(bed, "-n", namespace, "delete", *args)


def status_of(bed: Bed, namespace: str) -> dict[str, Any]:
    import json

    out = bed.kubectl("-n", namespace, "get", "dbm", "analytics", "-o", "json")
    if out.returncode != 0:
        return {}
    status: dict[str, Any] = json.loads(out.stdout).get("status") or {}
    return status


def progress_line(progress: dict[str, Any]) -> str:
    done = f" {progress['percent']:.0f}%" if progress.get("percent") is not None else ""
    phase = f" ({progress['phase']})" if progress.get("phase") else ""
    waiting = " waiting for a lock" if progress.get("waiting") else ""
    return (
        f"    {progress.get('version')}_{progress.get('name')}: statement "
        f"{progress.get('statementIndex')}/{progress.get('statementsTotal')}{done}{phase}{waiting}"
        f" - {progress.get('statement', '')[:70]}"
    )


def follow(
    bed: Bed, operator: subprocess.Popen[bytes] | None, namespace: str, timeout: float
) -> dict[str, Any]:
    """Print each phase change and progress sample until the migration ends."""
    seen_phase, seen_progress = None, None
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if operator is not None and operator.poll() is not None:
            raise RuntimeError(f"the operator exited with {operator.returncode}")
        status = status_of(bed, namespace)
        phase = status.get("phase")
        if phase and phase != seen_phase:
            seen_phase = phase
            print(
                f"  [{time.strftime('%H:%M:%S')}] {phase}: {status.get('message', '')}", flush=True
            )
        progress = status.get("progress")
        if progress and progress != seen_progress and phase == "Migrating":
            seen_progress = progress
            print(progress_line(progress), flush=True)
        if phase in TERMINAL:
            return status
        time.sleep(1)
    raise RuntimeError(
        f"the migration did not finish within {timeout:.0f}s: {status.get('message')}"
    )


def summary(status: dict[str, Any]) -> list[str]:
    lines = [f"phase {status.get('phase')}: {status.get('message', '')}"]
    backup = status.get("backup")
    if backup:
        lines.append(f"backup   {backup['path']}")
        lines.append(
            f"         {backup['format']}, {backup['sizeBytes']:,} bytes, "
            f"sha256 {backup['sha256'][:16]}..., {backup['durationSeconds']}s, "
            f"{backup['restoreListEntries']} entries read back by pg_restore"
        )
    for version in (status.get("apply") or {}).get("versions", []):
        made = ", ".join(o["name"] for o in version.get("createdObjects", [])) or "nothing new"
        lines.append(
            f"applied  {version['version']:>3} {version['name']:<28} {version['status']:<8} "
            f"{version['mode']:<11} {version.get('durationSeconds') or 0:.2f}s  created: {made}"
        )
    verification = status.get("verification")
    if verification:
        verdict = "PASSED" if verification["passed"] else "FAILED"
        lines.append(f"verify   {verdict}: {verification.get('message', '')}")
        for index in verification.get("indexes", []):
            mark = "ok  " if index["passed"] else "FAIL"
            where = f"{index['name']} on {index['table']}"
            lines.append(f"         [{mark}] index {where}: valid={index.get('valid')}")
        for probe in verification.get("probes", []):
            mark = "ok  " if probe["passed"] else "FAIL"
            used = ", ".join(probe.get("usedIndexes", [])) or "no index"
            lines.append(f"         [{mark}] probe {probe['name']}: uses {used}")
    for cond in status.get("conditions", []):
        lines.append(f"condition {cond['type']}={cond['status']} ({cond['reason']})")
    return lines


def run(args: argparse.Namespace) -> int:
    bed = LocalTestbed()
    operator: subprocess.Popen[bytes] | None = None
    try:
        step(
            "starting the test bed: etcd, kube-apiserver, kube-controller-manager, PostgreSQL, "
            "local kubelet"
        )
        bed.start()
        print(f"    ready in {bed.timings.get('total', 0):.1f}s; KUBECONFIG={bed.kubeconfig}")
        step("loading the analytics data")
        url = create_database(bed.pg_admin_url, "ial_analytics")
        load_analytics(url, args.page_views)
        before = fingerprint(url)
        step(f"installing the CRDs ({CRD.relative_to(ROOT)} and MigrationRollback)")
        install_crd(bed.kubectl, CRD)
        step("starting the operator: dbmigrate operator")
        operator = start_operator(bed, bed.root / "operator.log")
        print(f"    log: {bed.root / 'operator.log'}")
        step(
            "creating Secret analytics-db, ConfigMap analytics-migrations and PVC "
            f"dbmigrate-backups in namespace {NAMESPACE}"
        )
        create_inputs(bed, url, NAMESPACE)
        status = apply_and_follow(bed, operator, NAMESPACE, args.timeout)
        held = status.get("phase") == "Succeeded" and run_emergency(
            bed, lambda *a, **k: kubectl(bed, *a, **k), step, NAMESPACE, url, before,
            args.timeout,
        )  # fmt: skip
        if args.keep:
            step(f"left running (Ctrl-C stops it): export KUBECONFIG={bed.kubeconfig}")
            signal.pause()
        return 0 if held else 1
    except KeyboardInterrupt:
        return 130
    finally:
        if operator is not None and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(timeout=15)
        bed.stop()


def sample_with_web() -> str:
    """The sample, its emergency rollback also scaling the application (Deployment web)."""
    import json

    import yaml

    sample = yaml.safe_load(SAMPLE.read_text())
    sample["spec"]["rollback"]["scaleDown"] = [{"kind": "Deployment", "name": "web"}]
    return json.dumps(sample)


def apply_and_follow(
    bed: Bed, operator: subprocess.Popen[bytes] | None, namespace: str, timeout: float
) -> dict[str, Any]:
    step("the application: Deployment web, 2 replicas")
    image = os.environ.get("DBMIGRATE_IMAGE") or LOCAL_WEB_IMAGE
    print("    " + kubectl(bed, "-n", namespace, "apply", "-f", "-", stdin=web_deployment(image)))
    step(f"applying {SAMPLE.relative_to(ROOT)} (spec.rollback.scaleDown: Deployment web)")
    print(
        "    " + kubectl(bed, "-n", namespace, "apply", "-f", "-", stdin=sample_with_web()).strip()
    )
    status = follow(bed, operator, namespace, timeout)
    step("kubectl get dbm")
    print(kubectl(bed, "-n", namespace, "get", "dbm", "-o", "wide"))
    step("summary")
    print("\n".join(summary(status)))
    return status


def step_pods(bed: Bed, namespace: str, output: str) -> str:
    selector = "dbmigrate.io/migration=analytics"
    return kubectl(bed, "-n", namespace, "get", "pods", "-l", selector, "-o", output)


def run_kind(args: argparse.Namespace) -> int:
    """The sample on the kind cluster, run by the operator the Helm chart installed there."""
    bed = ExternalTestbed.from_env()
    namespace = KIND_NAMESPACE
    step(f"kind cluster: KUBECONFIG={bed.kubeconfig}")
    print(kubectl(bed, "get", "nodes", "-o", "wide"))
    print(kubectl(bed, "-n", "dbmigrate-system", "get", "deployment,pods"))
    step("loading the analytics data into the cluster's PostgreSQL (StatefulSet postgres)")
    drop_database(bed.pg_admin_url, "ial_analytics")
    url = create_database(bed.pg_admin_url, "ial_analytics")
    load_analytics(url, args.page_views)
    before = fingerprint(url)
    step(
        "creating Secret analytics-db (the database by its Service's DNS name), ConfigMap "
        f"analytics-migrations and PVC dbmigrate-backups in namespace {namespace}"
    )
    clear_previous(bed, namespace)
    create_inputs(bed, bed.pod_url(url), namespace)
    status = apply_and_follow(bed, None, namespace, args.timeout)
    print("\n    step pods (image, node):")
    for _ in range(60):  # the run moves on when a step reports; its pod ends a moment later
        phases = step_pods(bed, namespace, "jsonpath={.items[*].status.phase}").split()
        if all(p in ("Succeeded", "Failed") for p in phases):
            break
        time.sleep(0.5)
    columns = "POD:.metadata.name,IMAGE:.spec.containers[0].image,NODE:.spec.nodeName,"
    print(step_pods(bed, namespace, f"custom-columns={columns}UID:.spec.securityContext.runAsUser"))
    if status.get("phase") != "Succeeded":
        return 1
    held = run_emergency(
        bed, lambda *a, **k: kubectl(bed, *a, **k), step, namespace, url, before, args.timeout,
    )  # fmt: skip
    return 0 if held else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed demo", description=__doc__)
    parser.add_argument(
        "--page-views", type=int, default=300_000, help="rows of page_views to load"
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for the migration"
    )
    parser.add_argument("--keep", action="store_true", help="leave the test bed running at the end")
    parser.add_argument(
        "--kind", action="store_true", help="run on the kind cluster of `make kind-up` instead"
    )
    args = parser.parse_args(argv)
    return run_kind(args) if args.kind else run(args)


if __name__ == "__main__":
    sys.exit(main())
