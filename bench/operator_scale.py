"""Operator benchmark of issue 5: step latency, and many resources driven to a terminal state.

Runs on the real test bed (``testbed.bed.LocalTestbed``: etcd, kube-apiserver,
kube-controller-manager, PostgreSQL and the local kubelet), with ``dbmigrate operator`` as a
subprocess started by the e2e tests' own helpers (``tests/cluster/operator_harness.py``).

(a) latency: N resources (default 100), each with backup enabled and a one-file migration set
    (one pending CREATE TABLE), created one every ``--interval`` seconds. A watch on the Jobs
    timestamps (local monotonic clock, not the API's whole-second timestamps):
      apply -> plan Job created      (create call returned -> plan Job's first watch event)
      plan step ended -> backup Job  (the plan step's own exit report, status.stepExit, seen on a
                                      watch of the resources -> backup Job's first event: the
                                      operator's own reaction time)
      plan step ended -> plan Job Complete  (how much later the Job controller marks the Job)
      apply -> backup Job created    (the whole path, the plan Job's run included)
    Once its backup Job exists a resource is deleted, so the apply and verify steps do not load
    the machine (``--keep`` lets them run).
(b) scale: N resources (default 500) over M namespaces (default 50) with a no-op migration set
    (its one version already applied, so the plan finds nothing pending and the run ends
    Succeeded/NothingToApply). At most ``--max-in-flight`` resources are unfinished at a time:
    the local kubelet runs each plan Job as a host Python process with no cap of its own.
    Reports errors (Failed or never terminal), total time and the operator's peak RSS (VmHWM).

    python3 -m bench.operator_scale --latency 10 --resources 50 --namespaces 5   # smoke
    python3 -m bench.operator_scale                                              # full sizes
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client as k8s
from psycopg import sql

from bench.operator_watch import JobWatch, StepExitWatch, summary, vm_kb
from dbmigrate import API_GROUP, API_VERSION, PLURAL
from testbed.bed import LocalTestbed
from testbed.crd import install_crd
from testbed.postgres import create_database, replace_dbname
from testbed.proc import teardown_on_sigterm
from tests.cluster.operator_harness import (
    TERMINAL,
    Cluster,
    OperatorProcess,
    kube_for,
    sample_spec,
)

REPO = Path(__file__).resolve().parents[1]
ONE_FILE = {"001_bench_table.sql": "CREATE TABLE bench_table (id bigint PRIMARY KEY);\n"}


# --- observation ---------------------------------------------------------------------------


def all_resources(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.kube.request("GET", f"/apis/{API_GROUP}/{API_VERSION}/{PLURAL}").get("items", [])


def new_namespace(api: k8s.ApiClient, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": name}}, _preload_content=False)  # type: ignore[arg-type]
    return name


def clone_database(admin_url: str, template: str, name: str) -> str:
    """A copy of database ``template`` (CREATE DATABASE ... TEMPLATE: fast, no connections)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        conn.execute(query.format(sql.Identifier(name), sql.Identifier(template)))
    return replace_dbname(admin_url, name)


# --- (a) latency ---------------------------------------------------------------------------


