"""``dbmigrate plan``: the pending versions, the plan hash an approval binds to, and drift.

One command by hand and in the plan Job. By hand it prints just the plan unless asked for more;
the Job asks for everything the operator needs before it may go on. What the flags add:

- ``--lint-policy strict|warn|off``: lint the pending files (as ``dbmigrate lint`` does) under
  that policy; errors under ``strict`` fail the step (exit 1). Without the flag there is no lint,
  except for ``--output markdown``, whose comment always has the lint report (strict by default,
  as before). ``--auto-concurrently`` lints as an apply that rewrites plain ``CREATE INDEX``
  will run (those findings are moot).
- ``--preflight``: run the read-only preflight checks too (the options of ``dbmigrate
  preflight``, with the probes of ``--probe``/``--probes``/env DBMIGRATE_PROBES); a failed
  check fails the step.
- ``--report-to NAMESPACE/NAME``: report into that resource's status, in one write, ``plan``,
  ``lint`` (when linted under a policy other than off), ``preflight`` (when run) and the
  ``database`` identity, which is read whenever the step reports (the operator compares it
  across resources: one query).

``--output text`` prints the identity (when read), the plan, the lint report and the preflight,
each only when there is one; ``--output json`` prints the plan's model alone, or, once lint or
preflight were asked for, one object of every part keyed as in the status; ``--output markdown``
prints the pull-request comment (``markdown.plan_markdown``).

The Job runs ``dbmigrate plan --report-to NS/NAME --run-id R --migrations DIR --preflight
--lint-policy P --auto-concurrently|--no-auto-concurrently --large-table-rows N [--target V]``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import psycopg

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import (
    KEY_DATABASE,
    KEY_LINT,
    KEY_PLAN,
    KEY_PREFLIGHT,
    KEY_WATCH,
    STEP_PLAN,
    Step,
)
from dbmigrate.runner.baseline import add_watch_baseline
from dbmigrate.runner.context import StepContext, migration_set, say
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import (
    LINT_POLICIES,
    add_migrations,
    add_output,
    add_run_options,
    add_target,
)
from dbmigrate.runner.preflight import add_check_options, check_options

if TYPE_CHECKING:
    from dbmigrate.api.base import ApiModel
    from dbmigrate.api.evidence import PreflightResult
    from dbmigrate.api.lint import LintPolicy, LintReport
    from dbmigrate.api.plan import PlanResult
    from dbmigrate.api.status import DatabaseIdentity
    from dbmigrate.engine.sources import Migration

STEP: Step = STEP_PLAN
SUMMARY = "show the pending migrations and refuse drift (with --lint-policy and --preflight: all "
SUMMARY += "the plan Job checks)"

# ``dbmigrate job plan`` always linted (strict unless told), preflighted and rewrote CONCURRENTLY.
JOB_DEFAULTS: dict[str, Any] = {
    "lint_policy": "strict",
    "preflight": True,
    "auto_concurrently": True,
}
JOB_REQUIRED = ("run_id", "migrations")

IDENTITY_SQL = """
SELECT current_database(), host(inet_server_addr()), inet_server_port(),
       current_setting('server_version')
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate plan`` (see the module docstring)."""
    add_run_options(parser)
    add_migrations(parser)
    add_output(parser, "markdown")
    add_target(parser)
    add_watch_baseline(parser, "at the start of the run")
    parser.add_argument(
        "--lint-policy",
        choices=LINT_POLICIES,
        default=None,
        help="also lint the pending files under this policy; errors under strict fail the plan "
        "(default: no lint; strict for --output markdown)",
    )
    parser.add_argument(
        "--auto-concurrently",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="lint as an apply with --auto-concurrently will run (plain CREATE INDEX is "
        "rewritten, so its finding is moot)",
    )
    parser.add_argument(
        "--preflight",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run the read-only preflight checks (sizes, index build estimates, "
        "privileges, long transactions, probes)",
    )
    parser.add_argument(
        "--explain-analyze",
        action="store_true",
        help="accepted for the old job command line; the preflight's probe baseline uses EXPLAIN",
    )
    add_check_options(parser)


def database_identity(conn: psycopg.Connection) -> DatabaseIdentity:
    """The server's system identifier and the database, compared across resources."""
    from dbmigrate.api.status import DatabaseIdentity

    row = conn.execute(IDENTITY_SQL).fetchone()
    assert row is not None
    dbname, address, port, version = row
    try:
        ident = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
        system_id = str(ident[0]) if ident else ""
    except psycopg.errors.InsufficientPrivilege:
        system_id = ""
    if not system_id:  # without EXECUTE on pg_control_system: the address stands in for it
        system_id = f"addr:{address or conn.info.host}:{port or conn.info.port}"
    return DatabaseIdentity(
        system_identifier=system_id,
        database=str(dbname),
        server_address=address,
        server_port=port,
        server_version=str(version),
    )


