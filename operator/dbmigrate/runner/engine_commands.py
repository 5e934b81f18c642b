"""``dbmigrate plan | apply | status | history``: the migration engine by hand or in a Job.

Each command takes ``--database-url`` (or env DATABASE_URL; libpq's PG* variables fill in what the
URL leaves out) and, where it needs the files, ``--migrations DIR``. Text output is for people
(apply draws a progress bar and names the sessions it waits for); ``--output json`` prints the
result model for machines; ``plan --output markdown`` adds the lint report (and with
``--preflight`` the preflight's estimates) and prints a pull-request comment (``plan_markdown``).
Passwords are never printed: addresses appear as host:port/dbname.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime

from dbmigrate.api.evidence import PreflightResult
from dbmigrate.api.lint import LintReport
from dbmigrate.api.plan import ApplyProgress, ApplyResult, PlanResult
from dbmigrate.engine import history, planning
from dbmigrate.engine.apply import ApplySettings, apply_migrations, made_moot_by_rewrite, plan
from dbmigrate.engine.connect import check_conninfo, connect, database_label
from dbmigrate.engine.errors import EXIT_USAGE, MigrationError, exit_code_for
from dbmigrate.engine.sources import MigrationSet, MigrationSourceError, load_directory
from dbmigrate.runner.engine_text import ProgressView, apply_text, history_text, plan_text
from dbmigrate.runner.failures import print_failure, scrub
from dbmigrate.runner.options import (
    EXIT_CODES,
    add_apply_options,
    add_common,
    add_plan_report_options,
    add_target,
    duration_ms,
)
from dbmigrate.runner.reporting import Reporter, add_reporting_args, reporter_from_args


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


COMMANDS = {
    "plan": (
        "show the pending migrations and refuse drift",
        "Compare the migration files with the history table: the pending versions, the plan hash "
        "an approval binds to, and drift (changed or missing applied files).",
    ),
    "apply": (
        "apply the pending migrations safely",
        "Apply the pending migrations under the database's migration lock: one transaction per "
        "file (or statement by statement, resumable, for CONCURRENTLY and the like), lock and "
        "statement timeouts with retries, invalid-index recovery, live progress.",
    ),
    "status": ("applied, failed and pending versions", "The history's state, and the plan."),
    "history": ("the history table, row by row", "Every row of dbmigrate.schema_migrations."),
    "repair": (
        "rebuild missing or INVALID indexes of applied versions",
        "For each index the applied files create that is missing or INVALID (dropped by hand, a "
        "failed build), drop it concurrently and build it again with CREATE INDEX CONCURRENTLY. "
        "The remedy verify prints.",
    ),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add plan, apply, status and history."""
    parsers = {
        name: subparsers.add_parser(
            name,
            help=text,
            description=about,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for name, (text, about) in COMMANDS.items()
    }
    add_common(parsers["plan"], "required", outputs=("markdown",))
    add_plan_report_options(parsers["plan"])
    add_common(parsers["apply"], "required")
    add_common(parsers["status"], "optional")
    add_common(parsers["history"], None)
    add_common(parsers["repair"], "required")
    parsers["repair"].add_argument(
        "--lock-timeout", type=duration_ms, default=5000, metavar="D", help="default 5s"
    )
    for name in ("plan", "apply", "status"):
        add_target(parsers[name])
    add_apply_options(parsers["apply"])
    add_reporting_args(parsers["plan"])
    add_reporting_args(parsers["apply"])
    parsers["plan"].set_defaults(func=cmd_plan)
    parsers["apply"].set_defaults(func=cmd_apply)
    parsers["status"].set_defaults(func=cmd_status)
    parsers["history"].set_defaults(func=cmd_history)
    parsers["repair"].set_defaults(func=cmd_repair)


def _url(args: argparse.Namespace) -> str:
    if not args.database_url:
        raise UsageError("no database: give --database-url or set DATABASE_URL")
    check_conninfo(args.database_url)
    return str(args.database_url)


def _set(args: argparse.Namespace) -> MigrationSet:
    return load_directory(args.migrations)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the engine's errors into a message on stderr and the documented exit code."""

    def run(args: argparse.Namespace) -> int:
        prefix = f"dbmigrate {args.command}"
        try:
            return command(args)
        except (UsageError, MigrationSourceError) as exc:
            print_failure(args, prefix, scrub(str(exc), args), type(exc).__name__)
            return EXIT_USAGE
        except MigrationError as exc:
            print_failure(args, prefix, scrub(str(exc), args), exc.code)
            return exc.exit_code

    run.__doc__ = command.__doc__
    return run


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


def _plan_report(
    args: argparse.Namespace,
) -> tuple[PlanResult, LintReport, PreflightResult | None]:
    """The plan, the lint report of its pending files and (with --preflight) the preflight, as
    the operator's plan step computes them, on one connection."""
    from dbmigrate.engine import lint, preflight

    url, migration_set = _url(args), _set(args)
    with connect(url, "plan") as conn:
        result, _ = planning.plan_on(conn, migration_set, args.target, database_label(url))
        pending_versions = {p.version for p in result.pending}
        pending = [m for m in migration_set if m.version in pending_versions]
        report = lint.lint_migrations(pending, args.lint_policy)
        if args.auto_concurrently:
            kept = [f for f in report.findings if not made_moot_by_rewrite(f)]
            report = lint.build_report(kept, args.lint_policy, report.files)
        checks = None
        if args.preflight:
            checks = preflight.run_preflight(conn, pending, preflight.PreflightOptions())
    return result, report, checks


@_guarded
def cmd_plan(args: argparse.Namespace) -> int:
    """``dbmigrate plan``."""
    if args.output == "markdown":
        from dbmigrate.runner.markdown import plan_markdown

        result, report, checks = _plan_report(args)
        reporter_from_args(args).result("plan", result)
        print(plan_markdown(result, report, checks), end="")
        refused = not report.passed or (checks is not None and not checks.passed)
        return 1 if result.drift_errors or refused else 0
    result = plan(_url(args), _set(args), args.target)
    reporter_from_args(args).result("plan", result)
    if args.output == "json":
        _print_json(result.to_wire())
    else:
        print("\n".join(plan_text(result)))
    return 1 if result.drift_errors else 0


def _settings(args: argparse.Namespace, on_lint: Callable[[list], None]) -> ApplySettings:
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
        on_lint_findings=on_lint,
    )


