"""How the step commands fail: a clear message on stderr and the documented exit code.

2 for bad input, 1 when the step ran and failed, 3 when the database is unavailable; passwords
are scrubbed from every message. The error classes are imported only when a command fails, so a
command that succeeds never loads the SQL parser or the models it cannot fail in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from dbmigrate.engine.pgtools import StepError

EXIT_USAGE = 2


def scrub(message: str, args: argparse.Namespace) -> str:
    """The message, still readable, without passwords: those in URLs or ``password=`` settings,
    and the --database-url's own password wherever it appears."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from dbmigrate.logging_setup import MASK, redact

    url = getattr(args, "database_url", None)
    try:
        password = conninfo_to_dict(url).get("password") if url else None
    except psycopg.ProgrammingError:
        password = None
    text = redact(message)
    return text.replace(str(password), MASK) if password else text


def report_failure(
    exc: Exception, args: argparse.Namespace, prefix: str = "error", context: str | None = None
) -> int | None:
    """Print a failure the steps expect (``prefix: message``) and return its exit code; None for
    anything else. Both the hand-run commands and ``dbmigrate job <step>`` go through here, so a
    failure exits with the same code either way. ``context`` names the command in database
    errors (default ``dbmigrate <command>``)."""
    import psycopg
    from pglast.parser import ParseError
    from pydantic import ValidationError

    from dbmigrate.engine.errors import MigrationError, from_database_error
    from dbmigrate.engine.sources import MigrationSourceError

    if isinstance(exc, StepError | MigrationError):
        print(f"{prefix}: {scrub(str(exc), args)}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, MigrationSourceError | ValidationError | ParseError):
        print(f"{prefix}: {scrub(str(exc), args)}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, psycopg.Error):
        err = from_database_error(exc, context or f"dbmigrate {args.command}")
        print(f"{prefix}: {scrub(str(err), args)}", file=sys.stderr)
        return err.exit_code
    return None


def guarded(step: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the engine's exceptions into a clear message and the documented exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return step(args)
        except Exception as exc:
            code = report_failure(exc, args)
            if code is None:
                raise
            return code

    return run
