"""Apply the pending migrations of a set, safely: the entry point of the migrate step.

Order of events: parse every pending file and run the linter (under the strict policy an error
stops the run before anything touches the database); take the database's migration advisory lock
(bounded wait, the holder named on failure); create the history table if needed; recompute the
plan under the lock and refuse drift; then run each pending file (see ``execute``) while a monitor
samples progress and blockers on a second connection. The first failing file stops the run.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from pglast import ast

from dbmigrate.api.lint import LintFinding
from dbmigrate.api.plan import ApplyResult, PlanResult
from dbmigrate.engine import history
from dbmigrate.engine.catalog import relation_schema
from dbmigrate.engine.connect import connect, database_label
from dbmigrate.engine.errors import (
    DriftError,
    LintRefusedError,
    MigrationError,
    PlanChangedError,
    from_database_error,
)
from dbmigrate.engine.execute import FileRunner, now
from dbmigrate.engine.locking import migration_lock
from dbmigrate.engine.planning import compute_plan, plan, plan_on
from dbmigrate.engine.prepared import PreparedFile, first_step_objects
from dbmigrate.engine.progress import ProgressCallback, ProgressMonitor
from dbmigrate.engine.settings import ApplySettings
from dbmigrate.engine.sources import Migration, MigrationSet, MigrationSourceError
from dbmigrate.engine.statements import (
    Statement,
    executable_statements,
    parse_tree,
    rewrite_concurrently,
)

__all__ = ["ApplySettings", "apply_migrations", "lint_gate", "new_run_id", "plan"]

log = logging.getLogger(__name__)

# The linter's rule for CREATE INDEX without CONCURRENTLY on an existing table: moot when the
# apply rewrites those statements itself.
REWRITTEN_RULES = frozenset({"DM201"})


def made_moot_by_rewrite(finding: LintFinding) -> bool:
    """A finding the CONCURRENTLY rewrite settles (never one inside a DO block: the apply
    cannot rewrite a statement there)."""
    from dbmigrate.engine.lint.doblocks import IN_DO_BLOCK

    return finding.rule in REWRITTEN_RULES and not finding.message.startswith(IN_DO_BLOCK)


def new_run_id() -> str:
    """A short unique id for a run, recorded as applied_by."""
    return f"run-{uuid.uuid4().hex[:12]}"


def lint_gate(
    migrations: Sequence[Migration],
    settings: ApplySettings,
    trees: Mapping[str, Sequence[ast.RawStmt]] | None = None,
) -> list[LintFinding]:
    """Lint the files; under the strict policy raise LintRefusedError on any error finding.
    ``trees`` are parse trees by file name, for files the caller parsed already."""
    if settings.lint_policy == "off" or not migrations:
        return []
    try:
        lint = importlib.import_module("dbmigrate.engine.lint")
    except ImportError as exc:
        if settings.lint_policy == "strict":
            raise LintRefusedError(
                f"the linter is not available ({exc}); the strict policy refuses to run "
                "unlinted SQL. Use --lint-policy warn or off to run without it"
            ) from exc
        log.warning("the linter is not available (%s); running without it", exc)
        return []
    trees = trees or {}
    findings: list[LintFinding] = [
        f
        for m in migrations
        for f in lint.lint_sql(m.sql, m.filename, tree=trees.get(m.filename))
        if not f.suppressed
    ]
    if settings.auto_concurrently:
        findings = [f for f in findings if not made_moot_by_rewrite(f)]
    if settings.on_lint_findings is not None:
        settings.on_lint_findings(findings)
    errors = [f for f in findings if f.severity == "error"]
    if errors and settings.lint_policy == "strict":
        listed = "; ".join(
            f"{f.file}:{f.line}:{f.column} {f.rule} {f.message}" for f in errors[:10]
        )
        more = f" and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise LintRefusedError(
            f"the linter found {len(errors)} error(s) and the policy is strict, so nothing ran: "
            f"{listed}{more}. Fix the SQL, or waive a finding with a '-- dbmigrate:ignore RULE "
            "reason: ...' comment"
        )
    return findings


@dataclass
class _Run:
    """One apply run's inputs and its result, passed between the steps below."""

    conninfo: str
    migration_set: MigrationSet
    settings: ApplySettings
    run_id: str
    on_progress: ProgressCallback | None
    result: ApplyResult


def _check_plan(result: PlanResult, rows: Sequence[history.HistoryRow], run: _Run) -> None:
    """Refuse drift, and a plan other than the approved one. A retry of the same run (same run
    id) that already applied some of the approved versions still matches: the hash is recomputed
    as if this run's own versions were pending."""
    if result.drift_errors:
        raise DriftError("; ".join(e.message for e in result.drift_errors))
    expected = run.settings.expected_plan_hash
    if not expected or expected == result.plan_hash:
        return
    others = [r for r in rows if not (r.status == "applied" and r.applied_by == run.run_id)]
    replay = compute_plan(others, run.migration_set, run.settings.target, result.database)
    if replay.plan_hash != expected:
        raise PlanChangedError(
            f"the plan changed since it was approved: approved hash {expected}, current hash "
            f"{result.plan_hash}; review and approve the new plan"
        )