def _lint_printer(args: argparse.Namespace) -> Callable[[list], None]:
    def show(findings: list) -> None:
        for f in findings:
            print(
                f"{f.file}:{f.line}:{f.column}: {f.severity} {f.rule}: {f.message}", file=sys.stderr
            )

    return show


@_guarded
def cmd_apply(args: argparse.Namespace) -> int:
    """``dbmigrate apply``."""
    url, migration_set = _url(args), _set(args)
    try:
        settings = _settings(args, _lint_printer(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    reporter: Reporter = reporter_from_args(args)
    view = ProgressView(enabled=args.output == "text")

    def on_progress(progress: ApplyProgress) -> None:
        view.update(progress)
        reporter.progress("progress", progress)

    with view:
        result: ApplyResult = apply_migrations(
            url, migration_set, settings, args.run_id, on_progress
        )
    reporter.result("apply", result)
    if args.output == "json":
        _print_json(result.to_wire())
    else:
        print("\n".join(apply_text(result)))
    return exit_code_for(result.error_code) if result.status == "failed" else 0


def _row_dict(row: history.HistoryRow) -> dict[str, object]:
    data = dataclasses.asdict(row)
    data["created_objects"] = [o.to_wire() for o in row.created_objects]
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


@_guarded
def cmd_status(args: argparse.Namespace) -> int:
    """``dbmigrate status``: the history's state, and what is pending when --migrations is given."""
    url = _url(args)
    with connect(url, "status") as conn:
        rows = history.read_history(conn)
    result = plan(url, _set(args), args.target) if args.migrations else None
    if args.output == "json":
        _print_json(
            {
                "database": database_label(url),
                "history": [_row_dict(r) for r in rows],
                "plan": result.to_wire() if result else None,
            }
        )
    else:
        print(f"database {database_label(url)}")
        print("\n".join(history_text(rows)))
        if result is not None:
            print("\n".join(plan_text(result)))
    unhealthy = any(r.status in ("failed", "running") for r in rows)
    return 1 if unhealthy or (result is not None and result.drift_errors) else 0


@_guarded
def cmd_history(args: argparse.Namespace) -> int:
    """``dbmigrate history``."""
    url = _url(args)
    with connect(url, "history") as conn:
        rows = history.read_history(conn)
    if args.output == "json":
        _print_json([_row_dict(r) for r in rows])
    else:
        print("\n".join(history_text(rows)))
    return 0


@_guarded
def cmd_repair(args: argparse.Namespace) -> int:
    """``dbmigrate repair``: rebuild the missing or INVALID indexes of the applied versions."""
    from dbmigrate.engine.repair import repair_indexes

    url, migration_set = _url(args), _set(args)
    with connect(url, "repair") as conn:
        rebuilt = repair_indexes(conn, list(migration_set), args.lock_timeout)
    if args.output == "json":
        _print_json({"database": database_label(url), "rebuilt": rebuilt})
    else:
        print("\n".join(f"rebuilt index {name}" for name in rebuilt) or "nothing to repair")
    return 0


logging.getLogger("dbmigrate").addHandler(logging.NullHandler())
