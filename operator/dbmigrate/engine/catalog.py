"""What the catalog says about the objects a migration creates: where they live, whether they
exist, and whether an index is valid.

This is where the INVALID-index trap is defeated: an interrupted CREATE INDEX CONCURRENTLY leaves an
index with indisvalid = false behind, and CREATE INDEX CONCURRENTLY IF NOT EXISTS would then skip
it and succeed. Before (re)building an index the engine looks it up, drops an invalid one
concurrently, and after the build checks indisvalid and indisready.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine.errors import IndexInvalidError

RELATION_KINDS = ("index", "table", "view", "materialized_view", "sequence")

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


def resolve(conn: psycopg.Connection, obj: CreatedObject) -> CreatedObject:
    """The object with its schema filled in from the catalog (unchanged if it cannot resolve)."""
    if obj.schema_name or obj.kind == "schema":
        return obj
    if obj.kind in ("index", "column") and obj.table:
        schema = relation_schema(conn, None, obj.table)
    elif obj.kind == "type":
        row = conn.execute(
            "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE t.oid = to_regtype(quote_ident(%s))",
            (obj.name,),
        ).fetchone()
        schema = str(row[0]) if row else None
    else:
        schema = relation_schema(conn, None, obj.name)
    return obj.model_copy(update={"schema_name": schema}) if schema else obj


def exists(conn: psycopg.Connection, obj: CreatedObject) -> bool:
    """Whether the (resolved) object exists now."""
    schema = obj.schema_name
    if obj.kind == "schema":
        query = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
        return conn.execute(query, (obj.name,)).fetchone() is not None
    if schema is None:
        return False
    if obj.kind == "column":
        query = (
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(format('%%I.%%I', %s::text,"
            " %s::text)) AND attname = %s AND attnum > 0 AND NOT attisdropped"
        )
        return conn.execute(query, (schema, obj.table, obj.name)).fetchone() is not None
    if obj.kind == "type":
        query = "SELECT to_regtype(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL"
    else:
        query = "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL"
    row = conn.execute(query, (schema, obj.name)).fetchone()
    return bool(row and row[0])


def snapshot(conn: psycopg.Connection, objects: list[CreatedObject]) -> set[tuple[str, ...]]:
    """Keys of the objects that exist now (resolved), to compare before and after a statement."""
    found = set()
    for obj in objects:
        resolved = resolve(conn, obj)
        if exists(conn, resolved):
            found.add(key(resolved))
    return found


def key(obj: CreatedObject) -> tuple[str, ...]:
    """Identity of an object in a manifest."""
    return (obj.kind, obj.schema_name or "", obj.table or "", obj.name)


def newly_created(
    conn: psycopg.Connection, objects: list[CreatedObject], before: set[tuple[str, ...]]
) -> list[CreatedObject]:
    """The objects that exist now but did not before: what this statement really created."""
    created = []
    for obj in objects:
        resolved = resolve(conn, obj)
        if key(resolved) not in before and exists(conn, resolved):
            created.append(resolved)
    return created


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
    for obj in objects:
        if obj.kind != "index":
            continue
        resolved = resolve(conn, obj)
        if resolved.schema_name is None:
            raise IndexInvalidError(
                f"index {obj.name} on {obj.table} does not exist after its build"
            )
        state = index_state(conn, resolved.schema_name, obj.name)
        if state is None:
            raise IndexInvalidError(
                f"index {resolved.schema_name}.{obj.name} does not exist after its build"
            )
        if not (state["indisvalid"] and state["indisready"]):
            raise IndexInvalidError(
                f"index {resolved.schema_name}.{obj.name} is not usable after its build "
                f"(indisvalid={state['indisvalid']}, indisready={state['indisready']}); "
                "a rerun drops it and builds it again"
            )
