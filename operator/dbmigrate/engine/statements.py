"""A migration file's statements, found with PostgreSQL's own parser (pglast), never with regexes.

The parse tree decides how each statement must run: CREATE/DROP INDEX CONCURRENTLY, REINDEX
CONCURRENTLY, ALTER TYPE ... ADD VALUE, VACUUM, CREATE DATABASE and friends cannot run inside a
transaction block, so a file containing one runs statement by statement in autocommit. The tree also
names the objects a statement creates (the manifest a rollback drops), and is where the optional
CREATE INDEX -> CREATE INDEX CONCURRENTLY rewrite happens before pglast deparses it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

from dbmigrate.api.plan import CreatedObject, ObjectKind
from dbmigrate.engine.sources import MigrationSourceError

# Statements PostgreSQL refuses inside a transaction block, whatever their options.
ALWAYS_AUTOCOMMIT = (
    ast.CreatedbStmt,
    ast.DropdbStmt,
    ast.CreateTableSpaceStmt,
    ast.DropTableSpaceStmt,
    ast.AlterSystemStmt,
    ast.CreateSubscriptionStmt,
    ast.DropSubscriptionStmt,
)

# Statements that define or change objects without running a query or a procedure of their own, so
# they cannot change the session's lock_timeout/statement_timeout. Anything else (SET, RESET, DO,
# CALL, SELECT, INSERT/UPDATE/DELETE, CREATE TABLE AS, ...) may, and makes the runner put its
# timeouts in force again. Expressions such as a DEFAULT or an index expression can call
# functions too; a function that changes session settings from there is not looked for.
KEEPS_SETTINGS = (
    ast.AlterDomainStmt,
    ast.AlterEnumStmt,
    ast.AlterObjectSchemaStmt,
    ast.AlterOwnerStmt,
    ast.AlterSeqStmt,
    ast.AlterTableStmt,
    ast.CommentStmt,
    ast.CompositeTypeStmt,
    ast.CreateDomainStmt,
    ast.CreateEnumStmt,
    ast.CreateFunctionStmt,
    ast.CreatePolicyStmt,
    ast.CreateSchemaStmt,
    ast.CreateSeqStmt,
    ast.CreateStmt,
    ast.CreateTrigStmt,
    ast.DropStmt,
    ast.GrantStmt,
    ast.IndexStmt,
    ast.RenameStmt,
    ast.ViewStmt,
)


class SqlParseError(MigrationSourceError):
    """A migration file does not parse; the message gives file, line and column."""

    def __init__(self, filename: str, line: int, column: int, reason: str) -> None:
        super().__init__(
            f"{filename}:{line}:{column}: cannot parse SQL: {reason}. Migration files must be "
            "plain SQL (no psql meta-commands such as \\i or \\set)"
        )
        self.filename, self.line, self.column = filename, line, column


class TransactionControlError(MigrationSourceError):
    """A file manages transactions itself in a way dbmigrate cannot honour."""


@dataclass(frozen=True)
class Statement:
    """One top-level statement of a migration file."""

    text: str
    line: int
    needs_autocommit: bool
    kind: str
    node: ast.Node | None = field(default=None, compare=False, repr=False)

    @property
    def may_change_settings(self) -> bool:
        """Whether running it may leave other session settings (timeouts) than it found."""
        return not isinstance(self.node, KEEPS_SETTINGS)

    @property
    def first_line(self) -> str:
        """The statement's first non-empty line, for progress displays."""
        return next((ln.strip() for ln in self.text.splitlines() if ln.strip()), "")


