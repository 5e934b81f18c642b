"""What one started target costs the operator as the fleet grows: 100, 300 and 1,000 targets.

Running a thousand real migrations takes hours on two cores, so this measures the phase whose
cost could grow with the fleet: a rollout over N target Secrets whose first wave starts W real
targets (default 5) and whose next wave waits on ``pause: {}``, in a namespace that already holds
N finished DatabaseMigrations. Per size, in a namespace of its own, on the real test bed
(``testbed.bed.LocalTestbed``) with ``dbmigrate operator`` as a subprocess watching that
namespace at its production resync interval (30 s):

1. N Secrets labelled for the rollout: the first W point at real, empty databases; the others at
   databases that do not exist (the measured phase never reaches them: their wave waits);
2. N finished DatabaseMigrations: each a copy of one real DatabaseMigration's Succeeded status
   (run once at the start of the benchmark on a real database), with its database identity made
   that of another tenant (``status.database.database``), written by the benchmark as the
   operator under test would have left them: with the database label for the current tree,
   without it for ``--before``;
3. the operator is started and left to settle (it takes every resource in hand once); then the
   rollout is created and the phase measured
   until the rollout waits for its promote: the operator's API requests (the audit log, by user
   agent, as in ``bench.rollout_scale``), the bytes it read (``rchar`` of ``/proc/PID/io``: its
   API responses and watch streams), its CPU seconds and its RSS.

``--children-exist`` measures the other phase whose cost could grow: a rollout whose N children
all exist already (the end of every rollout, and a second template over the same fleet). The
benchmark creates the rollout and its N children as the operator would have left them, each
Succeeded (the model's status, as above), no separate finished migrations; once the operator has
settled (the rollout Complete), it gives the rollout a new template (a second ConfigMap with one
more file), and measures until the rollout waits for its promote: the first W children brought to
the new template and run, the other N - W waiting behind ``pause: {}``.

``--before DIR`` runs the operator from another source tree (``git archive COMMIT | tar -x -C
DIR``; its ``operator`` folder is put first on PYTHONPATH) for the same sizes, in namespaces of
their own, so both are measured on one test bed, one after the other per size.

    python3 -m bench.rollout_bounded --sizes 20 --started 2                   # smoke
    python3 -m bench.rollout_bounded --before /var/tmp/before                  # 100, 300, 1000
    python3 -m bench.rollout_bounded --children-exist --before /var/tmp/before
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.operator_watch import vm_kb
from bench.rollout_scale import FILES, ROLLOUTS, audit_counts
from dbmigrate import API_GROUP, API_VERSION
from dbmigrate.api.labels import LABEL_DATABASE
from dbmigrate.api.rollout import DatabaseMigrationRolloutSpec
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.decision.lock_scope import database_label
from dbmigrate.specs.rollout import build_child
from testbed.bed import LocalTestbed
from testbed.crd import install_crd
from testbed.postgres import create_database
from testbed.proc import teardown_on_sigterm
from tests.cluster.operator_harness import Cluster, OperatorProcess, kube_for, pod_url

REPO = Path(__file__).resolve().parents[1]
FILES_2 = {**FILES, "002_bench_more.sql": "CREATE TABLE IF NOT EXISTS bench_more (id bigint);\n"}
TEMPLATE = {
    "source": {"configMap": {"name": "fleet-files"}},
    "backup": {"enabled": False},
    "verification": {"analyze": False},
}


def proc_io(pid: int) -> dict[str, int]:
    """rchar/wchar of a process (bytes through read/write calls: its sockets included)."""
    found = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        found[key] = int(value)
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def finished_status(cluster: Cluster, url: str, args: Any) -> dict[str, Any]:
    """The status of one real DatabaseMigration run to Succeeded (the copies' model)."""
    cluster.secret("model-db", {"uri": url})
    spec = {**TEMPLATE, "database": {"secretRef": {"name": "model-db", "uriKey": "uri"}}}
    operator = OperatorProcess(
        args.kubeconfig, [cluster.ns], args.workdir / "operator-model.log",
        extra_args=("--resync-seconds", "30"),
    )  # fmt: skip
    operator.start()
    try:
        cluster.migration("model", spec)
        status = cluster.wait_terminal("model", timeout=300)
    finally:
        operator.stop()
    assert status["phase"] == "Succeeded", status.get("message")
    return status


def parallel(calls: list[Any], workers: int = 8) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def tenant_secrets(bed: LocalTestbed, cluster: Cluster, size: int, args: Any) -> None:
    """The namespace, the files and N target Secrets (the first W at real, empty databases)."""
    cluster.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.ns}})
    cluster.config_map("fleet-files", FILES)
    cluster.config_map("fleet-files-2", FILES_2)
    prefix = cluster.ns.replace("-", "_")
    calls = []
    for i in range(size):
        if i < args.started:
            url = pod_url(create_database(bed.pg_admin_url, f"{prefix}_{i:04d}"))
        else:
            url = f"postgresql://app:unused@127.0.0.1:1/{prefix}_{i:04d}"  # never reached
        secret = {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"tenant-{i:04d}", "labels": {"bench": "fleet"}},
            "stringData": {"uri": url},
        }  # fmt: skip
        calls.append(lambda s=secret: cluster.create(s))
    parallel(calls)


