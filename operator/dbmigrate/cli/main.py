"""Entry point of the ``dbmigrate`` command.

Each group of sub-commands lives in its own module and exposes ``register(subparsers)``; every
sub-command sets ``func`` (returning the process exit code). Exit codes are documented in the
README: 0 success, 1 the step ran and found a failure, 2 bad input or usage, 3 could not connect
or a lock/timeout that may heal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dbmigrate import __version__

COMMAND_MODULES = (
    "dbmigrate.cli.schema_cmds",
    "dbmigrate.cli.engine_cmds",
    "dbmigrate.cli.lint_cmds",
    "dbmigrate.cli.step_cmds",
    "dbmigrate.cli.operator_cmds",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def build_parser() -> argparse.ArgumentParser:
    """Collect the sub-commands of every command module that is installed."""
    parser = argparse.ArgumentParser(
        prog="dbmigrate",
        description="Safe PostgreSQL schema migrations, by hand or as an operator.",
    )
    parser.add_argument("--version", action="version", version=f"dbmigrate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not an absent command module
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen sub-command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
