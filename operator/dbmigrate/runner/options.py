"""The options every step command shares, declared once, with every spelling they ever had.

A step is one command, ``dbmigrate <step>``, by hand and in its Job (``dbmigrate job <step>`` is
the old spelling of the same command). The options of the old Job commands stay accepted beside
the hand-run ones (``--target`` and ``--target-version``, ``--dir`` and ``--backup-dir``, ...).

Durations are written like the DatabaseMigration spec writes them (``500ms``, ``5s``, ``2m``,
``1h30m``) or as a plain number of milliseconds; ``0`` (or ``0s``) turns a timeout off.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from dbmigrate.api.durations import InvalidDuration, parse_duration
from dbmigrate.api.exitcodes import help_text
from dbmigrate.api.labels import PROBES_ENV
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.reporting import add_reporting_args

if TYPE_CHECKING:
    from dbmigrate.engine.after.probes import Probe

EXIT_CODES = help_text()
LINT_POLICIES = ("strict", "warn", "off")


def duration_ms(text: str) -> int:
    """``5s``, ``500ms``, ``2m``, ``1h30m`` or a plain number of milliseconds; 0 is allowed."""
    if text.strip().isdigit():
        return int(text)
    try:
        return round(parse_duration(text, allow_zero=True).total_seconds() * 1000)
    except InvalidDuration as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_duration(
    parser: argparse.ArgumentParser, flag: str, default: str | None, what: str
) -> None:
    """A duration option, parsed into milliseconds. The default is written as a person writes
    it (``5s``: argparse parses a string default like a value given), so ``--help`` shows it
    that way, also where the ``job`` alias sets another (``6h``)."""
    shown = "none" if default is None else "%(default)s"
    parser.add_argument(
        flag, type=duration_ms, default=default, metavar="D", help=f"{what} (default {shown})"
    )


def add_database(parser: argparse.ArgumentParser) -> None:
    """``--database-url``; without it ``context.conninfo_from`` falls back to the environment."""
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL URL (default: env DATABASE_URL, else libpq's PG* variables such as "
        "PGHOST and PGDATABASE); the password is never printed",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The database, ``--report-to``, ``--run-id`` and ``--log-format``: what every step takes."""
    add_database(parser)
    add_reporting_args(parser)
    parser.add_argument(
        "--run-id",
        default=None,
        help="identity of this run: recorded in the history, names what this run did",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="log lines as text or JSON on stderr, as a Job's log wants them (default: text "
        "with --report-to, else the terminal's live view)",
    )


def add_migrations(parser: argparse.ArgumentParser, used: bool = True) -> None:
    """``--migrations DIR``; a step that reads no file accepts it (the old Job line passed it)."""
    parser.add_argument(
        "--migrations",
        metavar="DIR",
        help="folder of NNN_name.sql files" if used else "not read by this step (accepted)",
    )


def add_output(parser: argparse.ArgumentParser, *more: str) -> None:
    """``--output text|json`` and the step's other formats."""
    parser.add_argument("--output", choices=("text", "json", *more), default="text")


def add_target(parser: argparse.ArgumentParser) -> None:
    """``--target VERSION`` (alias ``--target-version``, the spec's ``targetVersion``)."""
    parser.add_argument(
        "--target",
        "--target-version",
        dest="target",
        type=int,
        metavar="VERSION",
        help="up to and including this version (default: the newest)",
    )


def add_pg_bin(parser: argparse.ArgumentParser) -> None:
    """``--pg-bin DIR``: where pg_dump, pg_restore and psql are."""
    parser.add_argument("--pg-bin", metavar="DIR", help="folder of pg_dump/pg_restore/psql")


def add_this_run(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--this-run``: limit the step to the versions ``--run-id`` applied."""
    parser.add_argument(
        "--this-run",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{verb} only the versions --run-id applied (from the status, else the history "
        "rows it wrote); the default with --report-to",
    )


def add_probes(parser: argparse.ArgumentParser) -> None:
    """``--probe``, ``--probes FILE``; env DBMIGRATE_PROBES (the Job's) adds to them."""
    parser.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="NAME=INDEX:SQL",
        help="a query whose plan must use INDEX (repeatable)",
    )
    parser.add_argument(
        "--probes",
        metavar="FILE",
        help=f"YAML list of {{name, sql, expectIndex}} (env {PROBES_ENV}: the same as JSON)",
    )


def probe_list(args: argparse.Namespace) -> list[Probe]:
    """The probes of env DBMIGRATE_PROBES (as a Job passes them), ``--probe`` and ``--probes``."""
    from dbmigrate.engine.after import probes

    raw = os.environ.get(PROBES_ENV) or "[]"
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise StepError(f"env {PROBES_ENV} is not JSON: {exc}") from exc
    found = [probes.Probe(e["name"], e["sql"], e["expectIndex"]) for e in entries]
    found += [probes.parse_probe_arg(p) for p in args.probe]
    if args.probes:
        found += probes.load_probes_file(args.probes)
    return found


def version_list(text: str | None) -> list[int] | None:
    """``--versions 3,4``: the numbers, or None when not given."""
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise StepError(f"--versions wants numbers separated by commas, got {text!r}") from exc


def this_run(args: argparse.Namespace) -> bool:
    """Whether ``--this-run`` holds: as given, else whenever the step reports to a resource."""
    chosen = args.this_run if args.this_run is not None else bool(args.report_to)
    if chosen and not args.run_id:
        raise StepError("--this-run needs --run-id (the run whose versions to take)")
    return bool(chosen)


def require(parser: argparse.ArgumentParser, dests: tuple[str, ...]) -> None:
    """Make the options of ``dests`` required (the old ``dbmigrate job`` lines required them)."""
    for action in parser._actions:
        if action.dest in dests:
            action.required = True


def add_sampling(parser: argparse.ArgumentParser) -> None:
    """How big and slow one sample may be (``dbmigrate snapshot`` and ``dbmigrate watch``)."""
    parser.add_argument(
        "--top-n",
        type=int,
        default=100,
        metavar="N",
        help="statements kept per sample, by total time (default %(default)s)",
    )
    add_duration(parser, "--statement-timeout", "5s", "statement_timeout of each sample")
    parser.add_argument(
        "--probe-runs",
        type=int,
        default=5,
        metavar="N",
        help="EXPLAIN ANALYZE runs per probe, the median is kept (default %(default)s)",
    )
    add_probes(parser)
