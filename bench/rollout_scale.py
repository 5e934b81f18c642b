"""Fleet rollout benchmark: one DatabaseMigrationRollout over N target databases (default 200).

Runs on the real test bed (``testbed.bed.LocalTestbed``: etcd, kube-apiserver,
kube-controller-manager, PostgreSQL and the local kubelet, which runs every step Job's pod as a
host process), with ``dbmigrate operator`` as a subprocess (``tests/cluster/operator_harness.py``)
at its production resync interval (30 s). Each target is one empty database and one Secret
labelled for the rollout; the template is one small CREATE TABLE, no backup, no ANALYZE, so a
target is its three step Jobs (plan, apply, verify). Three waves without pauses (10 %, 40 % of the
rest, the rest), each at ``maxParallel`` P; one run per P (default 10 and 25).

Measured per run:
- wall time: the rollout created -> its phase Completed (every target Succeeded);
- the operator's peak RSS (VmHWM of its process) and its RSS at the end;
- the operator's API requests: the API server's audit log (level Metadata, enabled by env
  DBMIGRATE_TESTBED_AUDIT_LOG) counted by user agent (``dbmigrate-operator/...``: the reconciles'
  client; ``kopf/...``: Kopf's watches and its own patches), per target;
- from one wave's end (its last child's ``status.finishedAt``) to the next wave's first Job
  (its ``creationTimestamp``): both API timestamps, whole seconds.

    python3 -m bench.rollout_scale --targets 20 --max-parallel 5     # smoke
    python3 -m bench.rollout_scale                                    # 200 targets, P=10 and 25
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from bench.operator_watch import vm_kb
from dbmigrate import API_GROUP, API_VERSION
from dbmigrate.api.labels import LABEL_MIGRATION, LABEL_WAVE
from dbmigrate.specs.naming import label_value
from testbed.bed import LocalTestbed
from testbed.crd import install_crd
from testbed.postgres import create_database
from testbed.proc import teardown_on_sigterm
from tests.cluster.operator_harness import Cluster, OperatorProcess, kube_for

REPO = Path(__file__).resolve().parents[1]
FILES = {"001_bench_table.sql": "CREATE TABLE IF NOT EXISTS bench_table (id bigint PRIMARY KEY);\n"}
ROLLOUTS = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{{ns}}/databasemigrationrollouts"
OPERATOR_AGENTS = ("dbmigrate-operator/", "kopf/")


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def audit_counts(path: Path, start: int, end: int) -> Counter[str]:
    """Requests in the audit log between two byte offsets, by client (operator, kopf, other)."""
    counts: Counter[str] = Counter()
    with path.open("rb") as log:
        log.seek(start)
        for line in log.read(end - start).splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            agent = str(event.get("userAgent") or "")
            if agent.startswith("dbmigrate-operator/"):
                counts["operator"] += 1
                resource = (event.get("objectRef") or {}).get("resource", "?")
                counts[f"operator {event.get('verb')} {resource}"] += 1
            elif agent.startswith("kopf/"):
                counts["kopf"] += 1
            else:
                counts["other"] += 1
    return counts


def wave_gaps(cluster: Cluster, rollout: str, waves: list[str]) -> list[float]:
    """Seconds from each wave's last child finishing to the next wave's first Job."""
    children = cluster.kube.list("DatabaseMigration", cluster.ns, f"dbmigrate.io/rollout={rollout}")
    jobs = cluster.kube.list("Job", cluster.ns)
    wave_of = {
        label_value(c["metadata"]["name"]): c["metadata"]["labels"][LABEL_WAVE] for c in children
    }
    ends: dict[str, datetime] = {}
    for child in children:
        wave, done = child["metadata"]["labels"][LABEL_WAVE], child["status"].get("finishedAt")
        if done and (wave not in ends or stamp(done) > ends[wave]):
            ends[wave] = stamp(done)
    firsts: dict[str, datetime] = {}
    for job in jobs:
        wave = wave_of.get(job["metadata"]["labels"].get(LABEL_MIGRATION, ""))
        created = stamp(job["metadata"]["creationTimestamp"])
        if wave is not None and (wave not in firsts or created < firsts[wave]):
            firsts[wave] = created
    return [
        (firsts[after] - ends[before]).total_seconds()
        for before, after in itertools.pairwise(waves)
        if before in ends and after in firsts
    ]


def run(
    bed: LocalTestbed, api: k8s.ApiClient, targets: int, parallel: int, args: Any
) -> dict[str, Any]:
    ns = f"bench-fleet-{parallel}-{secrets.token_hex(2)}"
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": ns}}, _preload_content=False)  # type: ignore[arg-type]
    cluster = Cluster(kube_for(bed.kubeconfig), ns)
    cluster.config_map("fleet-files", FILES)
    prefix = f"fleet{parallel}_{secrets.token_hex(2)}"
    for i in range(targets):
        url = create_database(bed.pg_admin_url, f"{prefix}_{i:04d}")
        cluster.create({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"tenant-{i:04d}", "labels": {"bench": "fleet"}},
            "stringData": {"uri": url},
        })  # fmt: skip
    operator = OperatorProcess(
        bed.kubeconfig, [ns], args.workdir / f"operator-{parallel}.log",
        extra_args=("--resync-seconds", "30"),
    )  # fmt: skip
    operator.start()
    time.sleep(args.warmup)
    waves = ["first", "second", "rest"]
    spec = {
        "template": {
            "source": {"configMap": {"name": "fleet-files"}},
            "backup": {"enabled": False},
            "verification": {"analyze": False},
        },
        "targets": {"selector": {"bench": "fleet"}, "uriKey": "uri"},
        "waves": [
            {"name": "first", "percent": 10, "maxParallel": parallel},
            {"name": "second", "percent": 40, "maxParallel": parallel},
            {"name": "rest", "maxParallel": parallel},
        ],
    }
    audit = Path(os.environ["DBMIGRATE_TESTBED_AUDIT_LOG"])
    start_offset = audit.stat().st_size
    began = time.monotonic()
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "DatabaseMigrationRollout",
        "metadata": {"name": "fleet", "namespace": ns}, "spec": spec,
    }  # fmt: skip
    cluster.kube.request("POST", ROLLOUTS.format(ns=ns), body)
    status: dict[str, Any] = {}
    try:
        while time.monotonic() - began < args.timeout:
            operator.assert_alive()
            found = cluster.kube.request("GET", ROLLOUTS.format(ns=ns) + "/fleet")
            status = found.get("status") or {}
            if status.get("phase") in ("Completed", "Stopped"):
                break
            time.sleep(2)
        wall = time.monotonic() - began
        time.sleep(1)
        end_offset = audit.stat().st_size
        pid = operator.proc.pid if operator.proc else 0
        peak, rss = vm_kb(pid, "VmHWM"), vm_kb(pid, "VmRSS")
    finally:
        operator.stop()
    counts = audit_counts(audit, start_offset, end_offset)
    gaps = wave_gaps(cluster, "fleet", waves)
    result = {
        "targets": targets,
        "max_parallel": parallel,
        "phase": status.get("phase"),
        "totals": status.get("totals"),
        "wall_seconds": round(wall, 1),
        "operator_peak_rss_mb": round(peak / 1024, 1),
        "operator_rss_end_mb": round(rss / 1024, 1),
        "operator_requests": counts["operator"],
        "kopf_requests": counts["kopf"],
        "operator_requests_per_target": round(counts["operator"] / targets, 1),
        "all_operator_requests_per_target": round(
            (counts["operator"] + counts["kopf"]) / targets, 1
        ),
        "other_clients_requests": counts["other"],
        "top_operator_requests": dict(
            sorted(
                ((k, v) for k, v in counts.items() if k.startswith("operator ")),
                key=lambda kv: -kv[1],
            )[:8]
        ),
        "wave_end_to_next_first_job_seconds": gaps,
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--max-parallel", type=int, nargs="+", default=[10, 25])
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "rollout_scale.json")
    args = parser.parse_args()
    teardown_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    args.workdir = workdir
    os.environ.setdefault("DBMIGRATE_TESTBED_AUDIT_LOG", str(workdir / "audit.log"))
    bed = LocalTestbed()
    bed.start()
    results = []
    try:
        install_crd(bed.kubectl)
        api = bed.api_client()
        for parallel in args.max_parallel:
            results.append(run(bed, api, args.targets, parallel, args))
    finally:
        bed.stop()
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.output}; operator logs in {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
