"""``kubectl dbmigrate rollback NAME``: an emergency rollback on demand, through a request object.

The plugin creates a ``MigrationRollback`` (the one-shot request the operator acts on; a GitOps
user or a script creates the same manifest), waits until the operator has planned it, shows the
plan (what is dropped or restored, which versions leave the history, which workloads scale) and
the data-loss preflight, and then:

- ``--dry-run``: stops there; the request stays as the record of the plan.
- data would be lost: the operator waits for ``spec.confirm`` equal to the migration's name;
  the plugin asks the person to type that name (or takes ``--confirm NAME`` in a script), then
  patches it in. ``--yes`` never answers this one.
- otherwise the request runs at once; the plugin asked before creating it (unless ``--yes``).

It then follows the request to its end and exits 0 (Succeeded), 1 (Refused, Failed, or the
confirmation was not given) or 3 (``--timeout`` passed; the request goes on).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from dbmigrate import API_GROUP, API_VERSION
from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from dbmigrate.api.labels import LABEL_MIGRATION
from dbmigrate.kubectl.client import MIGRATIONS, ROLLBACKS, Client, Obj, PluginError
from dbmigrate.kubectl.main import connect, seconds, subcommand
from dbmigrate.kubectl.objects import meta
from dbmigrate.kubectl.screens import flatten, table
from dbmigrate.kubectl.terminal import ask, ask_typed
from dbmigrate.specs.naming import label_value

STRATEGIES = ("DropCreatedObjects", "RestoreBackup")
PLANNED = ("Planned", "AwaitingConfirmation", "Running", "Succeeded", "Refused", "Failed")
ENDED = ("Succeeded", "Refused", "Failed")
EXAMPLES = """  kubectl dbmigrate rollback analytics --dry-run   # the plan and the data-loss check
  kubectl dbmigrate rollback analytics --reason "p99 latency doubled since 14:02"
  kubectl dbmigrate rollback analytics --strategy RestoreBackup --reason "bad data"
  kubectl dbmigrate rollback analytics --yes --confirm analytics    # a script, loss accepted"""


def request_manifest(
    migration: str,
    *,
    strategy: str | None,
    reason: str | None,
    dry_run: bool,
    requested_by: str | None,
    confirm: str | None = None,
) -> Obj:
    """The MigrationRollback the plugin creates (pure: what a GitOps user would write)."""
    spec: dict[str, Any] = {"migration": migration, "dryRun": dry_run}
    if strategy:
        spec["strategy"] = strategy
    if reason:
        spec["reason"] = reason
    if requested_by:
        spec["requestedBy"] = requested_by
    if confirm:
        spec["confirm"] = confirm
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": ROLLBACKS.kind,
        "metadata": {
            "generateName": f"{migration[:40]}-rollback-",
            "labels": {LABEL_MIGRATION: label_value(migration)},
        },
        "spec": spec,
    }


def plan_lines(request: Mapping[str, Any]) -> list[str]:
    """The request's plan and data-loss preflight, as a person reads them (pure)."""
    status = request.get("status") or {}
    plan = status.get("plan") or {}
    strategy = plan.get("strategy") or (request.get("spec") or {}).get("strategy") or "?"
    lines = [f"Rollback plan ({strategy}):"]
    drop = [str(v) for v in plan.get("drop") or []]
    if 0 < len(drop) <= 3:
        lines.append(f"  drop: {', '.join(drop)}")
    elif drop:
        lines += ["  drop:", *(f"    {item}" for item in drop)]
    restore = plan.get("restore")
    if isinstance(restore, Mapping):
        lines.append(
            f"  restore: {restore.get('path', '?')} (sha256 {restore.get('sha256', '?')}, "
            f"{restore.get('sizeBytes', '?')} bytes)"
        )
    elif restore:
        lines.append(f"  restore: {restore}")
    if plan.get("versions"):
        lines.append(f"  versions leaving the history: {', '.join(map(str, plan['versions']))}")
    workloads = plan.get("workloads") or []
    if workloads:
        lines.append("  workloads:")
        for w in workloads:
            before = w.get("fromReplicas", w.get("from"))
            lines.append(
                f"    {w.get('kind', '?')}/{w.get('name', '?')}: "
                f"{before if before is not None else '?'} -> {w.get('to', 0)} replicas, then back"
            )
    loss = status.get("dataLoss") or {}
    if loss:
        if not loss.get("checked"):
            lines.append("Data-loss preflight: not checked")
        elif loss.get("lossFound"):
            lines.append("Data-loss preflight: DATA WOULD BE LOST")
        else:
            lines.append("Data-loss preflight: no data would be lost")
        tables = loss.get("tables") or []
        if tables:
            rows = [["TABLE", "ROWS", "WRITTEN SINCE BACKUP"]]
            rows += [
                [
                    str(t.get("table", "?")),
                    str(t.get("rows", "-")),
                    str(t.get("rowsWrittenSinceBackup", "-")),
                ]
                for t in tables
            ]
            lines += table(rows)
        if loss.get("walBytesSinceBackup") is not None:
            lines.append(f"  WAL written since the backup: {loss['walBytesSinceBackup']} bytes")
        if loss.get("summary"):
            lines.append(f"  {loss['summary']}")
    return lines