def finished_copy(model: dict[str, Any], database: str, labelled: bool) -> tuple[Any, Any]:
    """The model's Succeeded status for another database, and the labels an operator that has
    the database label leaves (``labelled``)."""
    status = copy.deepcopy(model)
    status["database"]["database"] = database
    labels: dict[str, str] = {}
    if labelled:  # as the operator that ran them would have left them
        parsed = DatabaseMigrationStatus.model_validate(status)
        labels[LABEL_DATABASE] = database_label(parsed)
    return status, labels


def setup(
    bed: LocalTestbed,
    cluster: Cluster,
    size: int,
    model: dict[str, Any],
    args: Any,
    *,
    labelled: bool,
) -> None:
    """N target Secrets (W real databases) and N finished DatabaseMigrations (``labelled``: with
    the database label, as an operator that has it leaves them)."""
    tenant_secrets(bed, cluster, size, args)
    prefix = cluster.ns.replace("-", "_")

    def finished(i: int) -> None:
        name = f"done-{i:04d}"
        spec = {**TEMPLATE, "database": {"secretRef": {"name": f"tenant-{i:04d}", "uriKey": "uri"}}}
        status, labels = finished_copy(model, f"{prefix}_done_{i:04d}", labelled)
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "DatabaseMigration",
            "metadata": {"name": name, "labels": labels}, "spec": spec,
        }  # fmt: skip
        cluster.create(body)
        cluster.kube.patch_status(cluster.ns, name, status)

    parallel([lambda i=i: finished(i) for i in range(size)])


def setup_children(
    bed: LocalTestbed, cluster: Cluster, size: int, model: dict[str, Any], args: Any
) -> None:
    """N target Secrets, the rollout, and its N children as an operator leaves them: Succeeded,
    with the database label (W in wave ``first``, the others in ``rest``)."""
    tenant_secrets(bed, cluster, size, args)
    created = cluster.rollout("fleet", rollout_spec(args.started))
    spec = DatabaseMigrationRolloutSpec.model_validate(created["spec"])
    uid = created["metadata"]["uid"]
    prefix = cluster.ns.replace("-", "_")

    def child(i: int) -> None:
        wave = "first" if i < args.started else "rest"
        body = build_child("fleet", cluster.ns, uid, f"tenant-{i:04d}", wave, spec)
        status, labels = finished_copy(model, f"{prefix}_{i:04d}", labelled=True)
        body["metadata"]["labels"].update(labels)
        cluster.create(body)
        cluster.kube.patch_status(cluster.ns, body["metadata"]["name"], status)

    parallel([lambda i=i: child(i) for i in range(size)])


def settle(operator: OperatorProcess, audit: Path, quiet: float, limit: float) -> float:
    """Wait until the operator has made no request for ``quiet`` seconds; the time it took."""
    began = time.monotonic()
    offset, last_change = audit.stat().st_size, time.monotonic()
    while time.monotonic() - began < limit:
        time.sleep(1)
        operator.assert_alive()
        size = audit.stat().st_size
        counts = audit_counts(audit, offset, size)
        offset = size
        if counts["operator"] + counts["kopf"]:
            last_change = time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            break
    return time.monotonic() - began


def rollout_spec(started: int) -> dict[str, Any]:
    """The rollout: a first wave of ``started`` targets, then a wave behind ``pause: {}``."""
    return {
        "template": TEMPLATE,
        "targets": {"selector": {"bench": "fleet"}, "uriKey": "uri"},
        "waves": [
            {"name": "first", "count": started, "maxParallel": started, "pause": {}},
            {"name": "rest", "maxParallel": 25},
        ],
    }


def start(cluster: Cluster, args: Any) -> None:
    """Start the measured phase: create the rollout, or give the existing one a new template."""
    if not args.children_exist:
        cluster.rollout("fleet", rollout_spec(args.started))
        return
    patch = {"spec": {"template": {"source": {"configMap": {"name": "fleet-files-2"}}}}}
    cluster.kube.request(
        "PATCH", ROLLOUTS.format(ns=cluster.ns) + "/fleet", patch,
        content_type="application/merge-patch+json",
    )  # fmt: skip


