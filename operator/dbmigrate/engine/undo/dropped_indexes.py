"""The indexes a run dropped: their definitions, recorded before each drop, and their rebuild.

A dropCreatedObjects rollback drops what the run created; an index the run DROPPED is the other
half of the undo, and dropping an index loses no data: its definition is all it takes to bring
it back. So the apply step, right before it runs a ``DROP INDEX [CONCURRENTLY] [IF EXISTS]``,
reads each index the statement names (resolved as the DROP will resolve it) and records its
``pg_get_indexdef``, schema, table and the constraint it backs, if any, in
``dbmigrate.dropped_indexes``, keyed by version: inside the file's transaction when the file
runs in one (a file that rolls back leaves no record), committed before the drop otherwise (a
drop that then fails leaves a record of an index that still exists, which the rebuild finds
present).

The rollback, after its drops, builds each recorded index again with CREATE INDEX CONCURRENTLY
(oldest version first, each name once): an index of that name that exists and is valid is left
alone, an INVALID leftover is dropped and built again, an index whose table the rollback dropped
(a table the run created) needs nothing. An index that backs a constraint is not rebuilt: a
``DROP INDEX`` cannot drop one (PostgreSQL refuses), and a constraint is brought back by adding
the constraint, not the index. Neither are indexes dropped with their table, through CASCADE or
inside a DO block: only the indexes a DROP INDEX statement names are recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from pglast import ast, enums
from psycopg import sql

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine import catalog, history, indexdefs
from dbmigrate.engine.errors import IndexInvalidError

if TYPE_CHECKING:
    from dbmigrate.api.evidence import RebuiltIndex

TABLE = "dropped_indexes"
_DDL = """CREATE TABLE IF NOT EXISTS {} (
    version bigint NOT NULL,
    schema_name text NOT NULL,
    name text NOT NULL,
    table_name text NOT NULL,
    definition text NOT NULL,
    constraint_name text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version, schema_name, name)
)"""
# The index a (possibly unqualified) name resolves to now, as DROP INDEX would resolve it.
_DESCRIBE = """
SELECT n.nspname, c.relname, t.relname, pg_get_indexdef(c.oid),
       (SELECT k.conname FROM pg_constraint k WHERE k.conindid = c.oid
        AND k.conrelid = t.oid AND k.contype IN ('p', 'u', 'x') LIMIT 1)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_index i ON i.indexrelid = c.oid
JOIN pg_class t ON t.oid = i.indrelid
WHERE c.oid = to_regclass(%s) AND c.relkind IN ('i', 'I')
"""
_UPSERT = """
INSERT INTO {} (version, schema_name, name, table_name, definition, constraint_name)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (version, schema_name, name) DO UPDATE SET table_name = excluded.table_name,
    definition = excluded.definition, constraint_name = excluded.constraint_name,
    recorded_at = now()
"""
_READ = """
SELECT version, schema_name, name, table_name, definition, constraint_name FROM {}
WHERE version = ANY(%s) ORDER BY version, recorded_at
"""


@dataclass(frozen=True)
class DroppedIndex:
    """An index as it was right before a migration dropped it."""

    version: int
    schema: str
    name: str
    table: str
    definition: str  # pg_get_indexdef
    constraint: str | None = None  # the constraint it backed, if any


def table_ident() -> sql.Identifier:
    """``dbmigrate.dropped_indexes`` as a quoted identifier."""
    return sql.Identifier(history.SCHEMA, TABLE)


def named_indexes(node: ast.Node | None) -> list[tuple[str | None, str]]:
    """(schema or None, name) of each index a DROP INDEX statement names; [] for any other."""
    if not isinstance(node, ast.DropStmt) or node.removeType != enums.ObjectType.OBJECT_INDEX:
        return []
    names: list[tuple[str | None, str]] = []
    for obj in node.objects or ():
        parts = [str(p.sval) for p in obj if isinstance(p, ast.String)]
        if parts:
            names.append((parts[-2] if len(parts) > 1 else None, parts[-1]))
    return names


def describe(conn: psycopg.Connection, schema: str | None, name: str) -> DroppedIndex | None:
    """The index a name resolves to now (version 0), None when there is none."""
    row = conn.execute(_DESCRIBE, (catalog.regname(schema, name),)).fetchone()
    if row is None:
        return None
    nsp, index, table, definition, constraint = row
    return DroppedIndex(0, str(nsp), str(index), str(table), str(definition), constraint)


def record_before_drop(conn: psycopg.Connection, version: int, node: ast.Node | None) -> int:
    """Record every index a DROP INDEX statement will drop, in the caller's transaction if any
    (autocommit: committed before the drop); how many were recorded. No query for any other
    statement."""
    found = [d for s, n in named_indexes(node) if (d := describe(conn, s, n)) is not None]
    if not found:
        return 0
    conn.execute(sql.SQL(_DDL).format(table_ident()))
    for index in found:
        conn.execute(
            sql.SQL(_UPSERT).format(table_ident()),
            (version, index.schema, index.name, index.table, index.definition, index.constraint),
        )
    return len(found)


def recorded(conn: psycopg.Connection, versions: Sequence[int]) -> list[DroppedIndex]:
    """The indexes the versions dropped, oldest version first; [] when none was ever recorded."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (catalog.regname(history.SCHEMA, TABLE),)
    ).fetchone()
    if not (exists and exists[0]):
        return []
    rows = conn.execute(sql.SQL(_READ).format(table_ident()), (list(versions),)).fetchall()
    return [DroppedIndex(int(v), str(s), str(n), str(t), str(d), c) for v, s, n, t, d, c in rows]