def run_latency(
    bed: LocalTestbed,
    api: k8s.ApiClient,
    jobs: JobWatch,
    exits: StepExitWatch,
    count: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    ns = new_namespace(api, "bench-lat")
    cluster = Cluster(kube_for(bed.kubeconfig), ns)
    # One database per resource (the plan and apply steps hold a per-database lock), cloned from
    # a template holding one small table (pg_dump of an empty database gives an empty archive).
    template = f"bench_lat_tpl_{secrets.token_hex(3)}"
    with psycopg.connect(create_database(bed.pg_admin_url, template), autocommit=True) as conn:
        conn.execute("CREATE TABLE app_data (id int PRIMARY KEY); INSERT INTO app_data VALUES (1)")
    cluster.config_map("analytics-migrations", ONE_FILE)
    cluster.pvc("dbmigrate-backups")
    specs: dict[str, dict[str, Any]] = {}
    for i in range(count):
        name = f"lat-{i:04d}"
        url = clone_database(bed.pg_admin_url, template, f"{template}_{i}")
        cluster.secret(f"db-{name}", {"uri": url})
        database = {"secretRef": {"name": f"db-{name}", "uriKey": "uri"}}
        specs[name] = sample_spec(verification={"analyze": True}, database=database)
    operator = OperatorProcess(bed.kubeconfig, [ns], args.workdir / "operator-latency.log")
    operator.start()
    time.sleep(args.warmup)  # the operator's start-up is not the latency being measured
    created: dict[str, float] = {}
    pending: set[str] = set()
    errors: list[str] = []
    began = time.monotonic()
    deadline_after_last = args.timeout

    def sweep() -> None:
        for name in list(pending):
            if jobs.get("created", (ns, name, "backup")) is not None:
                pending.discard(name)
                if not args.keep:
                    cluster.delete(name)

    try:
        for i in range(count):
            name = f"lat-{i:04d}"
            cluster.migration(name, specs[name])
            created[name] = time.monotonic()
            pending.add(name)
            next_at = began + (i + 1) * args.interval
            while time.monotonic() < next_at:
                sweep()
                time.sleep(0.05)
        deadline = time.monotonic() + deadline_after_last
        while pending and time.monotonic() < deadline:
            sweep()
            time.sleep(0.2)
        for name in sorted(pending):
            status = cluster.status(name)
            errors.append(f"{name}: no backup Job; phase {status.get('phase')}")
        peak_kb = vm_kb(operator.proc.pid, "VmHWM") if operator.proc else 0
    finally:
        operator.stop()
    to_plan, plan_to_backup, exit_to_complete, to_backup = [], [], [], []
    for name, t0 in created.items():
        plan_c = jobs.get("created", (ns, name, "plan"))
        plan_d = jobs.get("done", (ns, name, "plan"))
        plan_e = exits.get((ns, name, "plan"))
        backup_c = jobs.get("created", (ns, name, "backup"))
        if plan_c is not None:
            to_plan.append(plan_c - t0)
        if plan_e is not None and backup_c is not None:
            plan_to_backup.append(backup_c - plan_e)
        if plan_e is not None and plan_d is not None:
            exit_to_complete.append(plan_d - plan_e)
        if backup_c is not None:
            to_backup.append(backup_c - t0)
    return {
        "resources": count,
        "interval_s": args.interval,
        "apply_to_plan_job_s": summary(to_plan),
        "plan_step_ended_to_backup_job_s": summary(plan_to_backup),
        "plan_step_ended_to_plan_job_complete_s": summary(exit_to_complete),
        "apply_to_backup_job_s": summary(to_backup),
        "errors": errors,
        "operator_peak_rss_mb": round(peak_kb / 1024, 1),
    }


# --- (b) scale -----------------------------------------------------------------------------


def seed_noop_database(bed: LocalTestbed, workdir: Path) -> str:
    """A database whose history already holds the one version of ONE_FILE."""
    url = create_database(bed.pg_admin_url, f"bench_noop_{secrets.token_hex(3)}")
    folder = workdir / "noop-migrations"
    folder.mkdir(exist_ok=True)
    for name, text in ONE_FILE.items():
        (folder / name).write_text(text)
    argv = [sys.executable, "-m", "dbmigrate.cli.main", "apply", "--database-url", url]
    argv += ["--migrations", str(folder), "--run-id", "bench-seed"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed: {done.stderr.strip()}")
    return url


def run_scale(
    bed: LocalTestbed, api: k8s.ApiClient, count: int, namespaces: int, args: argparse.Namespace
) -> dict[str, Any]:
    template = seed_noop_database(bed, args.workdir).rsplit("/", 1)[1]
    kube = kube_for(bed.kubeconfig)
    clusters = [Cluster(kube, new_namespace(api, "bench-scale")) for _ in range(namespaces)]
    for i, cluster in enumerate(clusters):  # a database per namespace, as per application
        url = clone_database(bed.pg_admin_url, template, f"{template}_{i}")
        cluster.secret("analytics-db", {"uri": url})
        cluster.config_map("analytics-migrations", ONE_FILE)
    spec = sample_spec(verification={"analyze": True}, backup={"enabled": False})
    watched = [c.ns for c in clusters] if args.watch == "namespaces" else []
    operator = OperatorProcess(bed.kubeconfig, watched, args.workdir / "operator-scale.log")
    operator.start()
    time.sleep(args.warmup)
    pid = operator.proc.pid if operator.proc else 0
    order = [(clusters[i % namespaces], f"noop-{i:04d}") for i in range(count)]
    outcome: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, name) -> (phase, reason)
    create_errors: list[str] = []
    started = 0
    rss_max_kb = 0
    began = time.monotonic()
    deadline = began + args.timeout
    try:
        while len(outcome) + len(create_errors) < count and time.monotonic() < deadline:
            for item in all_resources(clusters[0]):
                meta, status = item["metadata"], item.get("status") or {}
                if status.get("phase") in TERMINAL:
                    key = (meta["namespace"], meta["name"])
                    outcome.setdefault(key, (status["phase"], _reason(status)))
            in_flight = started - len(outcome) - len(create_errors)
            while started < count and in_flight < args.max_in_flight:
                cluster, name = order[started]
                try:
                    cluster.migration(name, spec)
                except Exception as exc:
                    create_errors.append(f"{cluster.ns}/{name}: create failed: {exc}")
                started += 1
                in_flight += 1
            rss_max_kb = max(rss_max_kb, vm_kb(pid, "VmRSS"))
            if operator.proc and operator.proc.poll() is not None:
                raise RuntimeError(f"the operator exited:\n{operator.log()[-3000:]}")
            time.sleep(1.0)
        total = time.monotonic() - began
        peak_kb = vm_kb(pid, "VmHWM")
    finally:
        operator.stop()
    phases: dict[str, int] = {}
    for phase, reason in outcome.values():
        phases[f"{phase}/{reason}"] = phases.get(f"{phase}/{reason}", 0) + 1
    failed = [f"{ns}/{n}: {p}/{r}" for (ns, n), (p, r) in outcome.items() if p != "Succeeded"]
    never = count - len(outcome) - len(create_errors)
    log = operator.log()
    return {
        "resources": count,
        "namespaces": namespaces,
        "watch": args.watch,
        "max_in_flight": args.max_in_flight,
        "total_s": round(total, 1),
        "per_resource_s": round(total / count, 3),
        "terminal": phases,
        "errors": len(failed) + len(create_errors) + never,
        "error_samples": (failed + create_errors)[:10],
        "never_terminal": never,
        "operator_log_tracebacks": log.count("Traceback"),
        "operator_peak_rss_mb": round(peak_kb / 1024, 1),
        "operator_max_sampled_rss_mb": round(rss_max_kb / 1024, 1),
    }


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=int, default=100, help="resources of (a); 0 skips it")
    parser.add_argument("--resources", type=int, default=500, help="resources of (b); 0 skips")
    parser.add_argument("--namespaces", type=int, default=50, help="namespaces of (b)")
    parser.add_argument("--interval", type=float, default=1.0, help="(a): seconds between creates")
    parser.add_argument(
        "--watch",
        choices=("cluster", "namespaces"),
        default="cluster",
        help="(b): the operator watches the whole cluster (the chart's default) or, as with "
        "watchNamespaces, each of the namespaces (two watch streams per namespace)",
    )
    parser.add_argument("--max-in-flight", type=int, default=20, help="(b): unfinished at once")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after operator start")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per part, at most")
    parser.add_argument("--keep", action="store_true", help="(a): do not delete after backup Job")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    args.workdir = Path(tempfile.mkdtemp(prefix="dbmigrate-opbench-"))
    results: dict[str, Any] = {"machine": {"cpus": _cpus(), "loadavg_start": _loadavg()}}
    teardown_on_sigterm()  # SIGTERM stops the test bed instead of orphaning it
    bed = LocalTestbed()
    t0 = time.monotonic()
    bed.start()
    results["machine"]["testbed_start_s"] = round(time.monotonic() - t0, 1)
    api = bed.api_client()
    jobs, exits = JobWatch(api), StepExitWatch(api)
    try:
        install_crd(bed.kubectl)
        jobs.start()
        exits.start()
        if args.latency:
            results["latency"] = run_latency(bed, api, jobs, exits, args.latency, args)
            print(json.dumps(results["latency"], indent=2), flush=True)
        if args.resources:
            results["scale"] = run_scale(bed, api, args.resources, args.namespaces, args)
            print(json.dumps(results["scale"], indent=2), flush=True)
    finally:
        jobs.stop()
        exits.stop()
        results["machine"]["loadavg_end"] = _loadavg()
        bed.stop()
    print(json.dumps(results, indent=2))
    print(f"operator logs in {args.workdir}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _reason(status: dict[str, Any]) -> str:
    """The reason of the Ready condition (the run's outcome, e.g. NothingToApply)."""
    found = {c.get("type"): c.get("reason") or "" for c in status.get("conditions") or []}
    return found.get("Ready") or next((r for r in found.values() if r), "")


def _cpus() -> int:
    return os.cpu_count() or 0


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
