"""``dbmigrate backup``: pg_dump, read the archive back, hash it, keep the newest few.

One command by hand and in the backup Job. The backup is named after its identity: the resource
of ``--report-to`` (so retention counts per resource, whatever ``--name`` says, as the Job has
always done), else ``--name``, else the database's name. ``--dir`` must exist, unless
``--create-dir`` is given: then it is created, inside a volume that must be mounted two folders
up (the Job's ``/backups`` of ``/backups/NAMESPACE/NAME``), so that a missing volume fails the
step instead of filling the container's own disk. Reports ``backup``; exit 1 when the archive
does not read back.

The Job runs ``dbmigrate backup --report-to NS/NAME --run-id R --dir /backups/NS/NAME
--create-dir --format custom|directory --jobs N --keep N``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import KEY_BACKUP, STEP_BACKUP, Step
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.context import StepContext
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import add_migrations, add_output, add_pg_bin, add_run_options

STEP: Step = STEP_BACKUP
SUMMARY = "pg_dump, read back, hash, retention"

JOB_DEFAULTS: dict[str, Any] = {"create_dir": True}  # the Job's folder is made on the volume
JOB_REQUIRED = ("run_id",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate backup`` (old Job spellings: ``--backup-*``)."""
    add_run_options(parser)
    add_output(parser)
    add_pg_bin(parser)
    add_migrations(parser, used=False)
    add = parser.add_argument
    add("--dir", "--backup-dir", dest="dir", required=True, help="folder to write into")
    add(
        "--create-dir",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="create --dir when missing; the volume two folders up must exist (default off)",
    )
    add(
        "--format",
        "--backup-format",
        dest="format",
        choices=("custom", "directory"),
        default="custom",
    )
    add("--jobs", "--backup-jobs", dest="jobs", type=int, default=1, help="parallel pg_dump jobs")
    add(
        "--name",
        "--backup-name",
        dest="name",
        help="identity of the backups, e.g. NAMESPACE/NAME (default: the resource of "
        "--report-to, else the database's name)",
    )
    add("--keep", type=int, default=5, help="newest backups of this identity to keep")
    add("--protect", action="append", default=[], metavar="PATH")
    add(
        "--verify-data",
        action="store_true",
        help="also read every data block back (pg_restore -f /dev/null), not only the list",
    )


def _folder(args: argparse.Namespace) -> str:
    folder = Path(args.dir)
    if args.create_dir and not folder.is_dir():
        volume = folder.parent.parent
        if not volume.is_dir():
            raise StepError(f"backup volume {volume} is not mounted; check spec.backup.pvcName")
        folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _identity(ctx: StepContext) -> str:
    if ctx.resource is not None:
        return "/".join(ctx.resource)
    if ctx.args.name:
        return str(ctx.args.name)
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(ctx.conninfo).get("dbname") or os.environ.get("PGDATABASE")
    return str(dbname or "db")


def run(ctx: StepContext) -> int:
    """Take the backup; report ``backup``."""
    from dbmigrate.engine.undo import backup
    from dbmigrate.runner.render import finish

    args = ctx.args
    options = backup.BackupOptions(
        folder=_folder(args),
        identity=_identity(ctx),
        format=args.format,
        jobs=args.jobs,
        keep=args.keep,
        protect=tuple(args.protect),
        pg_bin=args.pg_bin,
        verify_data=args.verify_data,
    )
    evidence = backup.take_backup(ctx.conninfo, options)
    ctx.report(KEY_BACKUP, evidence)
    finish(ctx, evidence)
    return EXIT_OK if evidence.verified else EXIT_FAILED


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate backup``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