def to_rebuild(
    conn: psycopg.Connection,
    dropped: Sequence[DroppedIndex],
    created_tables: Collection[tuple[str | None, str]] = (),
) -> list[str]:
    """schema.name of each dropped index a rollback would build again: missing or INVALID now,
    and not on one of the tables the run created (the rollback drops those)."""
    names = dict.fromkeys(
        (d.schema, d.name) for d in dropped if (d.schema, d.table) not in created_tables
    )
    missing = []
    for schema, name in names:
        state = catalog.index_state(conn, schema, name)
        if state is None or not (state["indisvalid"] and state["indisready"]):
            missing.append(f"{schema}.{name}")
    return missing


def concurrent_definition(definition: str) -> str:
    """The recorded CREATE INDEX as CREATE INDEX CONCURRENTLY, edited on its parse tree."""
    stmts = indexdefs.statements(definition)
    if len(stmts) != 1 or not isinstance(stmts[0], ast.IndexStmt):
        raise ValueError(f"not a single CREATE INDEX: {definition!r}")
    stmts[0].concurrent = True
    return indexdefs.deparse(stmts[0])


def rebuild(
    conn: psycopg.Connection, dropped: Sequence[DroppedIndex]
) -> tuple[list[RebuiltIndex], str | None]:
    """Build each dropped index again (autocommit connection, the caller's lock_timeout): what
    became of each, and the error that stopped the rebuilds (None when all went through)."""
    done: list[RebuiltIndex] = []
    seen: set[tuple[str, str]] = set()
    for index in dropped:  # oldest version first: the first definition is the one to restore
        if (index.schema, index.name) in seen:
            continue
        seen.add((index.schema, index.name))
        item = _rebuild_one(conn, index)
        done.append(item)
        if item.state == "notRebuilt":
            return done, f"index {index.schema}.{index.name} was not rebuilt: {item.message}"
    return done, None


def _rebuild_one(conn: psycopg.Connection, index: DroppedIndex) -> RebuiltIndex:
    from dbmigrate.api.evidence import RebuiltIndex

    item = RebuiltIndex(
        schema_name=index.schema,
        name=index.name,
        table=index.table,
        definition=index.definition,
        state="notRebuilt",
    )
    state = catalog.index_state(conn, index.schema, index.name)
    if state is not None and state["indisvalid"] and state["indisready"]:
        item.state, item.valid = "present", True
        now = describe(conn, index.schema, index.name)
        if now is not None and now.definition != index.definition:
            item.message = f"an index of that name exists with another definition: {now.definition}"
        return item
    if catalog.relation_schema(conn, index.schema, index.table) is None:
        item.state, item.message = "tableGone", "its table no longer exists (the run created it)"
        return item
    if index.constraint:
        item.message = (
            f"it backs constraint {index.constraint}: add the constraint again (ALTER TABLE ... "
            "ADD CONSTRAINT) or restore the backup"
        )
        return item
    leftover = CreatedObject(
        kind="index", schema_name=index.schema, name=index.name, table=index.table
    )
    try:
        if state is not None:  # INVALID: left by an interrupted build
            catalog.drop_invalid_index(conn, leftover)
        conn.execute(concurrent_definition(index.definition))
    except (psycopg.Error, IndexInvalidError, ValueError) as exc:
        reason = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
        item.message = f"CREATE INDEX CONCURRENTLY failed: {reason or exc}" + _cleared(
            conn, leftover
        )
        return item
    after = catalog.index_state(conn, index.schema, index.name)
    item.valid = bool(after and after["indisvalid"] and after["indisready"])
    item.state = "rebuilt" if item.valid else "notRebuilt"
    if not item.valid:
        item.message = "the build ended but the index is not valid; run the rollback again"
    return item


def _cleared(conn: psycopg.Connection, leftover: CreatedObject) -> str:
    """Drop the INVALID index a failed build leaves behind (it would slow every write); what to
    add to the failure's message."""
    try:
        dropped = catalog.drop_invalid_index(conn, leftover)
    except (psycopg.Error, IndexInvalidError) as exc:
        return f"; its INVALID leftover could not be dropped ({exc}); drop it by hand"
    return "; its INVALID leftover was dropped" if dropped else ""