def evidence_lines(evidence: Mapping[str, Any]) -> list[str]:
    """What was done, in a few lines: the rollback's record, the check after it, the workloads
    put back; keys this plugin does not know are listed generically."""
    lines = [f"  verified: {'yes' if evidence.get('verified') else 'NO'}"]
    record = evidence.get("rollback") or {}
    if record:
        dropped = record.get("droppedObjects") or []
        gone = sum(1 for o in dropped if o.get("gone"))
        versions = ", ".join(map(str, record.get("versions") or [])) or "-"
        lines.append(f"  {record.get('strategy', '?')}: versions {versions}")
        if dropped:
            lines.append(f"  dropped {len(dropped)} object(s), {gone} verified gone")
        if record.get("restoredFrom"):
            lines.append(
                f"  restored {record['restoredFrom']} (sha256 {record.get('restoredSha256', '?')})"
            )
    verification = evidence.get("verification") or {}
    if verification:
        passed = "passed" if verification.get("passed") else "FAILED"
        lines.append(f"  verification {passed}: {verification.get('message', '')}".rstrip(": "))
    for w in evidence.get("workloadsRestored") or []:
        lines.append(
            f"  {w.get('kind')}/{w.get('name')} scaled back to {w.get('replicas')}"
            + ("" if w.get("restored", True) else " (NOT restored)")
        )
    if evidence.get("migrationPhase"):
        lines.append(f"  the migration is {evidence['migrationPhase']}")
    known = {"verified", "rollback", "verification", "workloadsRestored", "migrationPhase",
             "migrationMessage"}  # fmt: skip
    others = {k: v for k, v in evidence.items() if k not in known}
    lines += [f"  {key}: {value}" for key, value in flatten(others)[:10]]
    return lines


def outcome_lines(request: Mapping[str, Any]) -> list[str]:
    """The end of the request: its phase, message and evidence (pure)."""
    status = request.get("status") or {}
    name = meta(dict(request)).get("name")
    lines = [f"{name}: {status.get('phase')}. {status.get('message') or ''}".rstrip()]
    evidence = status.get("evidence")
    if isinstance(evidence, Mapping) and evidence:
        lines += ["Evidence:", *evidence_lines(evidence)]
        lines.append(f"  (all of it: kubectl get {ROLLBACKS.plural}/{name} -o yaml)")
    return lines


def _phase(request: Mapping[str, Any]) -> str:
    return str((request.get("status") or {}).get("phase") or "")


