"""``dbmigrate job <step>``: the options of each step Job, the shared context, the exit codes.

The operator builds the command line (see ``commands.py`` for the contract); this module parses it
and hands a ``StepContext`` to the step functions of ``step_runs``. The database is reached with
``--database-url``, else env ``DATABASE_URL``, else an empty conninfo so libpq reads its own
``PG*`` variables (all set from ``secretKeyRef`` by the Job; never on the command line).

Exit codes: 0 the step succeeded, 1 it ran and failed (its result is in the status either way),
2 bad input, 3 unavailable (cannot connect, a lock or timeout: the Job may retry).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dbmigrate.api.base import ApiModel
from dbmigrate.api.exitcodes import EXIT_UNAVAILABLE
from dbmigrate.api.labels import JOB_NAME_ENV
from dbmigrate.runner.failures import report_failure
from dbmigrate.runner.reporting import ConsoleReporter, Reporter, reporter_from_args


def _duration(parser: argparse.ArgumentParser, flag: str, default: str) -> None:
    parser.add_argument(flag, default=default, metavar="D", help=f"duration (default {default})")


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target-version", type=int, default=None, metavar="V")


def add_step_args(step: str, parser: argparse.ArgumentParser) -> None:
    """The options of one step beyond the common ones (--report-to, --run-id, --migrations)."""
    add = parser.add_argument
    if step == "plan":
        add("--lint-policy", choices=("strict", "warn", "off"), default="strict")
        add("--large-table-rows", type=int, default=1_000_000)
        add("--explain-analyze", action="store_true", help="probe baseline with EXPLAIN ANALYZE")
        add(
            "--auto-concurrently",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="lint as the apply will run: plain CREATE INDEX is rewritten (default on)",
        )
        _target(parser)
    elif step == "backup":
        add("--backup-dir", required=True, help="folder on the mounted backup volume")
        add("--backup-name", required=True, help="name of this backup (the run id)")
        add("--backup-format", choices=("custom", "directory"), default="custom")
        add("--backup-jobs", type=int, default=1)
        add("--keep", type=int, default=5, help="newest backups of this resource to keep")
        add("--pg-bin", default=None, help="folder of pg_dump/pg_restore")
    elif step == "apply":
        add("--plan-hash", required=True, help="refuse to apply a plan with another hash")
        _duration(parser, "--lock-timeout", "5s")
        _duration(parser, "--statement-timeout", "6h")
        add("--lock-retries", type=int, default=5)
        _duration(parser, "--retry-backoff", "2s")
        add("--auto-concurrently", action=argparse.BooleanOptionalAction, default=True)
        add(
            "--lint-policy",
            choices=("strict", "warn", "off"),
            default="warn",
            help="the plan step already gated on the spec's policy (default warn: print only)",
        )
        _target(parser)
    elif step == "verify":
        add("--analyze", action=argparse.BooleanOptionalAction, default=True)
        add("--explain-analyze", action="store_true")
        _duration(parser, "--statement-timeout", "6h")
        _target(parser)
    elif step == "rollback":
        add("--strategy", choices=("DropCreatedObjects", "RestoreBackup"), required=True)
        _duration(parser, "--lock-timeout", "5s")
        _duration(parser, "--statement-timeout", "6h")
        add("--backup-path", default=None, help="the backup to restore (RestoreBackup)")
        add("--restore-jobs", type=int, default=1)
        add("--pg-bin", default=None, help="folder of pg_restore")


@dataclass
class StepContext:
    """What every step function receives."""

    args: argparse.Namespace
    reporter: Reporter
    conninfo: str

    @property
    def run_id(self) -> str:
        return str(self.args.run_id)

    @property
    def resource(self) -> tuple[str, str] | None:
        """(namespace, name) of the resource reported into, if any."""
        target = getattr(self.args, "report_to", None)
        if not target or "/" not in target:
            return None
        namespace, name = target.split("/", 1)
        return namespace, name

    def report(self, key: str, model: ApiModel) -> None:
        self.reporter.result(key, model)

    def report_all(self, parts: dict[str, ApiModel]) -> None:
        """Several results in one status write."""
        self.reporter.results(parts)

    def progress(self, key: str, model: ApiModel) -> None:
        self.reporter.progress(key, model)

    def resource_status(self) -> dict[str, Any]:
        """The resource's current status (for verify and rollback), {} when not available."""
        read = getattr(self.reporter, "read_status", None)
        if read is None:
            return {}
        status: dict[str, Any] = read() or {}
        return status


def conninfo_from(args: argparse.Namespace) -> str:
    """--database-url, env DATABASE_URL, or '' (libpq reads PGHOST, PGUSER, ... itself)."""
    return str(args.database_url or os.environ.get("DATABASE_URL") or "")


def say(text: str) -> None:
    """A line of the readable summary (the Job's log)."""
    print(text, flush=True)


def _report_exit(ctx: StepContext, step: str, code: int) -> None:
    """The step's last word, ``status.stepExit``: the operator need not wait for the Job
    controller to notice the pod ended (it batches pod updates by a second or more)."""
    job = os.environ.get(JOB_NAME_ENV)
    if not job:
        return  # run by hand: no Job to speak for
    from dbmigrate.api.status import StepExit

    ended = StepExit(job=job, step=step, exit_code=code, finished_at=datetime.now(UTC))
    ctx.report("stepExit", ended)


class StepTerminated(KeyboardInterrupt):
    """SIGTERM reached the step (its pod is being evicted, drained or deleted). A subclass of
    KeyboardInterrupt so that psycopg cancels the statement running on the server, as on Ctrl-C,
    and the transaction rolls back instead of running on after the pod is gone."""


def _terminate(signum: int, frame: object) -> None:
    raise StepTerminated(signal.Signals(signum).name)


def run_step(args: argparse.Namespace) -> int:
    """Dispatch ``dbmigrate job <step>`` with the documented exit codes.

    The step runs as the container's PID 1, which the kernel shields from any signal it has no
    handler for: without one, SIGTERM would be ignored and the pod killed at the end of its grace
    period, mid-statement. With it, the step stops at once, cancelling what runs on the server,
    and exits 3 (unavailable): the Job's next pod resumes where it stopped."""
    signal.signal(signal.SIGTERM, _terminate)
    from dbmigrate.runner import tasks as step_runs

    steps: dict[str, Callable[[StepContext], int]] = {
        "plan": step_runs.job_plan,
        "backup": step_runs.job_backup,
        "apply": step_runs.job_apply,
        "verify": step_runs.job_verify,
        "rollback": step_runs.job_rollback,
    }
    reporter: Reporter = reporter_from_args(args) if args.report_to else ConsoleReporter()
    ctx = StepContext(args=args, reporter=reporter, conninfo=conninfo_from(args))
    try:
        code = steps[args.step](ctx)
    except StepTerminated as stop:
        print(
            f"dbmigrate job {args.step}: stopped by {stop} (the pod is being evicted or deleted); "
            "what ran on the server was cancelled; the next pod of the Job resumes",
            file=sys.stderr,
        )
        code = EXIT_UNAVAILABLE
    except Exception as exc:
        name = f"dbmigrate job {args.step}"
        failed = report_failure(exc, args, prefix=name, context=name)
        if failed is None:
            raise
        code = failed
    failures = getattr(reporter, "failures", [])
    if args.report_to and not failures:
        _report_exit(ctx, args.step, code)
    if failures:
        print(
            f"dbmigrate job {args.step}: {len(failures)} status report(s) were lost; "
            f"the last: {failures[-1]}",
            file=sys.stderr,
        )
    return code
