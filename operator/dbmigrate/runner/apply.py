"""``dbmigrate apply``: apply the pending migrations safely, by hand or in the apply Job.

Under the database's migration lock: one transaction per file (or statement by statement,
resumable, for CONCURRENTLY and the like), lock and statement timeouts with retries,
invalid-index recovery, live progress. ``--plan-hash`` refuses a plan other than the approved one.
At a terminal the progress is a live bar on stderr; with ``--report-to`` (a Job) it is reported to
the status (``progress``, throttled) and logged as a line every few seconds. Reports ``apply``.

The Job runs ``dbmigrate apply --report-to NS/NAME --run-id R --migrations DIR --plan-hash H
--lock-timeout D --statement-timeout D --lock-retries N --retry-backoff D
--auto-concurrently|--no-auto-concurrently --lint-policy warn [--target V]``: the plan step
already gated on the spec's lint policy, so the apply only prints the findings.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.api.stepnames import KEY_APPLY, KEY_PROGRESS, STEP_APPLY, Step
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.context import StepContext, migration_set, say
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import (
    LINT_POLICIES,
    add_duration,
    add_migrations,
    add_output,
    add_run_options,
    add_target,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from dbmigrate.api.lint import LintFinding
    from dbmigrate.api.plan import ApplyProgress
    from dbmigrate.engine.settings import ApplySettings

STEP: Step = STEP_APPLY
SUMMARY = "apply the pending migrations safely"
PROGRESS_LINE_SECONDS = 5.0

# ``dbmigrate job apply``'s defaults: a Job runs unattended, so it retries more, rewrites CREATE
# INDEX to CONCURRENTLY and bounds a statement at 6 hours; lint only warns (the plan gated).
JOB_DEFAULTS: dict[str, Any] = {
    "lock_retries": 5,
    "statement_timeout": "6h",
    "auto_concurrently": True,
    "lint_policy": "warn",
}
JOB_REQUIRED = ("run_id", "migrations", "plan_hash")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate apply``."""
    add_run_options(parser)
    add_migrations(parser)
    add_output(parser)
    add_target(parser)
    add_duration(parser, "--lock-timeout", "5s", "lock_timeout of every statement, e.g. 5s")
    add_duration(
        parser,
        "--concurrent-lock-timeout",
        None,
        "lock_timeout of CONCURRENTLY and other autocommit statements, whose waits block no "
        "reads or writes; none: as --lock-timeout",
    )
    add_duration(
        parser, "--statement-timeout", "0", "statement_timeout of every statement; 0: none"
    )
    parser.add_argument(
        "--lock-retries",
        "--max-retries",
        dest="lock_retries",
        type=int,
        default=3,
        metavar="N",
        help="retries after a lock timeout or deadlock (default %(default)s)",
    )
    add_duration(parser, "--retry-backoff", "2s", "first wait between retries, doubling each time")
    add_duration(parser, "--lock-wait", "60s", "how long to wait for another run's migration lock")
    parser.add_argument(
        "--auto-concurrently",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="rewrite CREATE INDEX on existing tables to CREATE INDEX CONCURRENTLY "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--lint-policy",
        choices=LINT_POLICIES,
        default="strict",
        help="strict: lint errors refuse the run before anything runs; warn: print them; "
        "off: skip the linter (default %(default)s)",
    )
    parser.add_argument(
        "--plan-hash",
        metavar="HASH",
        help="refuse to apply unless the plan has this hash (the approved plan)",
    )


def _print_findings(findings: list[LintFinding]) -> None:
    for f in findings:
        print(f"{f.file}:{f.line}:{f.column}: {f.severity} {f.rule}: {f.message}", file=sys.stderr)


def settings_from(args: argparse.Namespace) -> ApplySettings:
    """The engine's settings from the options; a value it refuses is bad input (exit 2)."""
    from dbmigrate.engine.settings import ApplySettings

    try:
        return ApplySettings(
            target=args.target,
            lock_timeout_ms=args.lock_timeout,
            concurrent_lock_timeout_ms=args.concurrent_lock_timeout,
            statement_timeout_ms=args.statement_timeout,
            max_retries=args.lock_retries,
            retry_backoff_seconds=args.retry_backoff / 1000,
            lock_wait_seconds=args.lock_wait / 1000,
            auto_concurrently=args.auto_concurrently,
            lint_policy=args.lint_policy,
            expected_plan_hash=args.plan_hash,
            on_lint_findings=_print_findings,
        )
    except ValueError as exc:
        raise StepError(str(exc)) from exc


def _progress_lines(ctx: StepContext) -> Callable[[ApplyProgress], None]:
    """Report each progress sample; log a line every few seconds (a Job's log)."""
    last_line = [0.0]

    def on_progress(progress: ApplyProgress) -> None:
        ctx.progress(KEY_PROGRESS, progress)
        if time.monotonic() - last_line[0] >= PROGRESS_LINE_SECONDS:
            last_line[0] = time.monotonic()
            done = f" {progress.percent:.0f}%" if progress.percent is not None else ""
            say(
                f"  {progress.version}_{progress.name} statement {progress.statement_index}/"
                f"{progress.statements_total}{done} {progress.phase or ''}".rstrip()
            )

    return on_progress


def run(ctx: StepContext) -> int:
    """Apply the pending versions; report progress and ``apply``."""
    from dbmigrate.engine.apply import apply_migrations
    from dbmigrate.engine.errors import exit_code_for
    from dbmigrate.runner.migration_text import ProgressView, apply_text
    from dbmigrate.runner.render import print_json

    args = ctx.args
    migrations = migration_set(args)
    settings = settings_from(args)
    if ctx.logs:
        result = apply_migrations(
            ctx.conninfo, migrations, settings, ctx.run_id, _progress_lines(ctx)
        )
    else:
        view = ProgressView(enabled=args.output == "text")

        def on_progress(progress: ApplyProgress) -> None:
            view.update(progress)
            ctx.progress(KEY_PROGRESS, progress)

        with view:
            result = apply_migrations(ctx.conninfo, migrations, settings, ctx.run_id, on_progress)
    ctx.report(KEY_APPLY, result)
    if args.output == "json":
        print_json(result.to_wire())
    else:
        say("\n".join(apply_text(result)))
    return exit_code_for(result.error_code) if result.status == "failed" else EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate apply``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