def _follow(
    kube: Client, name: str, until: tuple[str, ...], deadline: float, seen: str = ""
) -> Obj | None:
    """Read the request until its phase is one of ``until``; None when the deadline passed.
    Phase changes (after ``seen``) are printed as they happen."""
    while True:
        request = kube.get(ROLLBACKS, name)
        if request is None:
            raise PluginError(f"the request {name} was deleted", EXIT_FAILED)
        phase = _phase(request)
        if phase and phase != seen:
            message = (request.get("status") or {}).get("message") or ""
            print(f"  {phase}" + (f": {message}" if message else ""))
            seen = phase
        if phase in until:
            return request
        if time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        kube.must_get(MIGRATIONS, args.name)
        kube.require_type(ROLLBACKS)
        if args.confirm is not None and args.confirm != args.name:
            raise PluginError(
                f"--confirm must be the migration's name ({args.name}), not {args.confirm!r}",
                EXIT_USAGE,
            )
        strategy = args.strategy or "the operator's choice"
        if not args.dry_run and not ask(
            f"Roll back {kube.namespace}/{args.name} ({strategy})? It runs at once unless its "
            "preflight finds data that would be lost",
            args.yes,
        ):
            print("nothing was created")
            return EXIT_FAILED
        manifest = request_manifest(
            args.name,
            strategy=args.strategy,
            reason=args.reason,
            dry_run=args.dry_run,
            requested_by=kube.username(),
        )
        created = kube.create(ROLLBACKS, manifest)
        name = str(meta(created).get("name"))
        print(f"created {ROLLBACKS.plural}/{name} -n {kube.namespace}; the operator plans it")
        deadline = time.monotonic() + args.timeout
        request = _follow(kube, name, PLANNED, deadline)
        if request is None:
            return _timed_out(name, kube.namespace, args.timeout)
        print("\n".join(plan_lines(request)))
        phase = _phase(request)
        if phase in ("Refused", "Failed"):
            print("\n".join(outcome_lines(request)))
            return EXIT_FAILED
        if args.dry_run:
            print(
                f"dry run: nothing was changed. To roll back: kubectl dbmigrate rollback "
                f"{args.name} -n {kube.namespace}"
                + (f" --strategy {args.strategy}" if args.strategy else "")
            )
            return EXIT_OK
        if phase == "AwaitingConfirmation":
            if not _confirmed(args, request):
                how = (request.get("status") or {}).get("howToConfirm") or ""
                print(
                    "not confirmed: the request waits, nothing ran."
                    + (f" To confirm later: {how}" if how else "")
                )
                return EXIT_FAILED
            kube.patch(ROLLBACKS, name, {"spec": {"confirm": args.name}})
            print("confirmed; the rollback runs")
        final = _follow(kube, name, ENDED, deadline, seen=phase)
        if final is None:
            return _timed_out(name, kube.namespace, args.timeout)
        print("\n".join(outcome_lines(final)))
        return EXIT_OK if _phase(final) == "Succeeded" else EXIT_FAILED
    finally:
        kube.close()


def _confirmed(args: argparse.Namespace, request: Mapping[str, Any]) -> bool:
    if args.confirm == args.name:
        return True
    if args.yes:
        sys.stderr.write(
            f"data would be lost and --yes does not confirm that: add --confirm {args.name}\n"
        )
        return False
    return ask_typed(
        f"Data would be lost. Type the migration's name ({args.name}) to roll back anyway",
        args.name,
    )


def _timed_out(name: str, namespace: str, timeout: float) -> int:
    sys.stderr.write(
        f"the request {name} did not finish within {timeout:g}s; it goes on. Follow it: "
        f"kubectl get {ROLLBACKS.plural}/{name} -n {namespace} -o yaml\n"
    )
    return EXIT_UNAVAILABLE


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subcommand(
        subparsers,
        common,
        "rollback",
        "undo a migration on demand: a MigrationRollback request, its dry-run plan and "
        "data-loss check first",
        EXAMPLES,
    )
    parser.add_argument("name", metavar="NAME", help="the DatabaseMigration to roll back")
    parser.add_argument(
        "--strategy", choices=STRATEGIES, help="default: what the migration's spec.rollback says"
    )
    parser.add_argument("--dry-run", action="store_true", help="plan and check only")
    parser.add_argument("--reason", metavar="TEXT", help="why (kept in the request: the audit)")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask before creating")
    parser.add_argument(
        "--confirm",
        metavar="NAME",
        help="accept a data loss the preflight finds (the migration's name, as typed)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=900.0,
        metavar="DURATION",
        help="stop following after this long, exit 3 (default 900)",
    )
    parser.set_defaults(func=run)
