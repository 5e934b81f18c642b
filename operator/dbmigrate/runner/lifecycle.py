"""The life of one step run, the same for every step, by hand or in a Job.

``step_command(step, run)`` is the function argparse calls for ``dbmigrate <step>`` and for its
old spelling ``dbmigrate job <step>``. Around the step's own ``run(ctx)`` it:

- starts the log handler when the step writes a Job's log (``--log-format``, or ``--report-to``);
- turns SIGTERM into exit 3: the step runs as the container's PID 1, which the kernel shields from
  any signal it has no handler for, so without one the pod would be killed mid-statement at the
  end of its grace period. With it the step stops at once, cancelling what runs on the server
  (``StepTerminated`` is a KeyboardInterrupt, on which psycopg cancels), and the Job's next pod
  resumes where it stopped;
- maps failures to the documented exit codes (``failures.report_failure``);
- in a Job (``--report-to`` and env DBMIGRATE_JOB_NAME), writes ``status.stepExit`` last, so the
  operator need not wait for the Job controller to notice that the pod ended.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from dbmigrate.api.exitcodes import EXIT_UNAVAILABLE
from dbmigrate.api.labels import JOB_NAME_ENV
from dbmigrate.api.stepnames import KEY_STEP_EXIT
from dbmigrate.runner.context import StepContext, conninfo_from
from dbmigrate.runner.failures import report_failure
from dbmigrate.runner.options import EXIT_CODES
from dbmigrate.runner.reporting import reporter_from_args

StepRun = Callable[[StepContext], int]


class StepTerminated(KeyboardInterrupt):
    """SIGTERM reached the step (its pod is being evicted, drained or deleted). A subclass of
    KeyboardInterrupt so that psycopg cancels the statement running on the server, as on Ctrl-C,
    and the transaction rolls back instead of running on after the pod is gone."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise StepTerminated(signal.Signals(signum).name)


def command_name(args: argparse.Namespace, step: str) -> str:
    """How the step was called, for its messages: ``dbmigrate apply``, ``dbmigrate job apply``."""
    return (
        f"dbmigrate job {step}" if getattr(args, "command", None) == "job" else f"dbmigrate {step}"
    )


def step_command(step: str, run: StepRun) -> Callable[[argparse.Namespace], int]:
    """The argparse ``func`` of a step: ``run`` inside the lifecycle of the module docstring."""

    def command(args: argparse.Namespace) -> int:
        return run_step(step, run, args)

    command.__doc__ = run.__doc__
    return command


def _start_logging(args: argparse.Namespace) -> None:
    if args.log_format is None and args.report_to:
        args.log_format = "text"
    if args.log_format:
        from dbmigrate.logging_setup import configure_logging

        configure_logging(args.log_format, "INFO")


def run_step(step: str, run: StepRun, args: argparse.Namespace) -> int:
    """Run one step with the documented exit codes (see the module docstring)."""
    _start_logging(args)
    name = command_name(args, step)
    ctx = StepContext(args=args, reporter=reporter_from_args(args), conninfo="")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = _guarded_run(name, run, ctx)
    finally:
        signal.signal(signal.SIGTERM, previous)
    failures: list[str] = getattr(ctx.reporter, "failures", [])
    if args.report_to and not failures:
        report_exit(ctx, step, code)
    if failures:
        print(
            f"{name}: {len(failures)} status report(s) were lost; the last: {failures[-1]}",
            file=sys.stderr,
        )
    return code


def _guarded_run(name: str, run: StepRun, ctx: StepContext) -> int:
    try:
        ctx.conninfo = conninfo_from(ctx.args)
        return run(ctx)
    except StepTerminated as stop:
        print(
            f"{name}: stopped by {stop} (the pod is being evicted or deleted); what ran on the "
            "server was cancelled; the next pod of the Job resumes",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    except Exception as exc:
        failed = report_failure(exc, ctx.args, prefix=name, context=name)
        if failed is None:
            raise
        return failed


def report_exit(ctx: StepContext, step: str, code: int) -> None:
    """The step's last word, ``status.stepExit``: the operator need not wait for the Job
    controller to notice the pod ended (it batches pod updates by a second or more)."""
    job = os.environ.get(JOB_NAME_ENV)
    if not job:
        return  # run by hand: no Job to speak for
    from dbmigrate.api.status import StepExit

    ended = StepExit(job=job, step=step, exit_code=code, finished_at=datetime.now(UTC))
    ctx.report(KEY_STEP_EXIT, ended)


def add_step_parser(
    subparsers: argparse._SubParsersAction,
    step: str,
    summary: str,
    build: Callable[[argparse.ArgumentParser], None],
    run: StepRun,
) -> argparse.ArgumentParser:
    """Add the command of one step: its options (``build``) and its ``run`` in this lifecycle.
    ``dbmigrate <step>`` and ``dbmigrate job <step>`` are both made here."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        step,
        help=summary,
        description=summary,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build(parser)
    parser.set_defaults(func=step_command(step, run), step=step)
    return parser
