"""``dbmigrate watch``: sample the database through a window after a migration and compare it
with the window before; the verdict NoRegression, Regressed, Inconclusive or Unavailable.

One command by hand and in the watch Job the operator starts after a run Succeeded (with
``spec.watch``). The baseline (the before window: two snapshots) is ``--baseline FILE`` (the JSON
of ``{"start": SNAPSHOT, "end": SNAPSHOT}``), else, with ``--report-to``, the run's
``status.watch.runStart`` and ``.beforeApply`` that the plan and apply steps sampled. It samples
every ``--interval`` for ``--duration`` (``engine.after.watching``: each sample on a short
connection, bounded by a statement timeout, top-N statements, never a reset of the counters) and
ends early on a regression. With ``--report-to`` every sample's comparison is reported into
``status.watch`` (state Watching) and the verdict at the end (state Done); the watch stops, saying
so, when the resource has started another run meanwhile.

Thresholds: env DBMIGRATE_WATCH (spec.watch as JSON, as the Job passes it), else the defaults;
``--min-calls`` and ``--ratio`` override. Exit 0 with a verdict reported (1 by hand when it is
Regressed), 2 on bad input, 3 when the database cannot be reached at all.

The Job runs ``dbmigrate watch --report-to NS/NAME --run-id R --duration D --interval D``, with
spec.watch in env DBMIGRATE_WATCH and the probes in env DBMIGRATE_PROBES.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import KEY_APPLY, KEY_WATCH, STEP_WATCH, Step
from dbmigrate.engine.pgtools import StepError
from dbmigrate.runner.context import StepContext, say
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import add_duration, add_output, add_run_options

if TYPE_CHECKING:
    from dbmigrate.api.spec import WatchSpec
    from dbmigrate.api.status import WatchProgress
    from dbmigrate.api.watch import Baseline, WatchReport

STEP: Step = STEP_WATCH
SUMMARY = "compare query times after a migration with before it (the performance watch)"


class RunChanged(Exception):
    """The resource started another run while this watch sampled: its verdict would be
    written into the new run's status, so the watch stops."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate watch``."""
    add_run_options(parser)
    add_output(parser)
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help='JSON of the before window, {"start": SNAPSHOT, "end": SNAPSHOT} (default with '
        "--report-to: status.watch.runStart and .beforeApply)",
    )
    add_duration(parser, "--duration", None, "how long to sample (default: spec.watch's, 15m)")
    add_duration(parser, "--interval", None, "time between samples (default: spec.watch's, 1m)")
    parser.add_argument("--min-calls", type=int, metavar="N", help="calls needed per window")
    parser.add_argument("--ratio", type=float, metavar="R", help="mean after/before: slower")
    parser.add_argument(
        "--to-end",
        action="store_true",
        help="watch the whole duration even after a regression (default: stop at once)",
    )


def settings_from(args: argparse.Namespace) -> WatchSpec:
    """spec.watch (env DBMIGRATE_WATCH or the defaults) with the command line's overrides."""
    from dbmigrate.runner.baseline import watch_settings

    watch = watch_settings()
    thresholds: dict[str, Any] = {}
    if args.min_calls is not None:
        thresholds["min_calls"] = args.min_calls
    if args.ratio is not None:
        thresholds["ratio"] = args.ratio
    try:
        checked = type(watch.thresholds).model_validate(
            {**watch.thresholds.model_dump(), **thresholds}
        )
    except ValueError as exc:
        raise StepError(f"bad threshold: {exc}") from exc
    return watch.model_copy(update={"thresholds": checked})


def baseline_of(ctx: StepContext) -> tuple[Baseline | None, str]:
    """The before window, or None and why there is none."""
    from dbmigrate.api.watch import Baseline, Snapshot

    if ctx.args.baseline:
        try:
            data = json.loads(Path(ctx.args.baseline).read_text(encoding="utf-8"))
            return Baseline.model_validate(data), ""
        except (OSError, ValueError) as exc:
            raise StepError(f"cannot read baseline {ctx.args.baseline}: {exc}") from exc
    watch = ctx.resource_status().get(KEY_WATCH) or {}
    start, end = watch.get("runStart"), watch.get("beforeApply")
    if not start or not end:
        why = watch.get("baselineNote") or (
            "no baseline: the plan and apply steps did not sample the database "
            "(status.watch.runStart and .beforeApply)"
            if ctx.resource
            else "no baseline: give --baseline FILE (the before window)"
        )
        return None, str(why)
    return Baseline(start=Snapshot.model_validate(start), end=Snapshot.model_validate(end)), ""


