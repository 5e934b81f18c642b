"""What a running step works with: its options, its database connection string, where it reports.

The database is reached the same way by every step, by hand or in a Job: ``--database-url``, else
env ``DATABASE_URL``, else, when any of libpq's own variables is set (``PGHOST``, ``PGDATABASE``,
``PGSERVICE``, ...), an empty conninfo so that libpq reads them (a Job sets them from the
Secret's keys, never on the command line). With none of these the step exits 2 saying what to set.

With ``--report-to NAMESPACE/NAME`` the step also reads that resource's status for its context:
the versions this run applied, the preflight's probe baseline, the backup's sha256. A flag given
on the command line (``--versions``, ``--baseline``, ``--sha256``) wins over the status.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbmigrate.api.base import ApiModel
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.reporting import Reporter

if TYPE_CHECKING:
    from dbmigrate.engine.sources import MigrationSet

# libpq's environment variables that name a server, a database or a user: any one of them is
# enough for libpq to try a connection of its own.
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")

NO_DATABASE = (
    "no database: give --database-url, set DATABASE_URL, or set libpq's variables "
    "(PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD, or PGSERVICE)"
)


def conninfo_from(args: argparse.Namespace) -> str:
    """The connection string of the step (see the module docstring); raises StepError (exit 2)
    when nothing names a database. The URL is checked (never quoted) before anything runs."""
    url = args.database_url or os.environ.get("DATABASE_URL")
    if url:
        from dbmigrate.engine.connect import check_conninfo

        check_conninfo(url)
        return str(url)
    if any(os.environ.get(name) for name in LIBPQ_ENV):
        return ""
    raise StepError(NO_DATABASE)


def migration_set(args: argparse.Namespace) -> MigrationSet:
    """The files of ``--migrations`` (read before connecting: a bad folder is exit 2 at once)."""
    if not args.migrations:
        raise StepError("give --migrations DIR (the folder of NNN_name.sql files)")
    from dbmigrate.engine.sources import load_directory

    return load_directory(args.migrations)


def say(text: str) -> None:
    """A line of the readable summary (the Job's log, or the terminal)."""
    print(text, flush=True)


@dataclass
class StepContext:
    """What every step's run function receives."""

    args: argparse.Namespace
    reporter: Reporter
    conninfo: str
    _status: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str | None:
        """``--run-id``, if given (a Job always gives it)."""
        value = getattr(self.args, "run_id", None)
        return str(value) if value else None

    @property
    def resource(self) -> tuple[str, str] | None:
        """(namespace, name) of the resource reported into, if any."""
        target = getattr(self.args, "report_to", None)
        if not target or "/" not in target:
            return None
        namespace, name = target.split("/", 1)
        return namespace, name

    @property
    def logs(self) -> bool:
        """Whether the step writes log lines (a Job's log) rather than a terminal's live view."""
        return bool(getattr(self.args, "log_format", None))

    def report(self, key: str, model: ApiModel) -> None:
        self.reporter.result(key, model)

    def report_all(self, parts: dict[str, ApiModel]) -> None:
        """Several results in one status write."""
        self.reporter.results(parts)

    def progress(self, key: str, model: ApiModel) -> None:
        self.reporter.progress(key, model)

    def resource_status(self) -> dict[str, Any]:
        """The resource's current status (read once), {} when not reporting to one."""
        if self._status is None:
            read = getattr(self.reporter, "read_status", None)
            self._status = (read() or {}) if read is not None else {}
        return self._status
