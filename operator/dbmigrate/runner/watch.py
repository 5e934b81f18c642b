"""``dbmigrate watch``: the "after" of the guide's before-and-after, and the verdict.

Samples the database every ``--interval`` for ``--duration`` after a migration and compares each
query's mean time with the baseline ``dbmigrate snapshot`` wrote (``--baseline FILE``): the
verdict NoRegression, Regressed, Inconclusive or Unavailable, the offenders, the improved
queries, the new indexes and whether they were scanned, the database-wide deltas and the probes'
times, as text or JSON (``--output``). A Regressed verdict ends the watch at once (unless
``--until-end``) and exits 1; the other verdicts exit 0 with the verdict printed: too few calls
or no pg_stat_statements is no reason to fail a pipeline, and Regressed is the one a script acts
on.

It is also the operator's watch step: ``dbmigrate watch --report-to NS/NAME --run-id R
--duration D --interval D`` and the thresholds of spec.watch as flags, the probes in env
DBMIGRATE_PROBES. Without ``--baseline`` the baseline is then the run's own (the plan and apply
steps sampled it into the status), every sample and the verdict are reported into
``status.watch`` (``resource_watch``), and it exits 0 with any verdict reported: the operator acts
on the status, not on the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.context import StepContext, say
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import add_duration, add_output, add_run_options, add_sampling

if TYPE_CHECKING:
    import psycopg

    from dbmigrate.api.watch import Baseline, WatchReport, WatchThresholds
    from dbmigrate.engine.after.watching import Connector

STEP = "watch"
SUMMARY = "compare query times after a migration with a baseline: the performance verdict"


def add_thresholds(parser: argparse.ArgumentParser) -> None:
    """When a query counts as regressed (the spec's ``watch`` thresholds, same defaults)."""
    from dbmigrate.api.watch import WatchThresholds

    d = WatchThresholds()
    group = parser.add_argument_group("thresholds (a query regressed only when all hold)")
    group.add_argument(
        "--min-calls",
        type=int,
        default=d.min_calls,
        metavar="N",
        help="calls needed in each window (default %(default)s)",
    )
    group.add_argument(
        "--ratio",
        type=float,
        default=d.ratio,
        metavar="X",
        help="mean after / before that is a slowdown (default %(default)s)",
    )
    group.add_argument(
        "--min-delta-ms",
        type=float,
        default=d.min_delta_ms,
        metavar="MS",
        help="slowdown per call that counts (default %(default)s)",
    )
    group.add_argument(
        "--min-share-percent",
        type=float,
        default=d.min_share_percent,
        metavar="P",
        help="share of the after window's time that makes it matter (default %(default)s), or:",
    )
    group.add_argument(
        "--min-extra-ms-per-hour",
        type=float,
        default=d.min_extra_ms_per_hour,
        metavar="MS",
        help="extra time per hour that makes it matter (default %(default)s)",
    )
    group.add_argument(
        "--min-t-score",
        type=float,
        default=d.min_t_score,
        metavar="T",
        help="Welch's t of the slowdown, so outliers are no regression; 0: off "
        "(default %(default)s)",
    )
    group.add_argument(
        "--min-baseline-seconds",
        type=int,
        default=d.min_baseline_seconds,
        metavar="S",
        help="shortest before window compared (default %(default)s)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate watch``."""
    add_run_options(parser)
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="the baseline dbmigrate snapshot wrote before the migration (required but with "
        "--report-to, where the run's own baseline in status.watch is the default)",
    )
    add_duration(parser, "--duration", "15m", "how long to watch after the migration")
    add_duration(parser, "--interval", "1m", "how often to sample")
    parser.add_argument(
        "--until-end",
        action="store_true",
        help="watch the whole --duration even after a Regressed verdict",
    )
    parser.add_argument(
        "--new-index",
        action="append",
        default=[],
        metavar="SCHEMA.INDEX",
        help="an index the migration created (repeatable; default: the indexes "
        "the baseline did not have)",
    )
    add_output(parser)
    add_sampling(parser)
    add_thresholds(parser)


def _flag(field: str) -> str:
    return "statement-timeout" if field == "statement_timeout_ms" else field.replace("_", "-")


def thresholds_from(args: argparse.Namespace) -> WatchThresholds:
    """The thresholds of the flags (``dbmigrate snapshot`` has only the sampling ones)."""
    from pydantic import ValidationError

    from dbmigrate.api.watch import WatchThresholds

    given = {
        name: getattr(args, name)
        for name in WatchThresholds.model_fields
        if getattr(args, name, None) is not None
    }
    given["statement_timeout_ms"] = args.statement_timeout
    try:
        return WatchThresholds(**given)
    except ValidationError as exc:
        problems = "; ".join(f"--{_flag(str(e['loc'][0]))}: {e['msg']}" for e in exc.errors())
        raise StepError(f"bad watch settings: {problems}") from exc


def connector(conninfo: str, purpose: str, run_id: str | None) -> Connector:
    """A fresh connection per sample (see ``engine.after.watching``)."""
    from dbmigrate.engine.connect import connect

    @contextlib.contextmanager
    def open_one() -> Iterator[psycopg.Connection]:
        with connect(conninfo, purpose, run_id) as conn:
            yield conn

    return open_one


def read_baseline(path: str) -> Baseline:
    """The baseline file ``dbmigrate snapshot`` wrote, or a StepError saying what is wrong."""
    from pydantic import ValidationError

    from dbmigrate.api.watch import Baseline

    try:
        return Baseline.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise StepError(f"cannot read --baseline {path}: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        raise StepError(
            f"--baseline {path} is not a baseline written by dbmigrate snapshot "
            f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})"
        ) from exc


