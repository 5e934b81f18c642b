"""A lower bound for any engine that keeps the migration engine's required records: psql runs
the migrations together with the least SQL those records take, written out by hand.

What the script adds to the five files, and nothing else (no advisory lock, no timeouts, no
rollback manifest, no parsing, no Python; the engine does all of those as well):

- the history table (the engine's own DDL);
- a file that runs in one transaction: BEGIN, its statements, its history row, COMMIT;
- a file that runs in autocommit: a 'running' row, then per statement the statement and the
  progress counter a rerun resumes from, then the 'applied' row; around every CONCURRENTLY
  build the INVALID-index check before it and the indisvalid/indisready check after it, each one
  cheap query on pg_index.

    python3 -m bench.bookkeeping_floor > floor.sql    # the script, to read or run by hand
    python3 -m bench.bookkeeping_floor --history-only # without the index checks
"""

from __future__ import annotations

import sys

from bench.common import MIGRATIONS
from dbmigrate.engine import history
from dbmigrate.engine.sources import Migration, MigrationSet, load_directory
from dbmigrate.engine.statements import Statement, created_objects_of, executable_statements

TABLE = f"{history.SCHEMA}.{history.TABLE}"


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _row(migration: Migration, status: str, total: int) -> str:
    return (
        f"INSERT INTO {TABLE} (version, name, checksum, status, started_at, statements_total,"
        f" applied_by) VALUES ({migration.version}, {_literal(migration.name)},"
        f" {_literal(migration.checksum)}, '{status}', now(), {total}, 'floor')"
        " ON CONFLICT (version) DO UPDATE SET status = excluded.status;"
    )


def _index_checks(statement: Statement) -> list[str]:
    if not statement.needs_autocommit:
        return []
    return [
        "SELECT indisvalid, indisready FROM pg_index"
        f" WHERE indexrelid = to_regclass({_literal(obj.name)});"
        for obj in created_objects_of(statement)
        if obj.kind == "index"
    ]


def _autocommit_file(
    migration: Migration, statements: list[Statement], index_checks: bool
) -> list[str]:
    lines = [_row(migration, "running", len(statements))]
    for done, statement in enumerate(statements, start=1):
        checks = _index_checks(statement) if index_checks else []
        lines += [*checks, statement.text + ";", *checks]
        lines.append(
            f"UPDATE {TABLE} SET statements_done = {done} WHERE version = {migration.version};"
        )
    lines.append(
        f"UPDATE {TABLE} SET status = 'applied', finished_at = now()"
        f" WHERE version = {migration.version};"
    )
    return lines


def floor_script(migrations: MigrationSet, index_checks: bool = True) -> str:
    """The files with the least bookkeeping the engine's records need, as one psql script
    (``index_checks=False``: the history only, without the checks around CONCURRENTLY builds)."""
    lines = [ddl.format(schema=history.SCHEMA, table=TABLE) + ";" for ddl in history._DDL]
    for migration in migrations:
        statements = executable_statements(migration.sql, migration.filename)
        if any(s.needs_autocommit for s in statements):
            lines += _autocommit_file(migration, statements, index_checks)
        else:
            texts = [s.text + ";" for s in statements]
            lines += ["BEGIN;", *texts, _row(migration, "applied", len(statements)), "COMMIT;"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    only_history = "--history-only" in sys.argv[1:]
    sys.stdout.write(floor_script(load_directory(MIGRATIONS), index_checks=not only_history))
