"""Entry point of the ``dbmigrate`` command.

Each group of sub-commands lives in its own module and exposes ``register(subparsers)``; every
sub-command sets ``func`` (returning the process exit code). Exit codes are documented in the
README: 0 success, 1 the step ran and found a failure, 2 bad input or usage, 3 could not connect
or a lock/timeout that may heal. Only the module of the command asked for is imported, so a
step starts in a fraction of a second instead of loading the operator's Kopf and API client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dbmigrate import __version__

COMMAND_MODULES = {
    "crd": "dbmigrate.cli.schema_cmds",
    "plan": "dbmigrate.cli.engine_cmds",
    "apply": "dbmigrate.cli.engine_cmds",
    "status": "dbmigrate.cli.engine_cmds",
    "history": "dbmigrate.cli.engine_cmds",
    "lint": "dbmigrate.cli.lint_cmds",
    "wait": "dbmigrate.cli.wait_cmds",
    "preflight": "dbmigrate.cli.step_cmds",
    "backup": "dbmigrate.cli.step_cmds",
    "verify": "dbmigrate.cli.step_cmds",
    "rollback": "dbmigrate.cli.step_cmds",
    "operator": "dbmigrate.cli.operator_cmds",
    "job": "dbmigrate.cli.operator_cmds",
}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def _modules_for(argv: Sequence[str]) -> list[str]:
    """Only the module of the command asked for (start-up stays fast); all of them for help."""
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    if chosen in COMMAND_MODULES:
        return [COMMAND_MODULES[chosen]]
    return list(dict.fromkeys(COMMAND_MODULES.values()))


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Collect the sub-commands of the command modules ``argv`` needs."""
    parser = argparse.ArgumentParser(
        prog="dbmigrate",
        description="Safe PostgreSQL schema migrations, by hand or as an operator.",
    )
    parser.add_argument("--version", action="version", version=f"dbmigrate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _modules_for(argv):
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen sub-command; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