@dataclass
class _Parsed:
    """The pending files parsed once: their statements, and the trees the linter reads too."""

    statements: dict[int, list[Statement]]
    trees: dict[str, tuple[ast.RawStmt, ...]]


def _parse_all(migration_set: MigrationSet, result: PlanResult) -> _Parsed:
    """Parse every pending file now, so a syntax error stops the run before anything runs."""
    parsed = _Parsed({}, {})
    for item in result.pending:
        migration = migration_set.get(item.version)
        assert migration is not None
        tree = parse_tree(migration.sql, migration.filename)
        parsed.trees[migration.filename] = tree
        parsed.statements[item.version] = executable_statements(
            migration.sql, migration.filename, tree
        )
    return parsed


def _prepare(
    conn: psycopg.Connection,
    migration: Migration,
    statements: list[Statement],
    settings: ApplySettings,
) -> PreparedFile:
    if settings.auto_concurrently:
        existing = set()
        for stmt in statements:
            rel = getattr(stmt.node, "relation", None)
            if stmt.kind == "IndexStmt" and rel is not None:
                schema = relation_schema(conn, rel.schemaname, rel.relname)
                if schema is not None:
                    existing.add(
                        f"{rel.schemaname}.{rel.relname}" if rel.schemaname else rel.relname
                    )
        statements = [rewrite_concurrently(s, existing) for s in statements]
    return PreparedFile(migration=migration, statements=statements)


def apply_migrations(
    conninfo: str,
    migrations: MigrationSet,
    settings: ApplySettings | None = None,
    run_id: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> ApplyResult:
    """Apply the pending versions up to ``settings.target``; the result says how it went.

    Failures do not raise: the result has status ``failed``, ``error`` and ``error_code`` (a
    SQLSTATE or an error class name, see ``errors.exit_code_for``).
    """
    settings = settings or ApplySettings()
    run_id = run_id or new_run_id()
    label = database_label(conninfo)
    result = ApplyResult(run_id=run_id, database=label, status="failed", started_at=now())
    try:
        _apply(_Run(conninfo, migrations, settings, run_id, on_progress, result))
    except MigrationSourceError as err:
        result.status, result.error, result.error_code = "failed", str(err), type(err).__name__
    except MigrationError as err:
        result.status, result.error, result.error_code = "failed", str(err), err.code
        result.blockers = err.blockers
    except psycopg.Error as exc:  # history table, lock or catalog work outside any statement
        wrapped = from_database_error(exc, f"{label}: migration bookkeeping")
        result.status, result.error, result.error_code = "failed", str(wrapped), wrapped.code
    result.finished_at = now()
    return result


def _apply(run: _Run) -> None:
    settings, result = run.settings, run.result
    with connect(run.conninfo, "apply", run.run_id) as conn:
        first, rows = plan_on(conn, run.migration_set, settings.target, result.database)
        result.plan_hash = first.plan_hash
        _check_plan(first, rows, run)
        parsed = _parse_all(run.migration_set, first)
        pending = [m for m in run.migration_set if m.version in parsed.statements]
        lint_gate(pending, settings, parsed.trees)
        if not first.pending:
            result.status = "nothing_to_do"
            return
        with migration_lock(conn, settings.lock_wait_seconds):
            history.ensure_history(conn)
            rows = history.read_rows(conn)
            current = compute_plan(rows, run.migration_set, settings.target, result.database)
            if current.drift_errors:  # the hash was checked above; drift again under the lock
                raise DriftError("; ".join(e.message for e in current.drift_errors))
            _run_files(conn, run, current, rows, parsed.statements)
    result.status = "succeeded" if result.versions else "nothing_to_do"


def _file_of(
    migration_set: MigrationSet, version: int, parsed: dict[int, list[Statement]]
) -> PreparedFile:
    """A pending file with its parsed statements (before any CONCURRENTLY rewrite)."""
    migration = migration_set.get(version)
    assert migration is not None
    statements = parsed.get(version)
    if statements is None:
        statements = executable_statements(migration.sql, migration.filename)
    return PreparedFile(migration=migration, statements=statements)


def _run_files(
    conn: psycopg.Connection,
    run: _Run,
    current: PlanResult,
    rows: Sequence[history.HistoryRow],
    parsed: dict[int, list[Statement]],
) -> None:
    """Run the pending files in order under a progress monitor; the first failure stops."""
    previous = {r.version: r for r in rows}
    interval = run.settings.progress_interval_seconds
    monitor = ProgressMonitor(
        run.conninfo, run.run_id, conn.info.backend_pid, run.on_progress, interval
    )
    files = [_file_of(run.migration_set, item.version, parsed) for item in current.pending]
    monitor.start()
    try:
        runner = FileRunner(conn, monitor, run.settings, run.run_id)
        for position, file in enumerate(files):
            version = file.migration.version
            prepared = _prepare(conn, file.migration, file.statements, run.settings)
            after = files[position + 1] if position + 1 < len(files) else None
            following = (
                first_step_objects(after, previous.get(after.migration.version)) if after else []
            )
            record = runner.run(prepared, previous.get(version), following)
            run.result.versions.append(record)
            if runner.error is not None:
                raise runner.error
    finally:
        monitor.stop()
