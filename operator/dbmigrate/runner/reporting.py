"""Where a step's progress and result go: the console always, the resource's status in a Job.

A step command calls ``add_reporting_args`` on its parser and ``reporter_from_args`` when it runs,
then ``reporter.progress(key, model)`` while it works and ``reporter.result(key, model)`` at the
end. ``key`` is the step's own status key (``backup``, ``apply``, ...): each status writer owns its
subtree. In a Job the operator passes ``--report-to NAMESPACE/NAME`` and the reporter also patches
``databasemigrations/status`` of that resource (see ``dbmigrate.runner.status_report``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Protocol

from dbmigrate.api.base import ApiModel
from dbmigrate.api.exitcodes import EXIT_USAGE


class Reporter(Protocol):
    """Receives a step's live progress and its final result."""

    def progress(self, key: str, model: ApiModel) -> None: ...

    def result(self, key: str, model: ApiModel) -> None: ...

    def results(self, parts: dict[str, ApiModel]) -> None: ...


class ConsoleReporter:
    """Reports nothing beyond what the command prints itself; the default outside a Job."""

    def progress(self, key: str, model: ApiModel) -> None:
        """Progress is drawn by the command's own progress bar."""

    def result(self, key: str, model: ApiModel) -> None:
        """The result is printed by the command itself."""

    def results(self, parts: dict[str, ApiModel]) -> None:
        """The results are printed by the command itself."""


def add_reporting_args(parser: argparse.ArgumentParser) -> None:
    """The options every step command shares for reporting into a resource's status."""
    parser.add_argument(
        "--report-to",
        metavar="NAMESPACE/NAME",
        help="also write progress and result into this DatabaseMigration's status (used by Jobs)",
    )


def reporter_from_args(args: argparse.Namespace) -> Reporter:
    """A console reporter, or one that also patches the named resource's status."""
    target = getattr(args, "report_to", None)
    if not target:
        return ConsoleReporter()
    if "/" not in target:
        print(f"--report-to wants NAMESPACE/NAME, got {target!r}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    module = importlib.import_module("dbmigrate.runner.status_report")
    namespace, name = target.split("/", 1)
    reporter: Reporter = module.StatusReporter(namespace=namespace, name=name)
    return reporter
