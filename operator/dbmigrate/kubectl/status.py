"""``kubectl dbmigrate status NAME``: the one screen of a migration, live with ``-w``.

It reads the resource, its step Jobs and pods and the Events about them (``objects``) and draws
``screens.status_screen``; ``-o json`` prints the same facts for a script. With ``-w`` it redraws
as the run moves and stops once the run ended, waits for a person, or is paused.
"""

from __future__ import annotations

import argparse
import json
import sys

from dbmigrate.api.exitcodes import EXIT_OK, EXIT_UNAVAILABLE
from dbmigrate.kubectl.main import connect, seconds, subcommand
from dbmigrate.kubectl.objects import snapshot
from dbmigrate.kubectl.screens import settled, status_document, status_screen
from dbmigrate.kubectl.terminal import watch

EXAMPLES = """  kubectl dbmigrate status analytics -n shop
  kubectl dbmigrate status analytics -w            # redraw until it ends or waits for you
  kubectl dbmigrate status analytics -o json | jq .next"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subcommand(
        subparsers,
        common,
        "status",
        "one screen: phase, conditions, plan, lint, preflight, backup, progress, verification, "
        "Jobs, pods, Events and the next command",
        EXAMPLES,
    )
    parser.add_argument("name", metavar="NAME", help="the DatabaseMigration")
    parser.add_argument("-w", "--watch", action="store_true", help="redraw as the run moves")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument(
        "--interval", type=seconds, default=2.0, metavar="DURATION", help="-w: time between reads"
    )
    parser.add_argument(
        "--timeout", type=seconds, default=None, metavar="DURATION", help="-w: stop after this long"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        if args.output == "json":
            snap = snapshot(kube, args.name)
            json.dump(status_document(snap), sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
            return EXIT_OK
        if not args.watch:
            sys.stdout.write("\n".join(status_screen(snapshot(kube, args.name))) + "\n")
            return EXIT_OK

        def draw() -> tuple[list[str], bool]:
            snap = snapshot(kube, args.name)
            return status_screen(snap), settled(snap)

        return (
            EXIT_OK
            if watch(draw, interval=args.interval, timeout=args.timeout)
            else (EXIT_UNAVAILABLE)
        )
    finally:
        kube.close()
