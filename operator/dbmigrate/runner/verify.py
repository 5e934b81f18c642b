"""``dbmigrate verify``: the created indexes exist and are valid, and the probe queries use them.

One command by hand and in the verify Job. Which versions it checks: ``--versions``, else with
``--this-run`` (the default with ``--report-to``) the versions ``--run-id`` applied (the status's
``apply``, else the history rows that run wrote), else every applied version. The probes' plans
are compared with a baseline: ``--baseline FILE``, else the preflight's in the resource's status.
Reports ``verification``; exit 1 when a check fails.

The Job runs ``dbmigrate verify --report-to NS/NAME --run-id R --migrations DIR
--analyze|--no-analyze [--explain-analyze] --statement-timeout D [--target V]``, with the probes
in env DBMIGRATE_PROBES.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import KEY_APPLY, KEY_PREFLIGHT, KEY_VERIFICATION, STEP_VERIFY, Step
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.context import StepContext, migration_set
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import (
    add_duration,
    add_migrations,
    add_output,
    add_probes,
    add_run_options,
    add_target,
    add_this_run,
    probe_list,
    this_run,
    version_list,
)

if TYPE_CHECKING:
    import psycopg

    from dbmigrate.api.evidence import ProbeResult

STEP: Step = STEP_VERIFY
SUMMARY = "check created indexes and probe query plans"

JOB_DEFAULTS: dict[str, Any] = {"statement_timeout": "6h", "this_run": True}
JOB_REQUIRED = ("run_id", "migrations")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dbmigrate verify``."""
    add_run_options(parser)
    add_migrations(parser)
    add_output(parser)
    add_target(parser)
    add_probes(parser)
    parser.add_argument("--analyze", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--explain-analyze", action="store_true", help="run probes with ANALYZE")
    parser.add_argument("--versions", help="comma-separated versions (default: see --this-run)")
    add_this_run(parser, "check")
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="JSON of an earlier preflight or verify (default: the preflight in the status)",
    )
    add_duration(parser, "--statement-timeout", None, "statement_timeout of the checks; 0: none")


def _baseline_file(path: str) -> tuple[list[ProbeResult], int | None]:
    from dbmigrate.api.evidence import ProbeResult

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StepError(f"cannot read baseline {path}: {exc}") from exc
    raw = data.get("probeBaseline", data.get("probes", [])) if isinstance(data, dict) else None
    if raw is None:
        raise StepError(f"{path}: expected the JSON of a preflight or verify result")
    size = data.get("databaseSizeBytes", data.get("databaseSizeAfter"))
    return [ProbeResult.model_validate(p) for p in raw], size


def baseline(ctx: StepContext) -> tuple[list[ProbeResult], int | None]:
    """The probes' earlier plans and the database's size: ``--baseline``, else the status's."""
    if ctx.args.baseline:
        return _baseline_file(ctx.args.baseline)
    from dbmigrate.api.evidence import ProbeResult

    checks = ctx.resource_status().get(KEY_PREFLIGHT) or {}
    probes = [ProbeResult.model_validate(p) for p in checks.get("probeBaseline") or []]
    return probes, checks.get("databaseSizeBytes")


def run_versions(status: dict[str, Any], conn: psycopg.Connection, run_id: str) -> list[int]:
    """The versions this run applied: from status.apply, else the history rows it wrote."""
    from dbmigrate.engine import history

    records = (status.get(KEY_APPLY) or {}).get("versions") or []
    versions = [int(r["version"]) for r in records if r.get("status") == "applied"]
    if versions:
        return versions
    return [r.version for r in history.read_history(conn) if r.applied_by == run_id]


def _versions(ctx: StepContext, conn: psycopg.Connection) -> set[int]:
    chosen = version_list(ctx.args.versions)
    if chosen is not None:
        return set(chosen)
    if this_run(ctx.args):
        return set(run_versions(ctx.resource_status(), conn, str(ctx.run_id)))
    from dbmigrate.engine import history

    return {r.version for r in history.read_history(conn) if r.status == "applied"}


def run(ctx: StepContext) -> int:
    """Verify the chosen versions against the catalog and the probes; report ``verification``."""
    from dbmigrate.engine import verify
    from dbmigrate.engine.connect import connect
    from dbmigrate.runner.render import finish

    args = ctx.args
    migrations = migration_set(args).up_to(args.target)
    probes = probe_list(args)
    probe_baseline, size_before = baseline(ctx)
    with connect(ctx.conninfo, STEP, ctx.run_id) as conn:
        if args.statement_timeout is not None:
            timeout = f"{args.statement_timeout}ms"
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout,))
        wanted = _versions(ctx, conn)
        selected = [m for m in migrations if m.version in wanted]
        result = verify.verify(
            conn,
            selected,
            probes,
            args.analyze,
            args.explain_analyze,
            probe_baseline,
            size_before,
        )
    ctx.report(KEY_VERIFICATION, result)
    finish(ctx, result)
    return EXIT_OK if result.passed else EXIT_FAILED


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dbmigrate verify``."""
    add_step_parser(subparsers, STEP, SUMMARY, add_arguments, run)
