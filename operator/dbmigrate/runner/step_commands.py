"""The ``preflight``, ``backup``, ``verify`` and ``rollback`` sub-commands of ``dbmigrate``.

Each runs one engine step against ``--database-url`` (or DATABASE_URL), prints a readable summary
(or the result model as JSON with ``--output json``) and reports the result under its status key.
Exit codes: 0 ok, 1 the step ran and found a failure, 2 bad input, 3 database unavailable.

Each command imports the engine modules it runs when it runs, not when the parser is built:
``backup`` and ``rollback`` then never load the SQL parser, the probes' YAML or the preflight and
verify modules, and their start-up adds less to every pg_dump and pg_restore.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dbmigrate.engine.pgtools import StepError
from dbmigrate.runner.failures import guarded
from dbmigrate.runner.reporting import add_reporting_args, reporter_from_args

if TYPE_CHECKING:
    import psycopg

    from dbmigrate.api.base import ApiModel
    from dbmigrate.api.evidence import ProbeResult
    from dbmigrate.engine.probes import Probe
    from dbmigrate.engine.sources import Migration

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK


def _common(parser: argparse.ArgumentParser, migrations: bool = True) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL URL (default: env DATABASE_URL); the password is never printed",
    )
    if migrations:
        parser.add_argument("--migrations", metavar="DIR", help="folder of NNN_name.sql files")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("--pg-bin", metavar="DIR", help="folder of pg_dump/pg_restore")
    add_reporting_args(parser)


def _probe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="NAME=INDEX:SQL",
        help="a query whose plan must use INDEX (repeatable)",
    )
    parser.add_argument("--probes", metavar="FILE", help="YAML list of {name, sql, expectIndex}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the four step commands."""
    _register_preflight(subparsers)
    _register_backup(subparsers)
    _register_verify(subparsers)
    _register_rollback(subparsers)


