"""``kubectl dbmigrate logs NAME [--step STEP] [-f]``: the step pods' logs, in run order.

Each pod's log comes under a header naming its step, Job, run and attempt, so a retried step's
pods read in the order they ran. ``-f`` follows the pod that is running and then the next
step's pods as the operator starts them, until the run ends, waits for a person, or is paused.
A log the API server cannot give (the pod is gone, the node does not serve logs) is named on
stderr and the command exits 1 after printing the others.
"""

from __future__ import annotations

import argparse
import sys
import time

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import STEPS
from dbmigrate.kubectl.client import Client, PluginError
from dbmigrate.kubectl.main import connect, subcommand
from dbmigrate.kubectl.objects import (
    ROLLBACK_CHECK,
    Snapshot,
    StepJob,
    meta,
    snapshot,
    status_of,
)
from dbmigrate.kubectl.screens import settled
from dbmigrate.specs.jobs import CONTAINER

EXAMPLES = """  kubectl dbmigrate logs analytics -n shop            # every step, in run order
  kubectl dbmigrate logs analytics --step apply -f    # follow the apply, then what comes next"""


def header(job: StepJob, pod: str) -> str:
    attempt = f", attempt {job.attempt}" if job.attempt > 1 else ""
    return f"==> step {job.step}: pod {pod} (job {job.name}, run {job.run_id}{attempt}) <=="


def _finished(pod: dict[str, object]) -> bool:
    return status_of(pod).get("phase") in ("Succeeded", "Failed")


def _print_pod(kube: Client, job: StepJob, pod: dict[str, object], follow: bool) -> bool:
    """Print one pod's log (following it while it runs); False when it could not be read."""
    name = str(meta(pod).get("name"))
    print(header(job, name))
    try:
        if follow and not _finished(pod):
            for line in kube.follow_log(name, CONTAINER):
                sys.stdout.write(line)
                sys.stdout.flush()
        else:
            text = kube.pod_log(name, CONTAINER)
            sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    except PluginError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"log of pod {name} unavailable: {exc}\n")
        return False
    return True


def _pending_pods(
    snap: Snapshot, step: str | None, done: set[str]
) -> list[tuple[StepJob, dict[str, object]]]:
    return [
        (job, pod)
        for job, pod in snap.pods()
        if (step is None or job.step == step) and str(meta(pod).get("name")) not in done
    ]


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        done: set[str] = set()
        failed = False
        while True:
            snap = snapshot(kube, args.name)
            todo = _pending_pods(snap, args.step, done)
            if not todo and not done and not args.follow:
                which = f"step {args.step} " if args.step else ""
                print(
                    f"{args.name} has no {which}pods (yet); its Jobs: "
                    + (", ".join(j.name for j in snap.jobs) or "none")
                )
                return EXIT_OK
            for job, pod in todo:
                if args.follow and status_of(pod).get("phase", "Pending") == "Pending":
                    break  # not started yet: its log does not exist; read again shortly
                failed = not _print_pod(kube, job, pod, follow=args.follow) or failed
                done.add(str(meta(pod).get("name")))
            if not args.follow or settled(snap):
                return EXIT_FAILED if failed else EXIT_OK
            time.sleep(1.0)
    finally:
        kube.close()


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subcommand(subparsers, common, "logs", "the step pods' logs, in run order", EXAMPLES)
    parser.add_argument("name", metavar="NAME", help="the DatabaseMigration")
    parser.add_argument("--step", choices=(*STEPS, ROLLBACK_CHECK), help="only this step's pods")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="follow the running step and the next ones"
    )
    parser.set_defaults(func=run)
