"""``dbmigrate rollback-check``: the dry run of a rollback on demand, against the database.

Before a rollback asked for after a successful run (a MigrationRollback), the operator runs this
check in a Job, since it never connects to PostgreSQL itself: the data-loss preflight of the
strategy (``engine.undo.dataloss``) and what would refuse the rollback (the backup missing or
failing its checksum, a newer version applied on top, the migration lock held). It changes
nothing. With ``--report-to`` it reads the run's backup evidence (path, sha256, the table
counters and WAL position at backup time) from the resource's status and writes
``status.rollbackCheck``; by hand it prints the same report (``--output json``: the model).

The Job runs ``dbmigrate rollback-check --report-to NS/NAME --run-id R --request REQUEST
--strategy S`` (the backup PVC mounted read-only for RestoreBackup; the backup's path is the
status's, ``--backup`` names another). Exit 0 when
the check ran (its findings are in the report), 2 on bad input, 3 when the database cannot be
reached.
"""

from __future__ import annotations

import argparse
from typing import Any

from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.api.stepnames import KEY_BACKUP, KEY_ROLLBACK_CHECK, STEP_ROLLBACK_CHECK
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.context import StepContext
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import add_output, add_run_options

SUMMARY = "what a rollback on demand would lose, and whether it can run (changes nothing)"
STRATEGIES = {
    "drop": "DropCreatedObjects",
    "DropCreatedObjects": "DropCreatedObjects",
    "restore": "RestoreBackup",
    "RestoreBackup": "RestoreBackup",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate rollback-check``."""
    add_run_options(parser)
    add_output(parser)
    add = parser.add_argument
    add("--strategy", choices=tuple(STRATEGIES), default="drop", help="default drop")
    add("--request", default="manual", help="the MigrationRollback this check is for")
    add("--backup", "--backup-path", dest="backup", metavar="PATH", help="the backup, here")


def _backup(ctx: StepContext) -> Any:
    from dbmigrate.api.evidence import BackupEvidence

    recorded = ctx.resource_status().get(KEY_BACKUP)
    if recorded:
        return BackupEvidence.model_validate(recorded)
    return None


def run(ctx: StepContext) -> int:
    """Run the check; report ``rollbackCheck``."""
    from dbmigrate.engine.connect import connect
    from dbmigrate.engine.undo import dataloss
    from dbmigrate.runner.render import print_json

    args = ctx.args
    if not ctx.run_id:
        raise StepError("give --run-id: the run whose rollback is checked")
    given = dataloss.CheckInput(
        request=args.request,
        strategy=STRATEGIES[args.strategy],  # type: ignore[arg-type]
        run_id=ctx.run_id,
        backup=_backup(ctx),
        backup_path=args.backup,
    )
    with connect(ctx.conninfo, STEP_ROLLBACK_CHECK, ctx.run_id) as conn:
        result = dataloss.check(conn, given)
    ctx.report(KEY_ROLLBACK_CHECK, result)
    if args.output == "json":
        print_json(result.to_wire())
    else:
        loss = result.data_loss
        print(f"rollback check ({result.strategy}) of run {ctx.run_id}: {loss.summary}")
        for table in loss.tables:
            since = table.rows_written_since_backup
            extra = "" if since is None else f", {since} written since the backup"
            print(f"  {table.table}: {table.rows} row(s){extra}")
        for name in result.indexes_to_rebuild:
            print(f"  index {name}: dropped by the run, built again by the rollback")
        for problem in result.problems:
            print(f"  REFUSED: {problem}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate rollback-check``."""
    add_step_parser(subparsers, STEP_ROLLBACK_CHECK, SUMMARY, add_arguments, run)