def position(sql: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    before = sql[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def needs_autocommit(node: ast.Node) -> bool:
    """Whether PostgreSQL refuses this statement inside a transaction block."""
    if isinstance(node, ALWAYS_AUTOCOMMIT):
        return True
    if isinstance(node, ast.IndexStmt | ast.DropStmt):
        return bool(node.concurrent)
    if isinstance(node, ast.ReindexStmt):
        options = {p.defname for p in node.params or ()}
        system_wide = node.kind in (
            enums.ReindexObjectType.REINDEX_OBJECT_SYSTEM,
            enums.ReindexObjectType.REINDEX_OBJECT_DATABASE,
        )
        return "concurrently" in options or system_wide
    if isinstance(node, ast.AlterEnumStmt):
        return node.newVal is not None and node.oldVal is None
    if isinstance(node, ast.VacuumStmt):
        return bool(node.is_vacuumcmd)
    if isinstance(node, ast.ClusterStmt):
        return node.relation is None
    if isinstance(node, ast.AlterTableStmt):
        return any(
            isinstance(cmd.def_, ast.PartitionCmd) and bool(cmd.def_.concurrent)
            for cmd in node.cmds or ()
        )
    return False


def parse_tree(sql: str, filename: str = "<sql>") -> tuple[ast.RawStmt, ...]:
    """The file's parse tree (the linter reads the same one); parse errors raise SqlParseError."""
    try:
        return tuple(parse_sql(sql))
    except ParseError as exc:
        offset = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        line, column = position(sql, min(max(offset, 0), len(sql)))
        raise SqlParseError(filename, line, column, str(exc.args[0])) from exc


def split_statements(
    sql: str, filename: str = "<sql>", tree: Sequence[ast.RawStmt] | None = None
) -> list[Statement]:
    """The file's top-level statements with their line numbers, from ``tree`` when the caller
    parsed the file already; parse errors raise SqlParseError."""
    raw = parse_tree(sql, filename) if tree is None else tree
    statements = []
    for item in raw:
        start = item.stmt_location or 0
        text = sql[start : start + item.stmt_len] if item.stmt_len else sql[start:]
        node = item.stmt
        if node is None:
            continue
        statements.append(
            Statement(
                text=text.strip(),
                line=position(sql, start)[0],
                needs_autocommit=needs_autocommit(node),
                kind=type(node).__name__,
                node=node,
            )
        )
    return statements


def _transaction_kind(statement: Statement) -> enums.TransactionStmtKind | None:
    node = statement.node
    return node.kind if isinstance(node, ast.TransactionStmt) else None


def executable_statements(
    sql: str, filename: str = "<sql>", tree: Sequence[ast.RawStmt] | None = None
) -> list[Statement]:
    """The statements dbmigrate runs. A file wrapped in BEGIN ... COMMIT loses the wrapper (the
    file runs in one transaction anyway); any other transaction control is refused."""
    statements = split_statements(sql, filename, tree)
    kinds = enums.TransactionStmtKind
    if (
        len(statements) >= 2
        and _transaction_kind(statements[0]) in (kinds.TRANS_STMT_BEGIN, kinds.TRANS_STMT_START)
        and _transaction_kind(statements[-1]) == kinds.TRANS_STMT_COMMIT
    ):
        statements = statements[1:-1]
        for stmt in statements:
            if stmt.needs_autocommit:
                raise TransactionControlError(
                    f"{filename}:{stmt.line}: {stmt.first_line!r} cannot run inside the file's "
                    "BEGIN ... COMMIT block; remove BEGIN and COMMIT and dbmigrate runs the file "
                    "statement by statement"
                )
    for stmt in statements:
        if _transaction_kind(stmt) is not None:
            raise TransactionControlError(
                f"{filename}:{stmt.line}: transaction control ({stmt.first_line!r}) is managed by "
                "dbmigrate: each file runs in one transaction, or statement by statement when it "
                "contains CONCURRENTLY and the like; remove it"
            )
    return statements


def _relation(var: ast.RangeVar | None, kind: ObjectKind) -> CreatedObject | None:
    if var is None or var.relpersistence == "t" or not var.relname:  # temporary: session-bound
        return None
    return CreatedObject(kind=kind, schema_name=var.schemaname, name=var.relname)


def _type_name(names: tuple[ast.String, ...] | None) -> CreatedObject | None:
    parts = [n.sval for n in names or ()]
    if not parts:
        return None
    return CreatedObject(
        kind="type", schema_name=parts[0] if len(parts) > 1 else None, name=parts[-1]
    )


def _objects_of_node(node: ast.Node) -> list[CreatedObject]:
    """The objects one statement creates (unnamed indexes cannot be tracked and are left out)."""
    found: list[CreatedObject | None] = []
    if isinstance(node, ast.IndexStmt) and node.idxname and node.relation:
        rel = node.relation
        found.append(
            CreatedObject(
                kind="index", schema_name=rel.schemaname, name=node.idxname, table=rel.relname
            )
        )
    elif isinstance(node, ast.CreateStmt):
        found.append(_relation(node.relation, "table"))
    elif isinstance(node, ast.CreateTableAsStmt):
        matview = node.objtype == enums.ObjectType.OBJECT_MATVIEW
        kind: ObjectKind = "materialized_view" if matview else "table"
        found.append(_relation(node.into.rel if node.into else None, kind))
    elif isinstance(node, ast.ViewStmt):
        found.append(_relation(node.view, "view"))
    elif isinstance(node, ast.CreateSeqStmt):
        found.append(_relation(node.sequence, "sequence"))
    elif isinstance(node, ast.CreateSchemaStmt) and node.schemaname:
        found.append(CreatedObject(kind="schema", name=node.schemaname))
    elif isinstance(node, ast.CreateEnumStmt):
        found.append(_type_name(node.typeName))
    elif isinstance(node, ast.CompositeTypeStmt):
        found.append(_relation(node.typevar, "type"))
    elif isinstance(node, ast.AlterTableStmt) and node.objtype == enums.ObjectType.OBJECT_TABLE:
        rel = node.relation or ast.RangeVar()
        for cmd in node.cmds or ():
            if cmd.subtype == enums.AlterTableType.AT_AddColumn and cmd.def_ is not None:
                found.append(
                    CreatedObject(
                        kind="column",
                        schema_name=rel.schemaname,
                        name=cmd.def_.colname,
                        table=rel.relname,
                    )
                )
    return [obj for obj in found if obj is not None]


def created_objects_of(sql: str | Statement, filename: str = "<sql>") -> list[CreatedObject]:
    """The objects a file (or one statement) creates; schemas are None where the SQL leaves them
    to the search_path (the apply resolves them)."""
    statements = [sql] if isinstance(sql, Statement) else split_statements(sql, filename)
    return [obj for stmt in statements if stmt.node for obj in _objects_of_node(stmt.node)]


def _table_key(var: ast.RangeVar | None) -> set[str]:
    if var is None or not var.relname:
        return set()
    if var.schemaname:
        return {f"{var.schemaname}.{var.relname}"}
    return {var.relname}


def rewrite_concurrently(statement: Statement, existing_tables: Collection[str]) -> Statement:
    """CREATE INDEX on a table in ``existing_tables`` (``name`` or ``schema.name``) becomes
    CREATE INDEX CONCURRENTLY, edited on the parse tree and deparsed by pglast. Anything else is
    returned unchanged."""
    node = statement.node
    if not isinstance(node, ast.IndexStmt) or node.concurrent:
        return statement
    if not _table_key(node.relation) & set(existing_tables):
        return statement
    tree = parse_sql(statement.text)[0].stmt  # a private copy: the original tree stays untouched
    assert isinstance(tree, ast.IndexStmt)
    tree.concurrent = True
    text = RawStream()(tree)
    return replace(statement, text=text, needs_autocommit=True, node=tree)
