"""Entry point of the ``dbmigrate`` command.

Each group of sub-commands lives in its own module and exposes ``register(subparsers)``; every
sub-command sets ``func`` (returning the process exit code). Exit codes are documented in the
README: 0 success, 1 the step ran and found a failure, 2 bad input or usage, 3 could not connect
or a lock/timeout that may heal. Only the module of the command asked for is imported, so a
step starts in a fraction of a second instead of loading the operator's Kopf and API client.

Whatever a command prints goes through ``logging_setup.RedactingStream``: the password of
``--database-url`` / DATABASE_URL / PGPASSWORD is masked in stdout and stderr whatever the URL's
shape, even where no message was written with it in mind. A reader that goes away early
(``dbmigrate history --output json | head -1``) ends the command quietly with 141, as a Unix tool
killed by SIGPIPE does, instead of a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import itertools
import os
import sys
from collections.abc import Iterator, Sequence

from dbmigrate import __version__
from dbmigrate.api.exitcodes import EXIT_BROKEN_PIPE, EXIT_USAGE, help_text

COMMAND_MODULES = {
    "crd": "dbmigrate.cli.crd",
    "plan": "dbmigrate.runner.plan",
    "apply": "dbmigrate.runner.apply",
    "status": "dbmigrate.cli.history",
    "history": "dbmigrate.cli.history",
    "repair": "dbmigrate.cli.history",
    "lint": "dbmigrate.cli.lint",
    "wait": "dbmigrate.cli.wait",
    "preflight": "dbmigrate.runner.preflight",
    "backup": "dbmigrate.runner.backup",
    "verify": "dbmigrate.runner.verify",
    "rollback": "dbmigrate.runner.rollback",
    "rollback-check": "dbmigrate.runner.undo_check",
    "operator": "dbmigrate.cli.operator",
    "job": "dbmigrate.cli.job",
}


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
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dbmigrate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _modules_for(argv):
        importlib.import_module(name).register(subparsers)
    return parser


def _database_urls(arguments: Sequence[str]) -> list[str]:
    """The values given to --database-url, read before parsing (argparse may print them)."""
    found = [a.split("=", 1)[1] for a in arguments if a.startswith("--database-url=")]
    found += [b for a, b in itertools.pairwise(arguments) if a == "--database-url"]
    return found


@contextlib.contextmanager
def redacted_output(arguments: Sequence[str]) -> Iterator[None]:
    """stdout and stderr without the passwords of the URLs given or in the environment."""
    from dbmigrate.logging_setup import RedactingStream, register_conninfo, register_env_secrets

    register_env_secrets()
    for url in _database_urls(arguments):
        register_conninfo(url)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(saved[0]), RedactingStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _detach_stdout() -> None:
    """Point stdout's descriptor at /dev/null so the interpreter's last flush cannot fail too."""
    try:
        descriptor = sys.stdout.fileno()
    except (io.UnsupportedOperation, AttributeError, ValueError):
        return  # an in-memory stream (tests): there is no descriptor to detach
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen sub-command; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    with redacted_output(arguments):
        parser = build_parser(arguments)
        args = parser.parse_args(arguments)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        try:
            code = int(args.func(args))
            sys.stdout.flush()
        except BrokenPipeError:
            _detach_stdout()
            return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