def measure(
    bed: LocalTestbed, size: int, mode: str, model: dict[str, Any], args: Any
) -> dict[str, Any]:
    ns = f"bounded-{mode}-{size}-{secrets.token_hex(2)}"
    cluster = Cluster(kube_for(bed.kubeconfig), ns)
    if args.children_exist:
        setup_children(bed, cluster, size, model, args)
    else:
        labelled = mode == "after" or args.before_has_label
        setup(bed, cluster, size, model, args, labelled=labelled)
    env = {"PYTHONPATH": str(args.before / "operator")} if mode == "before" else {}
    operator = OperatorProcess(
        args.kubeconfig, [ns], args.workdir / f"operator-{mode}-{size}.log",
        extra_args=("--resync-seconds", "30"), extra_env=env,
    )  # fmt: skip
    audit = Path(os.environ["DBMIGRATE_TESTBED_AUDIT_LOG"])
    settle_offset = audit.stat().st_size
    operator.start()
    try:
        pid = operator.proc.pid if operator.proc else 0
        settled = settle(operator, audit, args.quiet, args.settle_limit)
        before_start = cluster.rollout_status("fleet") if args.children_exist else {}
        start_offset = audit.stat().st_size
        io0, cpu0, rss0 = proc_io(pid), cpu_seconds(pid), vm_kb(pid, "VmRSS")
        began = time.monotonic()
        start(cluster, args)
        status: dict[str, Any] = {}
        while time.monotonic() - began < args.timeout:
            operator.assert_alive()
            status = cluster.rollout_status("fleet")
            if status.get("phase") in ("Paused", "Stopped") and (
                status.get("templateHash") != before_start.get("templateHash")
            ):
                break
            time.sleep(1)
        wall = time.monotonic() - began
        time.sleep(1)
        end_offset = audit.stat().st_size
        io1, cpu1 = proc_io(pid), cpu_seconds(pid)
        peak, rss = vm_kb(pid, "VmHWM"), vm_kb(pid, "VmRSS")
    finally:
        operator.stop()
    counts = audit_counts(audit, start_offset, end_offset)
    boot = audit_counts(audit, settle_offset, start_offset)
    started = args.started
    reconciles = (
        counts["operator get databasemigrations"] + counts["operator get databasemigrationrollouts"]
    )
    read = io1["rchar"] - io0["rchar"]
    result = {
        "scenario": "children exist" if args.children_exist else "first rollout",
        "phase_before": before_start.get("phase"),
        "mode": mode,
        "targets": size,
        "finished_migrations": size,
        "started": started,
        "phase": status.get("phase"),
        "totals": status.get("totals"),
        "settle_seconds": round(settled, 1),
        "settle_operator_requests": boot["operator"] + boot["kopf"],
        "wall_seconds": round(wall, 1),
        "operator_requests": counts["operator"],
        "kopf_requests": counts["kopf"],
        "reconciles": reconciles,
        "requests_per_reconcile": round(counts["operator"] / max(reconciles, 1), 2),
        "requests_per_started_target": round((counts["operator"] + counts["kopf"]) / started, 1),
        "kb_read_per_started_target": round(read / started / 1024, 1),
        "kb_read_per_reconcile": round(read / max(reconciles, 1) / 1024, 1),
        "cpu_seconds_per_started_target": round((cpu1 - cpu0) / started, 3),
        "rss_mb_before_after_peak": [round(rss0 / 1024, 1), round(rss / 1024, 1),
                                     round(peak / 1024, 1)],
        "top_operator_requests": dict(
            sorted(
                ((k, v) for k, v in counts.items() if k.startswith("operator ")),
                key=lambda kv: -kv[1],
            )[:8]
        ),
    }  # fmt: skip
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--started", type=int, default=5, help="targets of the first wave")
    parser.add_argument("--before", type=Path, help="another source tree to compare with")
    parser.add_argument(
        "--before-has-label", action="store_true",
        help="the --before tree labels migrations by database too: set up its migrations so",
    )  # fmt: skip
    parser.add_argument(
        "--children-exist", action="store_true",
        help="the rollout's N children exist; measure a new template over them",
    )  # fmt: skip
    parser.add_argument("--quiet", type=float, default=8.0, help="settled: no request for s")
    parser.add_argument("--settle-limit", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    name = "rollout_bounded_children" if args.children_exist else "rollout_bounded"
    args.output = args.output or REPO / "bench" / f"{name}.json"
    teardown_on_sigterm()
    args.workdir = Path(tempfile.mkdtemp(prefix="bench-bounded-"))
    os.environ.setdefault("DBMIGRATE_TESTBED_AUDIT_LOG", str(args.workdir / "audit.log"))
    bed = LocalTestbed()
    bed.start()
    args.kubeconfig = Path(bed.kubeconfig)
    results = []
    try:
        install_crd(bed.kubectl)
        model_ns = Cluster(kube_for(bed.kubeconfig), f"bounded-model-{secrets.token_hex(2)}")
        model_ns.kube.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": model_ns.ns}}
        )
        model_ns.config_map("fleet-files", FILES)
        model_url = pod_url(create_database(bed.pg_admin_url, "bounded_model"))
        model = finished_status(model_ns, model_url, args)
        modes = ["before", "after"] if args.before else ["after"]
        for size in args.sizes:
            for mode in modes:
                results.append(measure(bed, size, mode, model, args))
                args.output.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        bed.stop()
    print(f"wrote {args.output}; operator logs in {args.workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
