"""``kubectl dbmigrate wait NAME --timeout D``: block until the migration is Ready, for CI.

The judgement is ``dbmigrate wait --resource``'s (``cli/resource_state.judge_resource``): Ready
only once the operator observed the current generation (a spec just applied is not mistaken for
the old run's success); Failed, RolledBack or Stalled is a failure a person must look at. Exit
codes (``api/exitcodes.py``): 0 Ready; 1 failed (the message says why and what to read next);
3 the timeout passed while the run was still under way, or the API server could not be reached;
2 bad usage. A resource that does not exist yet is waited for (a GitOps tool may be creating it).
"""

from __future__ import annotations

import argparse
import sys
import time

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE
from dbmigrate.cli.resource_state import judge_resource
from dbmigrate.engine.after.readiness import Verdict
from dbmigrate.kubectl.client import MIGRATIONS, PluginError
from dbmigrate.kubectl.main import connect, seconds, subcommand

EXAMPLES = """  kubectl apply -f migration.yaml && kubectl dbmigrate wait analytics --timeout 30m
  kubectl dbmigrate wait analytics -n shop --timeout 10m --version 7   # and at version 7 or later
  # in CI: 0 Ready, 1 failed or rolled back (read the next command it prints), 3 timed out"""


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        kube.require_type(MIGRATIONS)
        deadline = time.monotonic() + args.timeout
        last = ""
        while True:
            verdict: Verdict | None = None
            try:
                verdict = judge_resource(kube.get(MIGRATIONS, args.name), args.name, args.version)
                message = verdict.message
            except PluginError as exc:
                if exc.code != EXIT_UNAVAILABLE:
                    raise
                message = f"the API server cannot be reached: {exc}"
            if message != last:
                print(message)
                sys.stdout.flush()
                last = message
            if verdict is not None and verdict.state == "ready":
                return EXIT_OK
            if verdict is not None and verdict.state == "failed":
                print(
                    f"see why: kubectl dbmigrate status {args.name} -n {kube.namespace}",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            if time.monotonic() >= deadline:
                print(
                    f"timed out after {args.timeout:g}s: {message}",
                    file=sys.stderr,
                )
                return EXIT_UNAVAILABLE
            time.sleep(min(args.interval, max(0.1, deadline - time.monotonic())))
    finally:
        kube.close()


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subcommand(
        subparsers,
        common,
        "wait",
        "wait until the migration is Ready; exit 0 Ready, 1 failed, 3 timed out (for CI)",
        EXAMPLES,
    )
    parser.add_argument("name", metavar="NAME", help="the DatabaseMigration")
    parser.add_argument(
        "--timeout", type=seconds, default=600.0, metavar="DURATION", help="default 10m"
    )
    parser.add_argument("--version", type=int, metavar="N", help="and currentVersion >= N")
    parser.add_argument(
        "--interval", type=seconds, default=2.0, metavar="DURATION", help="between reads (2s)"
    )
    parser.set_defaults(func=run)
