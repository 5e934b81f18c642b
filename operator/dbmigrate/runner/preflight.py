"""``dbmigrate preflight``: the read-only checks before a migration, on their own.

Privileges, table sizes, index build estimates (sampled), long transactions, blockers and the
probe queries' baseline plans, against the pending files of ``--migrations``. The operator's
Jobs run these checks inside the plan step (``dbmigrate plan --preflight``, which takes the same
options); this command runs them alone. Reports ``preflight``; exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import KEY_PREFLIGHT
from dbmigrate.runner.context import StepContext, migration_set
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import add_migrations, add_output, add_probes, add_run_options

if TYPE_CHECKING:
    from dbmigrate.engine.preflight import PreflightOptions

STEP = "preflight"
SUMMARY = "check privileges, sizes, estimates, blockers"


def add_check_options(parser: argparse.ArgumentParser) -> None:
    """The thresholds of the checks and the probes (shared with ``plan --preflight``)."""
    parser.add_argument("--large-table-rows", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--long-transaction-seconds", type=float, default=60.0, metavar="S")
    parser.add_argument("--duplicate-timeout-ms", type=int, default=30_000, metavar="MS")
    parser.add_argument(
        "--no-sample-builds", action="store_true", help="estimate from formulas only"
    )
    add_probes(parser)


def check_options(args: argparse.Namespace) -> PreflightOptions:
    """The engine's options from ``add_check_options``'s flags."""
    from dbmigrate.engine import preflight
    from dbmigrate.runner.options import probe_list

    return preflight.PreflightOptions(
        large_table_rows=args.large_table_rows,
        long_transaction_seconds=args.long_transaction_seconds,
        duplicate_check_timeout_ms=args.duplicate_timeout_ms,
        sample_builds=not args.no_sample_builds,
        probes=probe_list(args),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate preflight``."""
    add_run_options(parser)
    add_migrations(parser)
    add_output(parser)
    add_check_options(parser)


def run(ctx: StepContext) -> int:
    """Run the checks against the pending files; report ``preflight``."""
    from dbmigrate.engine import history, preflight
    from dbmigrate.engine.connect import connect
    from dbmigrate.runner.render import finish

    options = check_options(ctx.args)
    migrations = migration_set(ctx.args)
    with connect(ctx.conninfo, STEP, ctx.run_id) as conn:
        done = {r.version for r in history.read_history(conn) if r.status == "applied"}
        pending = [m for m in migrations if m.version not in done]
        result = preflight.run_preflight(conn, pending, options)
    ctx.report(KEY_PREFLIGHT, result)
    finish(ctx, result)
    return EXIT_OK if result.passed else EXIT_FAILED


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate preflight``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
