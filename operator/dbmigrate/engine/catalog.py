"""What the catalog says about the objects a migration creates: where they live, whether they
exist, and whether an index is valid.

This is where the INVALID-index trap is defeated: an interrupted CREATE INDEX CONCURRENTLY leaves an
index with indisvalid = false behind, and CREATE INDEX CONCURRENTLY IF NOT EXISTS would then skip
it and succeed. Before (re)building an index the engine looks it up, drops an invalid one
concurrently, and after the build checks indisvalid and indisready.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine.errors import IndexInvalidError

_SCHEMA_OF_RELATION = """
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = CASE WHEN %(schema)s::text IS NULL THEN to_regclass(quote_ident(%(name)s))
                   ELSE to_regclass(format('%%I.%%I', %(schema)s::text, %(name)s::text)) END
"""

_INDEX_STATE = """
SELECT i.indisvalid, i.indisready,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
               WHERE p.index_relid = i.indexrelid AND p.pid <> pg_backend_pid()) AS building
FROM pg_index i
WHERE i.indexrelid = to_regclass(format('%%I.%%I', %s::text, %s::text))
"""


def relation_schema(conn: psycopg.Connection, schema: str | None, name: str) -> str | None:
    """The schema a (possibly unqualified) relation name resolves to; None if it does not exist."""
    row = conn.execute(_SCHEMA_OF_RELATION, {"schema": schema, "name": name}).fetchone()
    return str(row[0]) if row else None


_LOOKUP = """
WITH o(i, kind, schema, name, tbl) AS (
    SELECT * FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::text[])
), r AS (
    SELECT o.*, CASE
        WHEN o.kind = 'schema' OR o.schema IS NOT NULL THEN o.schema
        WHEN o.kind = 'type' THEN (SELECT n.nspname FROM pg_type t
            JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE t.oid = to_regtype(quote_ident(o.name)))
        ELSE (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass(quote_ident(CASE WHEN o.kind IN ('index', 'column')
                                                       THEN o.tbl ELSE o.name END)))
    END AS resolved FROM o
)
SELECT r.resolved, CASE
        WHEN r.kind = 'schema' THEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = r.name)
        WHEN r.resolved IS NULL THEN false
        WHEN r.kind = 'column' THEN EXISTS (SELECT 1 FROM pg_attribute
            WHERE attrelid = to_regclass(format('%%I.%%I', r.resolved, r.tbl))
              AND attname = r.name AND attnum > 0 AND NOT attisdropped)
        WHEN r.kind = 'type' THEN to_regtype(format('%%I.%%I', r.resolved, r.name)) IS NOT NULL
        ELSE to_regclass(format('%%I.%%I', r.resolved, r.name)) IS NOT NULL
    END AS present, x.indisvalid, x.indisready
FROM r LEFT JOIN pg_index x
    ON r.kind = 'index' AND x.indexrelid = CASE WHEN r.resolved IS NOT NULL
        THEN to_regclass(format('%%I.%%I', r.resolved, r.name)) END
ORDER BY r.i
"""


@dataclass(frozen=True)
class Found:
    """What the catalog says about one manifest object."""

    obj: CreatedObject  # with the schema resolved where the catalog knows it
    present: bool
    valid: bool | None  # indexes only: indisvalid and indisready


def lookup(conn: psycopg.Connection, objects: list[CreatedObject]) -> list[Found]:
    """Resolve and check many objects in one round trip."""
    if not objects:
        return []
    columns = (
        list(range(len(objects))),
        [o.kind for o in objects],
        [o.schema_name for o in objects],
        [o.name for o in objects],
        [o.table for o in objects],
    )
    rows = conn.execute(_LOOKUP, columns).fetchall()
    found = []
    for obj, (schema, present, indisvalid, indisready) in zip(objects, rows, strict=True):
        resolved = obj.model_copy(update={"schema_name": schema}) if schema else obj
        valid = None if indisvalid is None else bool(indisvalid and indisready)
        found.append(Found(obj=resolved, present=bool(present), valid=valid))
    return found


def snapshot(conn: psycopg.Connection, objects: list[CreatedObject]) -> set[tuple[str, ...]]:
    """Keys of the objects that exist now (resolved), to compare before and after a statement."""
    return {key(f.obj) for f in lookup(conn, objects) if f.present}


def key(obj: CreatedObject) -> tuple[str, ...]:
    """Identity of an object in a manifest."""
    return (obj.kind, obj.schema_name or "", obj.table or "", obj.name)


def newly_created(
    conn: psycopg.Connection, objects: list[CreatedObject], before: set[tuple[str, ...]]
) -> list[CreatedObject]:
    """The objects that exist now but did not before: what the statements really created (each
    once, in the order the SQL names them)."""
    created: dict[tuple[str, ...], CreatedObject] = {}
    for f in lookup(conn, objects):
        if f.present and key(f.obj) not in before:
            created.setdefault(key(f.obj), f.obj)
    return list(created.values())


def invalid_indexes(conn: psycopg.Connection, objects: list[CreatedObject]) -> list[CreatedObject]:
    """The indexes among ``objects`` that exist but are INVALID or not ready."""
    indexes = [o for o in objects if o.kind == "index"]
    return [f.obj for f in lookup(conn, indexes) if f.present and f.valid is False]


def index_state(conn: psycopg.Connection, schema: str, name: str) -> dict[str, bool] | None:
    """indisvalid, indisready and whether another session is building it; None if absent."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_INDEX_STATE, (schema, name)).fetchone()
    return {k: bool(v) for k, v in row.items()} if row else None


def drop_invalid_index(conn: psycopg.Connection, obj: CreatedObject) -> bool:
    """Drop the named index CONCURRENTLY if it exists and is INVALID; True when it dropped one.

    Must run on an autocommit connection outside a transaction block. Refuses to touch an index
    another session is building right now.
    """
    schema = relation_schema(conn, obj.schema_name, obj.table or "") if obj.table else None
    if schema is None:
        return False
    state = index_state(conn, schema, obj.name)
    if state is None or (state["indisvalid"] and state["indisready"]):
        return False
    if state["building"]:
        raise IndexInvalidError(
            f"index {schema}.{obj.name} is being built by another session right now "
            "(pg_stat_progress_create_index); wait for that build to end or cancel it, then rerun"
        )
    conn.execute(
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, obj.name))
    )
    return True


def check_indexes_valid(conn: psycopg.Connection, objects: list[CreatedObject]) -> None:
    """Raise IndexInvalidError unless every index among ``objects`` is valid and ready."""
    for f in lookup(conn, [o for o in objects if o.kind == "index"]):
        where = f"{f.obj.schema_name}.{f.obj.name}" if f.obj.schema_name else f.obj.name
        if not f.present:
            raise IndexInvalidError(
                f"index {where} on {f.obj.table} does not exist after its build"
            )
        if not f.valid:
            raise IndexInvalidError(
                f"index {where} is not usable after its build (indisvalid or indisready is "
                "false); a rerun drops it and builds it again"
            )
