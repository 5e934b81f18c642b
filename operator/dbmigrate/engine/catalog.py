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


def _qualified(name_param: str) -> str:
    """SQL text naming a (possibly unqualified) object from the %(schema)s and a name param."""
    return (
        f"CASE WHEN %(schema)s::text IS NULL THEN quote_ident({name_param}::text)"
        f" ELSE format('%%I.%%I', %(schema)s::text, {name_param}::text) END"
    )


# One small query per kind: cheap to plan, and prepared by psycopg once it repeats.
_QUERIES = {
    "index": "SELECT n.nspname, x.indisvalid, x.indisready FROM pg_class t"
    " JOIN pg_namespace n ON n.oid = t.relnamespace"
    " LEFT JOIN pg_class i ON i.relname = %(name)s AND i.relnamespace = t.relnamespace"
    " AND i.relkind IN ('i', 'I') LEFT JOIN pg_index x ON x.indexrelid = i.oid"
    f" WHERE t.oid = to_regclass({_qualified('%(table)s')})",
    "column": "SELECT n.nspname, EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = t.oid"
    " AND attname = %(name)s AND attnum > 0 AND NOT attisdropped), NULL FROM pg_class t"
    " JOIN pg_namespace n ON n.oid = t.relnamespace"
    f" WHERE t.oid = to_regclass({_qualified('%(table)s')})",
    "type": "SELECT n.nspname, true, NULL FROM pg_type t"
    " JOIN pg_namespace n ON n.oid = t.typnamespace"
    f" WHERE t.oid = to_regtype({_qualified('%(name)s')})",
    "schema": "SELECT NULL, true, NULL FROM pg_namespace WHERE nspname = %(name)s",
    "relation": "SELECT n.nspname, true, NULL FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE c.oid = to_regclass({_qualified('%(name)s')})",
}


@dataclass(frozen=True)
class Found:
    """What the catalog says about one manifest object."""

    obj: CreatedObject  # with the schema resolved where the catalog knows it
    present: bool
    valid: bool | None = None  # indexes only: indisvalid and indisready


def _lookup_one(conn: psycopg.Connection, obj: CreatedObject) -> Found:
    query = _QUERIES.get(obj.kind, _QUERIES["relation"])
    params = {"schema": obj.schema_name, "name": obj.name, "table": obj.table or ""}
    row = conn.execute(query, params).fetchone()
    if row is None:
        return Found(obj=obj, present=False)
    schema, flag, ready = row
    resolved = obj.model_copy(update={"schema_name": schema}) if schema else obj
    if obj.kind == "index":
        present = flag is not None
        return Found(obj=resolved, present=present, valid=bool(flag and ready) if present else None)
    return Found(obj=resolved, present=bool(flag))


def lookup(conn: psycopg.Connection, objects: list[CreatedObject]) -> list[Found]:
    """Resolve each object's schema and whether it exists (and, for an index, is usable)."""
    return [_lookup_one(conn, obj) for obj in objects]


def key(obj: CreatedObject) -> tuple[str, ...]:
    """Identity of an object in a manifest."""
    return (obj.kind, obj.schema_name or "", obj.table or "", obj.name)


def present_keys(found: list[Found]) -> set[tuple[str, ...]]:
    """Keys of the objects found present."""
    return {key(f.obj) for f in found if f.present}


def created_since(after: list[Found], before: set[tuple[str, ...]]) -> list[CreatedObject]:
    """The objects present now but not before: what the statements really created (each once,
    in the order the SQL names them)."""
    created: dict[tuple[str, ...], CreatedObject] = {}
    for f in after:
        if f.present and key(f.obj) not in before:
            created.setdefault(key(f.obj), f.obj)
    return list(created.values())


def invalid(found: list[Found]) -> list[CreatedObject]:
    """The indexes found present but INVALID or not ready."""
    return [f.obj for f in found if f.obj.kind == "index" and f.present and f.valid is False]


def raise_unless_valid(found: list[Found]) -> None:
    """Raise IndexInvalidError unless every index among ``found`` exists, valid and ready."""
    for f in found:
        if f.obj.kind != "index":
            continue
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
