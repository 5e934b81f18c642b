"""``kubectl dbmigrate tree NAME`` and ``get [NAME] [-w]``: resource -> Jobs -> pods.

Argo Rollouts' ``get rollout -w`` shows a rollout as a tree of what it made; this is the same for
a migration: each step Job with its step, run, generation and attempt, and under it its pods
with their state. ``get`` without a name draws every migration of the namespace. ``-w`` redraws
until every migration shown has ended its run, waits for a person, or is paused.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from dbmigrate.api.exitcodes import EXIT_OK, EXIT_UNAVAILABLE
from dbmigrate.kubectl.client import MIGRATIONS, Client
from dbmigrate.kubectl.main import connect, seconds, subcommand
from dbmigrate.kubectl.objects import Snapshot, meta, pod_state, read_jobs
from dbmigrate.kubectl.screens import age, paused, settled
from dbmigrate.kubectl.terminal import watch

EXAMPLES_TREE = """  kubectl dbmigrate tree analytics -n shop
  kubectl dbmigrate tree analytics -w"""
EXAMPLES_GET = """  kubectl dbmigrate get -n shop              # every migration, each as a tree
  kubectl dbmigrate get analytics -w         # follow one until it ends or waits for you"""


def tree_lines(snap: Snapshot, now: datetime | None = None) -> list[str]:
    """The migration as a tree of its Jobs and their pods (pure)."""
    now = now or datetime.now(UTC)
    status = snap.status
    head = (
        f"DatabaseMigration {snap.namespace}/{snap.name}  {status.get('phase') or 'Pending'}"
        f"{' (paused)' if paused(snap) else ''}  run {status.get('runId') or '-'}  "
        f"generation {meta(snap.migration).get('generation')}"
    )
    lines = [head]
    for i, job in enumerate(snap.jobs):
        last_job = i == len(snap.jobs) - 1
        attempt = f" attempt {job.attempt}" if job.attempt > 1 else ""
        lines.append(
            f"{'└──' if last_job else '├──'} Job {job.name}  step {job.step}{attempt}  "
            f"{job.state}  run {job.run_id}  "
            f"{age(meta(job.job).get('creationTimestamp'), now)}"
        )
        for k, pod in enumerate(job.pods):
            stem = "    " if last_job else "│   "
            branch = "└──" if k == len(job.pods) - 1 else "├──"
            lines.append(
                f"{stem}{branch} Pod {meta(pod).get('name')}  {pod_state(pod)}  "
                f"{age(meta(pod).get('creationTimestamp'), now)}"
            )
    if not snap.jobs:
        lines.append("└── (no step Jobs yet)")
    return lines


def _all(kube: Client) -> list[Snapshot]:
    snaps = []
    for migration in sorted(kube.items(MIGRATIONS), key=lambda m: str(meta(m).get("name"))):
        jobs = read_jobs(kube, str(meta(migration).get("name")))
        snaps.append(Snapshot(migration, jobs, []))
    return snaps


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    for name, summary, examples, optional in (
        ("tree", "the migration, its step Jobs and their pods, as a tree", EXAMPLES_TREE, False),
        ("get", "every migration of the namespace (or one) as a tree", EXAMPLES_GET, True),
    ):
        parser = subcommand(subparsers, common, name, summary, examples)
        parser.add_argument(
            "name", metavar="NAME", nargs="?" if optional else None, help="the DatabaseMigration"
        )
        parser.add_argument("-w", "--watch", action="store_true", help="redraw as runs move")
        parser.add_argument("--interval", type=seconds, default=2.0, metavar="DURATION")
        parser.add_argument("--timeout", type=seconds, default=None, metavar="DURATION")
        parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)

    def draw() -> tuple[list[str], bool]:
        if args.name:
            migration = kube.must_get(MIGRATIONS, args.name)
            snaps = [Snapshot(migration, read_jobs(kube, args.name), [])]
        else:
            snaps = _all(kube)
        if not snaps:
            return [f"no DatabaseMigrations in namespace {kube.namespace}"], True
        lines: list[str] = []
        for snap in snaps:
            lines += [*tree_lines(snap), ""]
        return lines[:-1], all(settled(s) for s in snaps)

    try:
        if not args.watch:
            sys.stdout.write("\n".join(draw()[0]) + "\n")
            return EXIT_OK
        done = watch(draw, interval=args.interval, timeout=args.timeout)
        return EXIT_OK if done else EXIT_UNAVAILABLE
    finally:
        kube.close()