def _new_indexes(values: list[str]) -> list[tuple[str, str]] | None:
    if not values:
        return None
    pairs = []
    for value in values:
        schema, dot, name = value.rpartition(".")
        if not (dot and schema and name):
            raise StepError(f"--new-index wants SCHEMA.INDEX, such as public.idx_x; got {value!r}")
        pairs.append((schema, name))
    return pairs


def run(ctx: StepContext) -> int:
    """Watch, compare, print the verdict; exit 1 when Regressed."""
    from dbmigrate.engine.after.watching import WatchSettings, watch
    from dbmigrate.engine.connect import connect
    from dbmigrate.runner.options import probe_list
    from dbmigrate.runner.verdict_text import progress_line

    args = ctx.args
    if not args.baseline and not ctx.resource:
        raise StepError("--baseline FILE is required (the file dbmigrate snapshot wrote)")
    if args.interval <= 0 or args.duration <= 0:
        raise StepError("--duration and --interval must be longer than zero, such as 15m and 1m")
    settings = WatchSettings(
        duration_seconds=args.duration / 1000,
        interval_seconds=args.interval / 1000,
        thresholds=thresholds_from(args),
        probes=probe_list(args),
        new_indexes=_new_indexes(args.new_index),
        stop_on_regression=not args.until_end,
    )
    sink = None
    if args.baseline:
        baseline: Baseline | None = read_baseline(args.baseline)
    else:  # the operator's watch step: the run's own baseline, reported into its status
        from dbmigrate.runner.resource_watch import StatusSink, baseline_from_status

        sink = StatusSink(ctx, settings.duration_seconds, settings.interval_seconds)
        baseline, why = baseline_from_status(ctx)
        if baseline is None:
            return _printed(ctx, sink.unavailable(why, settings.thresholds), sink)
        if settings.new_indexes is None:
            from dbmigrate.runner.resource_watch import run_new_indexes

            new = run_new_indexes(ctx.resource_status())
            settings = dataclasses.replace(settings, new_indexes=new)
    with connect(ctx.conninfo, STEP, ctx.run_id):
        pass  # a bad URL or an unreachable server fails here, at once
    text = args.output != "json"
    if text:
        say(f"watch: {args.duration / 1000:g}s, a sample every {args.interval / 1000:g}s")

    def show(report: WatchReport) -> None:
        if text:
            say(progress_line(report))
        if sink is not None:
            sink.sample(report)

    if sink is not None:
        sink.start()
    from dbmigrate.runner.resource_watch import RunChanged

    assert baseline is not None  # read from the file, or returned above without one
    try:
        report = watch(connector(ctx.conninfo, STEP, ctx.run_id), baseline, settings, show)
    except RunChanged as exc:
        say(f"watch stopped: {exc}; its verdict would belong to another run")
        return EXIT_OK
    if sink is not None:
        sink.finish(report)
    return _printed(ctx, report, sink)


def _printed(ctx: StepContext, report: WatchReport, sink: object | None) -> int:
    """Print the verdict; the exit code (1 for Regressed, but when reported to a resource)."""
    from dbmigrate.runner.render import print_json
    from dbmigrate.runner.verdict_text import report_text

    if ctx.args.output != "json":
        say("\n".join(report_text(report)))
    else:
        print_json(report.to_wire())
    reported = sink is not None
    return EXIT_FAILED if report.verdict == "Regressed" and not reported else EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate watch``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