def new_indexes(status: dict[str, Any]) -> list[tuple[str, str]] | None:
    """(schema, index) of every index this run created (status.apply); None by hand."""
    apply = status.get(KEY_APPLY)
    if not apply:
        return None
    return [
        (obj.get("schema") or "public", obj["name"])
        for version in apply.get("versions") or []
        if version.get("status") == "applied"
        for obj in version.get("createdObjects") or []
        if obj.get("kind") == "index"
    ]


def _still_this_run(ctx: StepContext) -> None:
    """Raise RunChanged when the resource's status belongs to another run now."""
    read = getattr(ctx.reporter, "read_status", None)
    if read is None or ctx.run_id is None:
        return
    status = read()
    if status is not None and status.get("runId") not in (None, ctx.run_id):
        raise RunChanged(f"the resource is at run {status.get('runId')} now")


def run(ctx: StepContext) -> int:
    """Sample through the window, report every comparison, then the verdict."""
    from dbmigrate.api.durations import duration_seconds
    from dbmigrate.api.status import WatchProgress
    from dbmigrate.api.watch import WatchReport
    from dbmigrate.engine.after.watching import WatchSettings, watch
    from dbmigrate.engine.connect import connect
    from dbmigrate.runner.baseline import env_probes

    args = ctx.args
    spec = settings_from(args)
    duration = args.duration / 1000 if args.duration else duration_seconds(spec.duration)
    interval = args.interval / 1000 if args.interval else duration_seconds(spec.interval)
    started = datetime.now(UTC)
    progress = WatchProgress(
        state="Watching",
        started_at=started,
        ends_at=started + timedelta(seconds=duration),
        interval_seconds=interval,
    )
    baseline, why = baseline_of(ctx)
    if baseline is None:
        report = WatchReport(verdict="Unavailable", reason=why, thresholds=spec.thresholds)
        return _finish(ctx, progress, report)
    ctx.report(KEY_WATCH, progress)
    say(f"watching for {duration:.0f}s, a sample every {interval:.0f}s")

    def on_sample(report: WatchReport) -> None:
        _still_this_run(ctx)
        now = datetime.now(UTC)
        sampled = progress.model_copy(
            update={"samples": report.samples, "last_sample_at": now, "report": report}
        )
        ctx.progress(KEY_WATCH, sampled)
        say(f"  sample {report.samples}: {report.verdict} ({report.reason})")

    settings = WatchSettings(
        duration_seconds=duration,
        interval_seconds=interval,
        thresholds=spec.thresholds,
        probes=env_probes(),
        new_indexes=new_indexes(ctx.resource_status()),
        stop_on_regression=not args.to_end,
    )
    try:
        report = watch(
            lambda: connect(ctx.conninfo, STEP, ctx.run_id), baseline, settings, on_sample
        )
    except RunChanged as exc:
        say(f"watch stopped: {exc}; its verdict would belong to another run")
        return EXIT_OK
    return _finish(ctx, progress, report)


def _finish(ctx: StepContext, progress: WatchProgress, report: WatchReport) -> int:
    done = progress.model_copy(
        update={"state": "Done", "samples": report.samples, "report": report}
    )
    ctx.report(KEY_WATCH, done)
    if ctx.args.output == "json":
        from dbmigrate.runner.render import print_json

        print_json(report.to_wire())
    else:
        say("\n".join(report_text(report)))
    regressed = report.verdict == "Regressed"
    return EXIT_FAILED if regressed and not ctx.resource else EXIT_OK


def report_text(report: WatchReport) -> list[str]:
    """The verdict for a person: the windows, the offenders, what got faster, what is missing."""
    lines = [f"performance watch: {report.verdict}: {report.reason}"]
    for name, window in (("before", report.before), ("after", report.after)):
        if window is not None:
            lines.append(f"  {name} window: {window.seconds:.0f}s from {window.start:%H:%M:%S}")
    lines.append(f"  samples: {report.samples}, queries compared: {report.compared}")
    for title, rows in (("slower", report.offenders), ("faster", report.improved)):
        for row in rows:
            lines.append(
                f"  {title}: {row.mean_before_ms:.2f} ms -> {row.mean_after_ms:.2f} ms "
                f"(x{row.ratio:.2f}, {row.calls_before}/{row.calls_after} calls) {row.query}"
            )
    for probe in report.probes:
        if probe.before_ms is not None and probe.after_ms is not None:
            lines.append(
                f"  probe {probe.probe}: {probe.before_ms:.2f} ms -> {probe.after_ms:.2f} ms"
            )
    if report.unused_new_indexes:
        lines.append(f"  new indexes not scanned: {', '.join(report.unused_new_indexes)}")
    lines += [f"  missing: {what}" for what in report.missing]
    return lines


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate watch``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
