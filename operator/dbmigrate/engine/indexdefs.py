"""What migration SQL does to tables and indexes, read from the PostgreSQL parse tree (pglast).

Preflight needs the tables the SQL touches and the indexes it builds (their columns, predicate,
uniqueness); verify needs the same indexes to compare with the catalog. Both read them here from
the parse tree, never with regexes. Pure code: no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pglast import ast, enums, parse_sql
from pglast.stream import RawStream
from pglast.visitors import Visitor

DEFAULT_METHOD = "btree"


@dataclass(frozen=True)
class IndexDef:
    """A CREATE INDEX statement of a migration file."""

    name: str
    schema: str | None
    table: str
    method: str
    unique: bool
    nulls_not_distinct: bool
    concurrent: bool
    partial: bool
    key_columns: tuple[str, ...]
    key_sql: tuple[str, ...]
    include_columns: tuple[str, ...]
    predicate_sql: str | None
    referenced_columns: tuple[str, ...]
    simple_keys: bool
    statement: ast.IndexStmt = field(compare=False, repr=False)
    version: int | None = None


@dataclass(frozen=True)
class TableRef:
    """A table the SQL touches, and whether the SQL creates it."""

    schema: str | None
    name: str
    created: bool


class _ColumnRefs(Visitor):
    def __init__(self) -> None:
        self.columns: list[str] = []

    def visit_ColumnRef(self, ancestors: object, node: ast.ColumnRef) -> None:
        last = (node.fields or (None,))[-1]
        if isinstance(last, ast.String) and last.sval and last.sval not in self.columns:
            self.columns.append(last.sval)


def _rel(var: ast.RangeVar | None) -> tuple[str | None, str]:
    """(schema, name) of a RangeVar."""
    if var is None or not var.relname:
        raise ValueError("statement without a relation")
    return var.schemaname, str(var.relname)


def column_refs(node: ast.Node | None) -> list[str]:
    """Names of the columns an expression refers to (last part of each reference)."""
    if node is None:
        return []
    visitor = _ColumnRefs()
    visitor(node)
    return visitor.columns


def deparse(node: ast.Node) -> str:
    """SQL text of a parse-tree node, written by pglast."""
    return str(RawStream()(node))


def index_def(stmt: ast.IndexStmt, version: int | None = None) -> IndexDef:
    """An IndexDef from a parsed CREATE INDEX."""
    keys: list[str] = []
    key_sql: list[str] = []
    referenced: list[str] = []
    simple = True
    for elem in stmt.indexParams or ():
        if elem.name:
            keys.append(str(elem.name))
            key_sql.append(str(elem.name))
            referenced.append(str(elem.name))
        else:
            simple = False
            key_sql.append(deparse(elem.expr))
            referenced.extend(column_refs(elem.expr))
    include = [str(e.name) for e in stmt.indexIncludingParams or () if e.name]
    referenced.extend(include)
    referenced.extend(column_refs(stmt.whereClause))
    schema, table = _rel(stmt.relation)
    return IndexDef(
        name=stmt.idxname or "",
        schema=schema,
        table=table,
        method=stmt.accessMethod or DEFAULT_METHOD,
        unique=bool(stmt.unique),
        nulls_not_distinct=bool(stmt.nulls_not_distinct),
        concurrent=bool(stmt.concurrent),
        partial=stmt.whereClause is not None,
        key_columns=tuple(keys),
        key_sql=tuple(key_sql),
        include_columns=tuple(include),
        predicate_sql=deparse(stmt.whereClause) if stmt.whereClause is not None else None,
        referenced_columns=tuple(dict.fromkeys(referenced)),
        simple_keys=simple,
        statement=stmt,
        version=version,
    )


def statements(sql: str) -> list[ast.Node]:
    """The parsed statements of a SQL text."""
    return [raw.stmt for raw in parse_sql(sql) if raw.stmt is not None]


def index_defs(sql: str, version: int | None = None) -> list[IndexDef]:
    """Every CREATE INDEX of a SQL text, in order."""
    return [index_def(s, version) for s in statements(sql) if isinstance(s, ast.IndexStmt)]


def touched_tables(sql_texts: Iterable[str]) -> list[TableRef]:
    """Tables that CREATE TABLE, CREATE INDEX and ALTER TABLE statements touch, in order."""
    found: dict[tuple[str | None, str], TableRef] = {}
    for sql in sql_texts:
        for stmt in statements(sql):
            ref = _table_of(stmt)
            if ref is not None and (ref.schema, ref.name) not in found:
                found[(ref.schema, ref.name)] = ref
    return list(found.values())


def _table_of(stmt: ast.Node) -> TableRef | None:
    if isinstance(stmt, ast.CreateStmt):
        return TableRef(*_rel(stmt.relation), created=True)
    if isinstance(stmt, ast.IndexStmt | ast.AlterTableStmt) and stmt.relation is not None:
        return TableRef(*_rel(stmt.relation), created=False)
    return None


def created_schemas(sql_texts: Iterable[str]) -> list[str]:
    """Schemas the SQL creates itself."""
    names: list[str] = []
    for sql in sql_texts:
        for stmt in statements(sql):
            if isinstance(stmt, ast.CreateSchemaStmt) and stmt.schemaname:
                names.append(str(stmt.schemaname))
    return names


def index_sql_on(index: IndexDef, schema: str, table: str, concurrent: bool = False) -> str:
    """The index's CREATE INDEX re-targeted at SCHEMA.TABLE, without IF NOT EXISTS (and without
    CONCURRENTLY unless asked: ``repair`` rebuilds the real index concurrently).

    Used to let PostgreSQL render the file's definition on an empty copy of the table, so it can
    be compared with pg_get_indexdef of the real index in PostgreSQL's own normal form.
    """
    stmt = index.statement
    slots: dict[str, object] = getattr(stmt, "__slots__", {})
    copy = ast.IndexStmt(**{name: getattr(stmt, name) for name in slots if hasattr(stmt, name)})
    copy.relation = ast.RangeVar(schemaname=schema, relname=table, inh=True, relpersistence="p")
    copy.concurrent = concurrent
    copy.if_not_exists = False
    return deparse(copy)


def comparable_definition(indexdef: str) -> str:
    """pg_get_indexdef text with the index and table names removed, deparsed by pglast."""
    stmts = statements(indexdef)
    if len(stmts) != 1 or not isinstance(stmts[0], ast.IndexStmt):
        raise ValueError(f"not a single CREATE INDEX: {indexdef!r}")
    stmt = stmts[0]
    stmt.idxname = "x"
    stmt.relation = ast.RangeVar(relname="t", inh=True, relpersistence="p")
    return deparse(stmt)


def dropped_indexes(stmt: ast.Node) -> list[str]:
    """Index names a DROP INDEX statement drops (the last part of each name)."""
    if not isinstance(stmt, ast.DropStmt) or stmt.removeType != enums.ObjectType.OBJECT_INDEX:
        return []
    names: list[str] = []
    for obj in stmt.objects or ():
        parts = [str(p.sval) for p in obj if isinstance(p, ast.String)]
        if parts:
            names.append(parts[-1])
    return names
