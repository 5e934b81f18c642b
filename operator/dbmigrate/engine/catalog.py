"""What the catalog says about the objects a migration creates: where they live, whether they
exist, and whether an index is valid.

This is where the INVALID-index trap is defeated: an interrupted CREATE INDEX CONCURRENTLY leaves an
index with indisvalid = false behind, and CREATE INDEX CONCURRENTLY IF NOT EXISTS would then skip
it and succeed. Before (re)building an index the engine looks it up, drops an invalid one
concurrently, and after the build checks indisvalid and indisready.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def regname(schema: str | None, name: str) -> str:
    """The quoted (possibly schema-qualified) name to_regclass and to_regtype take."""
    quoted = '"' + name.replace('"', '""') + '"'
    return quoted if schema is None else regname(None, schema) + "." + quoted


# One branch per kind of object, each gated on the object's kind (a one-time filter per row). The
# names reach to_regclass/to_regtype already quoted, NULL where the kind has none, so no branch can
# fail on another kind's input. A look-up joins only the branches of the kinds it asks about: the
# query stays as cheap to plan as the kinds it needs.
_BRANCHES = {
    # the index is looked for in its table's schema; only indexes have a pg_index row
    "index": "SELECT n.nspname, x.indisvalid, x.indisready FROM pg_class t"
    " JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN pg_index x"
    " ON x.indexrelid = to_regclass(quote_ident(n.nspname) || '.' || quote_ident(o.name))"
    " WHERE o.kind = 'index' AND t.oid = to_regclass(o.target)",
    "column": "SELECT n.nspname, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid"
    " AND a.attname = o.name AND a.attnum > 0 AND NOT a.attisdropped), NULL"
    " FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace"
    " WHERE o.kind = 'column' AND t.oid = to_regclass(o.target)",
    "type": "SELECT n.nspname, true, NULL FROM pg_type t"
    " JOIN pg_namespace n ON n.oid = t.typnamespace"
    " WHERE o.kind = 'type' AND t.oid = to_regtype(o.target)",
    "schema": "SELECT NULL, true, NULL FROM pg_namespace s"
    " WHERE o.kind = 'schema' AND s.nspname = o.name",
    "relation": "SELECT n.nspname, true, NULL FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE o.kind NOT IN ('index', 'column', 'type', 'schema')"
    " AND c.oid = to_regclass(o.target)",
}

# All objects of one look-up in one round trip: one row per object, in order.
_LOOKUP = (
    "SELECT r.nspname, r.flag, r.ready"
    " FROM unnest(%(kinds)s::text[], %(targets)s::text[], %(names)s::text[])"
    " WITH ORDINALITY AS o(kind, target, name, i)"
    " LEFT JOIN LATERAL ({branches}) r(nspname, flag, ready) ON true ORDER BY o.i"
)


def _lookup_query(kinds: Iterable[str]) -> str:
    """The look-up for objects of these kinds (the same text for the same kinds, so psycopg
    prepares it once it repeats)."""
    needed = {k if k in _BRANCHES else "relation" for k in kinds}
    branches = [sql for kind, sql in _BRANCHES.items() if kind in needed]
    return _LOOKUP.format(branches=" UNION ALL ".join(branches))


@dataclass(frozen=True)
class Found:
    """What the catalog says about one manifest object."""

    obj: CreatedObject  # with the schema resolved where the catalog knows it
    present: bool
    valid: bool | None = None  # indexes only: indisvalid and indisready


def _target(obj: CreatedObject) -> str | None:
    """What the look-up resolves: the table of an index or column, the object itself otherwise."""
    if obj.kind in ("index", "column"):
        return regname(obj.schema_name, obj.table) if obj.table else None
    return None if obj.kind == "schema" else regname(obj.schema_name, obj.name)


def _found(obj: CreatedObject, row: tuple[object, ...]) -> Found:
    schema, flag, ready = row
    resolved = obj.model_copy(update={"schema_name": schema}) if schema else obj
    if obj.kind == "index":
        present = flag is not None
        return Found(obj=resolved, present=present, valid=bool(flag and ready) if present else None)
    return Found(obj=resolved, present=bool(flag))


def lookup(conn: psycopg.Connection, objects: list[CreatedObject]) -> list[Found]:
    """Resolve each object's schema and whether it exists (and, for an index, is usable), all in
    one query; no query at all for no objects."""
    if not objects:
        return []
    kinds = [o.kind for o in objects]
    params = {
        "kinds": kinds,
        "targets": [_target(o) for o in objects],
        "names": [o.name for o in objects],
    }
    rows = conn.execute(_lookup_query(kinds), params).fetchall()
    return [_found(obj, row) for obj, row in zip(objects, rows, strict=True)]


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


class LookAhead:
    """Look-ups of consecutive steps in one round trip each: the look-up after a step also asks
    about the objects the next step will create, and that answer serves as the next step's
    look-up before it runs (nothing of ours runs in between; a step that is retried, or that turns
    out to ask about other objects, looks them up again)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._ahead: tuple[list[CreatedObject], list[Found]] | None = None

    def before(self, objects: list[CreatedObject]) -> list[Found]:
        """The objects as they are before their step runs; each answer read ahead is used once."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == objects:
            return ahead[1]
        return lookup(self.conn, objects)

    def after(self, objects: list[CreatedObject], upcoming: list[CreatedObject]) -> list[Found]:
        """The objects as they are after their step ran, reading ``upcoming`` ahead."""
        found = lookup(self.conn, objects + upcoming)
        self._ahead = (upcoming, found[len(objects) :]) if upcoming else None
        return found[: len(objects)]

    def forget(self) -> None:
        """Drop what was read ahead (after a failure, or when the catalog may have changed)."""
        self._ahead = None
