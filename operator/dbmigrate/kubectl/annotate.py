"""``approve``, ``pause``, ``resume``, ``retry`` and ``promote``: each one annotation, set for you.

Each command is a merge patch of one annotation (``api/labels.py``), so a GitOps repository or a
script does the same with ``kubectl annotate``; every command prints that equivalent. ``approve``
reads the plan hash from the status and shows the plan before it asks (an approval binds to the
hash, so a plan that changed meanwhile is not approved by accident); ``retry`` writes a new
token and waits until the operator echoes it in ``status.lastHandledRetry`` (Flux's
``requestedAt`` pattern), so the person knows it was seen; ``promote`` sets a token on a
DatabaseMigrationRollout and reports.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE
from dbmigrate.api.labels import (
    APPROVE_ANNOTATION,
    PAUSE_ANNOTATION,
    PROMOTE_ANNOTATION,
    RETRY_ANNOTATION,
)
from dbmigrate.kubectl.client import MIGRATIONS, ROLLOUTS, Client, PluginError, Resource
from dbmigrate.kubectl.main import connect, seconds, subcommand
from dbmigrate.kubectl.objects import Snapshot, meta, status_of
from dbmigrate.kubectl.screens import plan_sections
from dbmigrate.kubectl.terminal import ask

PAUSED_VALUE = "true"
WAITING_FOR_PROMOTE = "WaitingForPromote"  # the rollout's phase while a pause waits for a person


def token() -> str:
    """A new request token: the time, readable, and random enough never to repeat."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "-" + secrets.token_hex(3)


def annotation_patch(key: str, value: str | None) -> dict[str, Any]:
    """The merge patch that sets (or, with None, removes) one annotation."""
    return {"metadata": {"annotations": {key: value}}}


def kubectl_equivalent(
    resource: Resource, name: str, namespace: str, key: str, value: str | None
) -> str:
    """The plain kubectl command that does the same."""
    target = f"{resource.plural}/{name} -n {namespace}"
    if value is None:
        return f"kubectl annotate {target} {key}-"
    return f"kubectl annotate {target} {key}={value} --overwrite"


def _set(kube: Client, resource: Resource, name: str, key: str, value: str | None) -> None:
    if kube.get(resource, name) is None:
        kube.must_get(resource, name)  # raises the not-found message
    kube.patch(resource, name, annotation_patch(key, value))
    print(f"  (the same by hand: {kubectl_equivalent(resource, name, kube.namespace, key, value)})")


# --- approve ---------------------------------------------------------------------------------


