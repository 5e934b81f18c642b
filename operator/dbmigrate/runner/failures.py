"""How the step commands fail: a clear message on stderr and the documented exit code.

2 for bad input, 1 when the step ran and failed, 3 when the database is unavailable; passwords
are scrubbed from every message. With ``--output json`` the failure is also printed on stdout as
one JSON object (``error``, ``errorCode``, ``exitCode``), so a machine reading stdout gets JSON on
every path. The error classes are imported only when a command fails, so a
command that succeeds never loads the SQL parser or the models it cannot fail in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from dbmigrate.api.exitcodes import EXIT_USAGE
from dbmigrate.engine.undo.pgtools import StepError


def scrub(message: str, args: argparse.Namespace) -> str:
    """The message, still readable, without passwords: those in URLs or ``password=`` settings,
    and every password candidate of the --database-url, whatever the URL's shape."""
    from dbmigrate.logging_setup import redact, register_conninfo

    register_conninfo(getattr(args, "database_url", None))
    return redact(message)


def print_failure(args: argparse.Namespace, prefix: str, message: str, code: str) -> None:
    """``prefix: message`` on stderr and, for ``--output json``, the failure as JSON on stdout."""
    print(f"{prefix}: {message}", file=sys.stderr)
    if getattr(args, "output", None) == "json":
        document = {"error": message, "errorCode": code}
        print(json.dumps(document, indent=2))


def _failure(args: argparse.Namespace, prefix: str, exc: Exception, exit_code: int) -> int:
    code = getattr(exc, "code", None)
    print_failure(
        args, prefix, scrub(str(exc), args), code if isinstance(code, str) else type(exc).__name__
    )
    return exit_code


def report_failure(
    exc: Exception, args: argparse.Namespace, prefix: str = "error", context: str | None = None
) -> int | None:
    """Print a failure the steps expect (``prefix: message``) and return its exit code; None for
    anything else. Every step and command goes through here, so a failure exits with the same
    code however it was called. ``context`` names the command in database errors (default
    ``dbmigrate <command>``)."""
    import psycopg
    from pglast.parser import ParseError
    from pydantic import ValidationError

    from dbmigrate.engine.errors import MigrationError, from_database_error
    from dbmigrate.engine.sources import MigrationSourceError

    if isinstance(exc, StepError | MigrationError):
        return _failure(args, prefix, exc, exc.exit_code)
    if isinstance(exc, MigrationSourceError | ValidationError | ParseError):
        return _failure(args, prefix, exc, EXIT_USAGE)
    if isinstance(exc, psycopg.Error):
        err = from_database_error(exc, context or f"dbmigrate {args.command}")
        return _failure(args, prefix, err, err.exit_code)
    return None


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the engine's exceptions into ``dbmigrate <command>: message`` and the documented
    exit code (the commands that are not steps; a step runs in ``lifecycle``)."""

    def run(args: argparse.Namespace) -> int:
        name = f"dbmigrate {args.command}"
        try:
            return command(args)
        except Exception as exc:
            code = report_failure(exc, args, prefix=name, context=name)
            if code is None:
                raise
            return code

    run.__doc__ = command.__doc__
    return run
