"""``dbmigrate status | history | repair``: the history table by hand, and what it lets one fix.

These are not steps of a run (no Job runs them, they report nothing into a resource): ``status``
prints the history's state and, given ``--migrations``, the plan; ``history`` prints every row of
``dbmigrate.schema_migrations``; ``repair`` rebuilds the missing or INVALID indexes of applied
versions (the remedy ``verify`` prints). They reach the database as the steps do
(``runner.context.conninfo_from``: ``--database-url``, ``DATABASE_URL`` or libpq's ``PG*``
variables) and fail with the same messages and exit codes.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK
from dbmigrate.api.stepnames import KEY_PLAN
from dbmigrate.engine import history
from dbmigrate.engine.connect import connect, connection_label
from dbmigrate.runner.context import conninfo_from
from dbmigrate.runner.failures import guarded
from dbmigrate.runner.options import EXIT_CODES, add_database, add_output, add_target, duration_ms

COMMANDS = {
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
    """Add status, history and repair."""
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
    for parser in parsers.values():
        add_database(parser)
        add_output(parser)
    parsers["status"].add_argument("--migrations", metavar="DIR", help="also show the plan")
    add_target(parsers["status"])
    parsers["repair"].add_argument(
        "--migrations", metavar="DIR", required=True, help="folder of NNN_name.sql files"
    )
    parsers["repair"].add_argument(
        "--lock-timeout", type=duration_ms, default=5000, metavar="D", help="default 5s"
    )
    parsers["status"].set_defaults(func=guarded(cmd_status))
    parsers["history"].set_defaults(func=guarded(cmd_history))
    parsers["repair"].set_defaults(func=guarded(cmd_repair))


def _row_dict(row: history.HistoryRow) -> dict[str, object]:
    data = dataclasses.asdict(row)
    data["created_objects"] = [o.to_wire() for o in row.created_objects]
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def cmd_status(args: argparse.Namespace) -> int:
    """``dbmigrate status``: the history's state, and what is pending when --migrations is given."""
    from dbmigrate.engine import planning
    from dbmigrate.engine.sources import load_directory
    from dbmigrate.runner.migration_text import history_text, plan_text
    from dbmigrate.runner.render import print_json

    url = conninfo_from(args)
    migrations = load_directory(args.migrations) if args.migrations else None
    with connect(url, "status") as conn:
        label = connection_label(url, conn)
        rows = history.read_history(conn)
        result = planning.compute_plan(rows, migrations, args.target, label) if migrations else None
    if args.output == "json":
        print_json(
            {
                "database": label,
                "history": [_row_dict(r) for r in rows],
                KEY_PLAN: result.to_wire() if result else None,
            }
        )
    else:
        print(f"database {label}")
        print("\n".join(history_text(rows)))
        if result is not None:
            print("\n".join(plan_text(result)))
    unhealthy = any(r.status in ("failed", "running") for r in rows)
    failed = unhealthy or (result is not None and result.drift_errors)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """``dbmigrate history``."""
    from dbmigrate.runner.migration_text import history_text
    from dbmigrate.runner.render import print_json

    with connect(conninfo_from(args), "history") as conn:
        rows = history.read_history(conn)
    if args.output == "json":
        print_json([_row_dict(r) for r in rows])
    else:
        print("\n".join(history_text(rows)))
    return EXIT_OK


def cmd_repair(args: argparse.Namespace) -> int:
    """``dbmigrate repair``: rebuild the missing or INVALID indexes of the applied versions."""
    from dbmigrate.engine.after.repair import repair_indexes
    from dbmigrate.engine.sources import load_directory
    from dbmigrate.runner.render import print_json

    migrations = load_directory(args.migrations)
    url = conninfo_from(args)
    with connect(url, "repair") as conn:
        rebuilt = repair_indexes(conn, list(migrations), args.lock_timeout)
        label = connection_label(url, conn)
    if args.output == "json":
        print_json({"database": label, "rebuilt": rebuilt})
    else:
        print("\n".join(f"rebuilt index {name}" for name in rebuilt) or "nothing to repair")
    return EXIT_OK
