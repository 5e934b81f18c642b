"""``dbmigrate rollback``: drop what a run created, or restore its backup, and verify.

One command by hand and in the rollback Job. ``--strategy`` takes the CRD's values
(``DropCreatedObjects``, ``RestoreBackup``) and the short ones (``drop``, ``restore``). Which
versions it undoes: ``--versions``, else with ``--this-run`` (the default with ``--report-to``)
the versions ``--run-id`` applied according to the history (none: nothing to roll back, exit 0),
else the last run's. The backup's expected sha256 is ``--sha256``, else the status's
``backup.sha256``. Reports ``rollback``; exit 1 when the rollback cannot be verified.

The Job runs ``dbmigrate rollback --report-to NS/NAME --run-id R --strategy S --lock-timeout D``,
with ``--backup PATH --jobs N`` for RestoreBackup.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import KEY_BACKUP, KEY_ROLLBACK, STEP_ROLLBACK, Step
from dbmigrate.runner.context import StepContext
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import (
    add_duration,
    add_migrations,
    add_output,
    add_pg_bin,
    add_run_options,
    add_this_run,
    this_run,
    version_list,
)

if TYPE_CHECKING:
    from dbmigrate.api.evidence import RollbackRecord
    from dbmigrate.engine.undo.rollback import Strategy

STEP: Step = STEP_ROLLBACK
SUMMARY = "drop what the run created, or restore the backup"

STRATEGIES: dict[str, Strategy] = {
    "drop": "dropCreatedObjects",
    "DropCreatedObjects": "dropCreatedObjects",
    "restore": "restoreBackup",
    "RestoreBackup": "restoreBackup",
}
MANUAL_RUN_ID = "manual-rollback"

JOB_DEFAULTS: dict[str, Any] = {"lock_timeout": "5s", "this_run": True}
JOB_REQUIRED = ("run_id", "strategy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate rollback`` (old Job spellings accepted)."""
    add_run_options(parser)
    add_output(parser)
    add_pg_bin(parser)
    add_migrations(parser, used=False)
    add = parser.add_argument
    add("--strategy", choices=tuple(STRATEGIES), default="drop", help="default drop")
    add("--backup", "--backup-path", dest="backup", metavar="PATH", help="backup to restore")
    add("--sha256", help="expected sha256 of the backup (default: the status's backup)")
    add("--into-database", metavar="NAME", help="restore into a new database")
    add("--jobs", "--restore-jobs", dest="jobs", type=int, default=1, help="pg_restore jobs")
    add("--versions", help="comma-separated versions (default: see --this-run)")
    add_this_run(parser, "undo")
    add_duration(parser, "--lock-timeout", "10s", "lock_timeout of the DROP statements")
    add_duration(
        parser, "--statement-timeout", None, "accepted for the old job command line; not used"
    )


def _nothing_to_roll_back(strategy: Strategy, dbname: str) -> RollbackRecord:
    from dbmigrate.api.evidence import RollbackRecord

    return RollbackRecord(
        strategy=strategy,
        target_database=dbname,
        duration_seconds=0.0,
        verified=True,
        message="nothing to roll back: this run applied no version (the history table has no "
        "row written by it)",
    )


def _run_versions(ctx: StepContext) -> tuple[list[int], str]:
    """The versions ``--run-id`` applied that can be rolled back, and the database's name."""
    from dbmigrate.engine import history
    from dbmigrate.engine.connect import connect
    from dbmigrate.engine.undo import rollback

    with connect(ctx.conninfo, STEP, ctx.run_id) as conn:
        rows = history.read_history(conn) if history.history_exists(conn) else []
        versions = [
            r.version
            for r in rows
            if r.applied_by == ctx.run_id and r.status in rollback.ROLLABLE_STATUSES
        ]
        return versions, str(conn.info.dbname)


def run(ctx: StepContext) -> int:
    """Undo the chosen versions; report ``rollback``."""
    from dbmigrate.engine.undo import rollback
    from dbmigrate.runner.render import finish

    args = ctx.args
    strategy = STRATEGIES[args.strategy]
    versions = version_list(args.versions)
    record: RollbackRecord | None = None
    if versions is None and this_run(args):
        versions, dbname = _run_versions(ctx)
        record = None if versions else _nothing_to_roll_back(strategy, dbname)
    if record is None:
        sha256 = args.sha256 or (ctx.resource_status().get(KEY_BACKUP) or {}).get("sha256")
        record = rollback.rollback(
            ctx.conninfo,
            strategy,
            run_id=ctx.run_id or os.environ.get("DBMIGRATE_RUN_ID") or MANUAL_RUN_ID,
            versions=versions,
            backup_path=args.backup,
            into_database=args.into_database,
            jobs=args.jobs,
            pg_bin=args.pg_bin,
            expected_sha256=sha256,
            lock_timeout=f"{args.lock_timeout}ms",
        )
    ctx.report(KEY_ROLLBACK, record)
    finish(ctx, record)
    return EXIT_OK if record.verified else EXIT_FAILED


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate rollback``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
