"""``dbmigrate snapshot``: the "before" of the guide's before-and-after, written to a file.

Takes two snapshots of the database's cumulative counters ``--window`` apart (pg_stat_statements
when installed, index, table and database counters, and the probes' median EXPLAIN ANALYZE
times) and writes them as one baseline (JSON) for ``dbmigrate watch --baseline FILE`` to compare
the after window with. Read-only and bounded (``--top-n`` statements, ``--statement-timeout``);
it never resets any statistics. A missing pg_stat_statements is said, not fatal: exit 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.context import StepContext, say
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import add_duration, add_run_options, add_sampling

STEP = "snapshot"
SUMMARY = "write a baseline of query, index and database counters (for dbmigrate watch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate snapshot``."""
    add_run_options(parser)
    parser.add_argument(
        "--output", "-o", required=True, metavar="FILE", help="where to write the baseline (JSON)"
    )
    add_duration(parser, "--window", "1m", "length of the before window (two snapshots apart)")
    add_sampling(parser)


def run(ctx: StepContext) -> int:
    """Sample the before window and write it to ``--output``."""
    from dbmigrate.engine.after.watching import take_baseline
    from dbmigrate.engine.connect import connect
    from dbmigrate.runner.options import probe_list
    from dbmigrate.runner.watch import connector, thresholds_from

    args = ctx.args
    target = Path(args.output)
    if not target.parent.is_dir():
        raise StepError(f"--output {target}: folder {target.parent} does not exist; create it")
    with connect(ctx.conninfo, STEP, ctx.run_id):
        pass  # a bad URL or an unreachable server fails here, before the window is waited out
    say(f"snapshot: sampling a {args.window / 1000:g}s before window")
    baseline = take_baseline(
        connector(ctx.conninfo, STEP, ctx.run_id),
        args.window / 1000,
        thresholds_from(args),
        probe_list(args),
    )
    target.write_text(baseline.model_dump_json(by_alias=True, indent=1), encoding="utf-8")
    end = baseline.end
    say(
        f"snapshot: wrote {target}: {len(end.statements)} statements (of {end.statements_count}),"
        f" {len(end.indexes)} indexes, {len(end.tables)} tables, {len(end.probes)} probes"
    )
    for note in end.missing:
        say(f"  missing: {note}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate snapshot``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
