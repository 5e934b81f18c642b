"""``kubectl dbmigrate logs NAME [--step STEP] [-f]``: the step pods' logs, in run order.

Each pod's log comes under a header naming its step, Job, run and attempt, so a retried step's
pods read in the order they ran. ``-f`` follows the pod that is running and then the next
step's pods as the operator starts them, until the run ends, waits for a person, or is paused.
A run can end before the kubelet has reported its last pod as started (the step tells the
operator it is done before the pod's status catches up), so after the run ends ``-f`` still
waits up to ``SETTLE_GRACE`` seconds for such a pod and prints it; one that never started is
named as such.
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

SETTLE_GRACE = 60.0
STARTING = ("ContainerCreating", "PodInitializing")
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


def _not_started(pod: dict[str, object]) -> bool:
    return status_of(pod).get("phase", "Pending") == "Pending"


def _stuck(pod: dict[str, object]) -> bool:
    """A pending pod that will not start by itself: unschedulable, or its image or config bad."""
    status = status_of(pod)
    conditions = status.get("conditions") or []
    if any(
        c.get("type") == "PodScheduled" and c.get("status") == "False"
        for c in conditions
        if isinstance(c, dict)
    ):
        return True
    waiting = [
        ((c.get("state") or {}).get("waiting") or {}).get("reason")
        for c in status.get("containerStatuses") or []
        if isinstance(c, dict)
    ]
    return any(reason and reason not in STARTING for reason in waiting)


def _never_started(todo: list[tuple[StepJob, dict[str, object]]]) -> None:
    for job, pod in todo:
        print(header(job, str(meta(pod).get("name"))))
        print("(this pod never started, so it has no log)")


def _pending_pods(
    snap: Snapshot, step: str | None, done: set[str]
) -> list[tuple[StepJob, dict[str, object]]]:
    return [
        (job, pod)
        for job, pod in snap.pods()
        if (step is None or job.step == step) and str(meta(pod).get("name")) not in done
    ]


def _print_started(
    kube: Client, todo: list[tuple[StepJob, dict[str, object]]], follow: bool, done: set[str]
) -> tuple[bool, bool]:
    """Print the pods in order up to the first one not started when following.

    Returns (every log was read, a pod is still to start)."""
    read_all = True
    for job, pod in todo:
        if follow and _not_started(pod):
            return read_all, True  # its log does not exist yet; read again shortly
        read_all = _print_pod(kube, job, pod, follow=follow) and read_all
        done.add(str(meta(pod).get("name")))
    return read_all, False


def _no_pods(snap: Snapshot, args: argparse.Namespace) -> int:
    which = f"step {args.step} " if args.step else ""
    jobs = ", ".join(j.name for j in snap.jobs) or "none"
    print(f"{args.name} has no {which}pods (yet); its Jobs: {jobs}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        done: set[str] = set()
        failed = False
        ended_at: float | None = None
        while True:
            snap = snapshot(kube, args.name)
            todo = _pending_pods(snap, args.step, done)
            if not todo and not done and not args.follow:
                return _no_pods(snap, args)
            read_all, waiting = _print_started(kube, todo, args.follow, done)
            failed = failed or not read_all
            if args.follow and settled(snap):
                ended_at = time.monotonic() if ended_at is None else ended_at
                left = _pending_pods(snap, args.step, done)
                late = time.monotonic() - ended_at > SETTLE_GRACE
                if waiting and (late or all(_stuck(pod) for _, pod in left)):
                    _never_started(left)
                    waiting = False
            if not args.follow or (ended_at is not None and not waiting):
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