def _register_preflight(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("preflight", help="check privileges, sizes, estimates, blockers")
    _common(p)
    _probe_args(p)
    p.add_argument("--large-table-rows", type=int, default=1_000_000)
    p.add_argument("--long-transaction-seconds", type=float, default=60.0)
    p.add_argument("--duplicate-timeout-ms", type=int, default=30_000)
    p.add_argument("--no-sample-builds", action="store_true", help="estimate from formulas only")
    p.set_defaults(func=cmd_preflight)


def _register_backup(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser("backup", help="pg_dump, read back, hash, retention")
    _common(b, migrations=False)
    b.add_argument("--dir", required=True, help="folder to write into (must exist)")
    b.add_argument("--format", choices=("custom", "directory"), default="custom")
    b.add_argument("--jobs", type=int, default=1, help="parallel jobs (directory format)")
    b.add_argument("--name", help="resource identity, e.g. NAMESPACE/NAME (default: database)")
    b.add_argument("--keep", type=int, default=5, help="newest backups of this name to keep")
    b.add_argument("--protect", action="append", default=[], metavar="PATH")
    b.add_argument(
        "--verify-data",
        action="store_true",
        help="also read every data block back (pg_restore -f /dev/null), not only the list",
    )
    b.set_defaults(func=cmd_backup)


def _register_verify(subparsers: argparse._SubParsersAction) -> None:
    v = subparsers.add_parser("verify", help="check created indexes and probe query plans")
    _common(v)
    _probe_args(v)
    v.add_argument("--analyze", action=argparse.BooleanOptionalAction, default=True)
    v.add_argument("--explain-analyze", action="store_true", help="run probes with ANALYZE")
    v.add_argument("--versions", help="comma-separated versions (default: applied ones)")
    v.add_argument("--baseline", metavar="FILE", help="JSON of an earlier preflight or verify")
    v.set_defaults(func=cmd_verify)


def _register_rollback(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser("rollback", help="drop what the run created, or restore")
    _common(r, migrations=False)
    r.add_argument("--strategy", choices=("drop", "restore"), default="drop")
    r.add_argument("--backup", metavar="PATH", help="backup to restore (strategy restore)")
    r.add_argument("--sha256", help="expected sha256 of the backup (from its evidence)")
    r.add_argument("--into-database", metavar="NAME", help="restore into a new database")
    r.add_argument("--jobs", type=int, default=1, help="parallel pg_restore jobs")
    r.add_argument("--versions", help="comma-separated versions (default: the last run's)")
    r.add_argument("--run-id", default=os.environ.get("DBMIGRATE_RUN_ID", "manual-rollback"))
    r.set_defaults(func=cmd_rollback)


def _url(args: argparse.Namespace) -> str:
    if not args.database_url:
        raise StepError("no database: give --database-url or set DATABASE_URL")
    from dbmigrate.engine.connect import check_conninfo

    check_conninfo(args.database_url)
    return str(args.database_url)


def _migrations(args: argparse.Namespace) -> list[Migration]:
    if not args.migrations:
        raise StepError("give --migrations DIR (the folder of NNN_name.sql files)")
    from dbmigrate.engine.sources import load_directory

    return list(load_directory(args.migrations))


def _versions(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise StepError(f"--versions wants numbers separated by commas, got {text!r}") from exc


def _probe_list(args: argparse.Namespace) -> list[Probe]:
    from dbmigrate.engine import probes

    found = [probes.parse_probe_arg(p) for p in args.probe]
    if args.probes:
        found += probes.load_probes_file(args.probes)
    return found


def _applied(conn: psycopg.Connection) -> set[int]:
    from dbmigrate.engine import history

    return {r.version for r in history.read_history(conn) if r.status == "applied"}


def _finish(args: argparse.Namespace, key: str, model: ApiModel, ok: bool) -> int:
    from dbmigrate.runner import evidence_text as step_output

    reporter_from_args(args).result(key, model)
    if args.output == "json":
        print(json.dumps(model.to_wire(), indent=2))
    else:
        print(step_output.render(model))
    return EXIT_OK if ok else EXIT_FAILED


@guarded
def cmd_preflight(args: argparse.Namespace) -> int:
    """dbmigrate preflight."""
    from dbmigrate.engine import preflight
    from dbmigrate.engine.connect import connect

    options = preflight.PreflightOptions(
        large_table_rows=args.large_table_rows,
        long_transaction_seconds=args.long_transaction_seconds,
        duplicate_check_timeout_ms=args.duplicate_timeout_ms,
        sample_builds=not args.no_sample_builds,
        probes=_probe_list(args),
    )
    migrations = _migrations(args)
    with connect(_url(args), "preflight") as conn:
        done = _applied(conn)
        pending = [m for m in migrations if m.version not in done]
        result = preflight.run_preflight(conn, pending, options)
    return _finish(args, "preflight", result, result.passed)


@guarded
def cmd_backup(args: argparse.Namespace) -> int:
    """dbmigrate backup."""
    from psycopg.conninfo import conninfo_to_dict

    from dbmigrate.engine import backup

    url = _url(args)
    options = backup.BackupOptions(
        folder=args.dir,
        identity=args.name or str(conninfo_to_dict(url).get("dbname") or "db"),
        format=args.format,
        jobs=args.jobs,
        keep=args.keep,
        protect=tuple(args.protect),
        pg_bin=args.pg_bin,
        verify_data=args.verify_data,
    )
    evidence = backup.take_backup(url, options)
    return _finish(args, "backup", evidence, evidence.verified)


def _baseline(path: str | None) -> tuple[list[ProbeResult], int | None]:
    if not path:
        return [], None
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


@guarded
def cmd_verify(args: argparse.Namespace) -> int:
    """dbmigrate verify."""
    from dbmigrate.engine import verify
    from dbmigrate.engine.connect import connect

    migrations = _migrations(args)
    chosen = _versions(args.versions)
    probe_list = _probe_list(args)
    baseline, size_before = _baseline(args.baseline)
    with connect(_url(args), "verify") as conn:
        wanted = set(chosen) if chosen is not None else _applied(conn)
        selected = [m for m in migrations if m.version in wanted]
        result = verify.verify(
            conn, selected, probe_list, args.analyze, args.explain_analyze, baseline, size_before
        )
    return _finish(args, "verification", result, result.passed)


@guarded
def cmd_rollback(args: argparse.Namespace) -> int:
    """dbmigrate rollback."""
    from dbmigrate.engine import rollback

    strategy: rollback.Strategy = (
        "restoreBackup" if args.strategy == "restore" else "dropCreatedObjects"
    )
    record = rollback.rollback(
        _url(args),
        strategy,
        run_id=args.run_id,
        versions=_versions(args.versions),
        backup_path=args.backup,
        into_database=args.into_database,
        jobs=args.jobs,
        pg_bin=args.pg_bin,
        expected_sha256=args.sha256,
    )
    return _finish(args, "rollback", record, record.verified)