def approve(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        migration = kube.must_get(MIGRATIONS, args.name)
        status = status_of(migration)
        phase = status.get("phase") or "Pending"
        plan_hash = (status.get("approval") or {}).get("planHash") or (
            status.get("plan") or {}
        ).get("planHash")
        if not plan_hash:
            raise PluginError(
                f"{args.name} has no plan to approve yet (phase {phase}); the plan step writes "
                f"it: kubectl dbmigrate status {args.name} -n {kube.namespace} -w",
                EXIT_FAILED,
            )
        if (status.get("approval") or {}).get("approvedHash") == plan_hash:
            print(f"plan {plan_hash} of {args.name} is already approved (phase {phase})")
            return EXIT_OK
        if args.hash and args.hash != plan_hash:
            raise PluginError(
                f"--hash {args.hash} is not the current plan ({plan_hash}): the plan changed "
                "since it was reviewed; review it again",
                EXIT_FAILED,
            )
        if phase != "WaitingForApproval":
            print(f"note: {args.name} is {phase}, not WaitingForApproval; the approval is kept")
        print("\n".join(plan_sections(Snapshot(migration, [], []))))
        if not ask(f"Approve plan {plan_hash} of {kube.namespace}/{args.name}?", args.yes):
            print("not approved")
            return EXIT_FAILED
        _set(kube, MIGRATIONS, args.name, APPROVE_ANNOTATION, plan_hash)
        print(
            f"approved plan {plan_hash}; follow it: kubectl dbmigrate status {args.name} "
            f"-n {kube.namespace} -w"
        )
        return EXIT_OK
    finally:
        kube.close()


# --- pause and resume ------------------------------------------------------------------------


def pause(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        _set(kube, MIGRATIONS, args.name, PAUSE_ANNOTATION, PAUSED_VALUE)
        print(
            f"paused {args.name}: the operator starts no new step for it (a running step "
            f"finishes); resume: kubectl dbmigrate resume {args.name} -n {kube.namespace}"
        )
        return EXIT_OK
    finally:
        kube.close()


def resume(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        migration = kube.must_get(MIGRATIONS, args.name)
        if PAUSE_ANNOTATION not in (meta(migration).get("annotations") or {}):
            print(f"{args.name} is not paused")
            return EXIT_OK
        _set(kube, MIGRATIONS, args.name, PAUSE_ANNOTATION, None)
        print(f"resumed {args.name}: the operator goes on from where it stopped")
        return EXIT_OK
    finally:
        kube.close()


# --- retry -----------------------------------------------------------------------------------


def _await_echo(
    kube: Client, resource: Resource, name: str, field: str, value: str, timeout: float
) -> int:
    """Wait until the operator echoes ``value`` in ``status.<field>`` (Flux's requestedAt
    pattern): 0 once it did, 3 when ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    while True:
        status = status_of(kube.get(resource, name) or {})
        if status.get(field) == value:
            print(f"the operator handled it: {name} is {status.get('phase')}")
            return EXIT_OK
        if time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, timeout))
    sys.stderr.write(
        f"the operator has not handled the request within {timeout:g}s (status.{field} does "
        "not show the token yet): is it running and does it watch this namespace? The "
        "annotation stays; it acts once it sees it.\n"
    )
    return EXIT_UNAVAILABLE


def retry(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        kube.must_get(MIGRATIONS, args.name)
        value = token()
        _set(kube, MIGRATIONS, args.name, RETRY_ANNOTATION, value)
        print(f"asked for a retry of {args.name} (token {value}); waiting for the operator")
        return _await_echo(kube, MIGRATIONS, args.name, "lastHandledRetry", value, args.timeout)
    finally:
        kube.close()


# --- promote ---------------------------------------------------------------------------------


def promote(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        phase = status_of(kube.must_get(ROLLOUTS, args.name)).get("phase") or "Pending"
        value = token()
        _set(kube, ROLLOUTS, args.name, PROMOTE_ANNOTATION, value)
        print(f"asked {ROLLOUTS.kind} {args.name} to promote (token {value}); it is {phase}")
        if phase != WAITING_FOR_PROMOTE:
            print(
                f"note: it does not wait for a promotion now ({phase}); the token is acted on "
                "when a pause of the rollout waits for one"
            )
        if args.timeout <= 0:
            return EXIT_OK
        return _await_echo(kube, ROLLOUTS, args.name, "lastHandledPromote", value, args.timeout)
    finally:
        kube.close()


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subcommand(
        subparsers,
        common,
        "approve",
        "show the plan waiting for approval and approve its hash",
        "  kubectl dbmigrate approve analytics -n shop\n"
        "  kubectl dbmigrate approve analytics --yes --hash 3f2a...   # in a script: "
        "only this plan",
    )
    parser.add_argument("name", metavar="NAME", help="the DatabaseMigration")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    parser.add_argument("--hash", help="approve only if the plan still has this hash")
    parser.set_defaults(func=approve)

    for name, summary, examples, func in (
        (
            "pause",
            "stop the operator from starting any new step for a migration",
            "  kubectl dbmigrate pause analytics -n shop",
            pause,
        ),
        (
            "resume",
            "let a paused migration go on",
            "  kubectl dbmigrate resume analytics -n shop",
            resume,
        ),
    ):
        parser = subcommand(subparsers, common, name, summary, examples)
        parser.add_argument("name", metavar="NAME", help="the DatabaseMigration")
        parser.set_defaults(func=func)

    parser = subcommand(
        subparsers,
        common,
        "retry",
        "run a failed or rolled-back migration again, and wait until the operator saw it",
        "  kubectl dbmigrate retry analytics -n shop\n"
        "  kubectl dbmigrate retry analytics --timeout 60",
    )
    parser.add_argument("name", metavar="NAME", help="the DatabaseMigration")
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=30.0,
        metavar="DURATION",
        help="how long to wait for the operator's echo (exit 3 after it; default 30)",
    )
    parser.set_defaults(func=retry)

    parser = subcommand(
        subparsers,
        common,
        "promote",
        "promote a DatabaseMigrationRollout to its next stage",
        "  kubectl dbmigrate promote analytics-rollout -n shop\n"
        "  kubectl dbmigrate promote analytics-rollout --timeout 30s   # and wait for the echo",
    )
    parser.add_argument("name", metavar="ROLLOUT", help="the DatabaseMigrationRollout")
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=0.0,
        metavar="DURATION",
        help="wait this long for the operator's echo in status.lastHandledPromote (exit 3 "
        "after it; default 0: set the annotation and report)",
    )
    parser.set_defaults(func=promote)