def _lint(pending: list[Migration], policy: LintPolicy, auto_concurrently: bool) -> LintReport:
    from dbmigrate.engine import lint
    from dbmigrate.engine.apply import made_moot_by_rewrite

    report = lint.lint_migrations(pending, policy)
    if not auto_concurrently:
        return report
    kept = [f for f in report.findings if not made_moot_by_rewrite(f)]
    return lint.build_report(kept, policy, report.files)


def _policy(args: argparse.Namespace) -> LintPolicy | None:
    if args.lint_policy is None and args.output == "markdown":
        return "strict"
    policy: LintPolicy | None = args.lint_policy
    return policy


def run(ctx: StepContext) -> int:
    """Plan (and lint, preflight, read the identity as asked); report and print the parts."""
    from dbmigrate.engine import planning, preflight
    from dbmigrate.engine.connect import connect, connection_label
    from dbmigrate.runner import baseline

    args = ctx.args
    policy = _policy(args)
    migrations = migration_set(args)
    options = check_options(args) if args.preflight else None
    start = baseline.run_start(ctx, STEP) if args.watch_baseline else None
    with connect(ctx.conninfo, STEP, ctx.run_id) as conn:
        identity = database_identity(conn) if args.report_to else None
        result, _ = planning.plan_on(
            conn, migrations, args.target, connection_label(ctx.conninfo, conn)
        )
        wanted = {p.version for p in result.pending}
        pending = [m for m in migrations if m.version in wanted]
        report = _lint(pending, policy, args.auto_concurrently) if policy else None
        checks = preflight.run_preflight(conn, pending, options) if options else None
    parts: dict[str, ApiModel | None] = {
        KEY_DATABASE: identity,
        KEY_LINT: report if policy != "off" else None,
        KEY_PREFLIGHT: checks,
        KEY_PLAN: result,
    }
    if start is not None:
        parts[KEY_WATCH] = start  # status.watch.runStart: the performance watch's baseline
    ctx.report_all({key: part for key, part in parts.items() if part is not None})
    _print(ctx, result, report, checks, identity)
    lint_refused = report is not None and not report.passed
    checks_failed = checks is not None and not checks.passed
    return EXIT_FAILED if result.drift_errors or lint_refused or checks_failed else EXIT_OK


def _print(
    ctx: StepContext,
    result: PlanResult,
    report: LintReport | None,
    checks: PreflightResult | None,
    identity: DatabaseIdentity | None,
) -> None:
    from dbmigrate.runner.migration_text import plan_text
    from dbmigrate.runner.render import lint_text, print_json, render

    output = ctx.args.output
    if output == "markdown":
        from dbmigrate.runner.markdown import plan_markdown

        assert report is not None  # markdown always lints
        print(plan_markdown(result, report, checks), end="")
    elif output == "json" and report is None and checks is None:
        print_json(result.to_wire())
    elif output == "json":
        parts = {KEY_DATABASE: identity, KEY_LINT: report, KEY_PREFLIGHT: checks, KEY_PLAN: result}
        print_json({k: v.to_wire() for k, v in parts.items() if v is not None})
    else:
        if identity is not None:
            say(f"database {identity.database} (system {identity.system_identifier})")
        lines = plan_text(result) + (lint_text(report) if report else [])
        lines += [render(checks)] if checks else []
        say("\n".join(lines))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate plan``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
