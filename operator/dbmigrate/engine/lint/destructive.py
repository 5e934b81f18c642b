"""Destructive rules: statements that delete data or break the running application.

A table created earlier in the same file holds nothing of value yet, so statements on it are not
reported (dropping or emptying it loses nothing that existed before the migration).
"""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import AlterTableType, DropBehavior, ObjectType

from dbmigrate.engine.lint.context import StatementContext, qualified, table_name
from dbmigrate.engine.lint.exprs import location

OTHER_DROPS = {
    ObjectType.OBJECT_VIEW: "view",
    ObjectType.OBJECT_MATVIEW: "materialized view",
    ObjectType.OBJECT_SEQUENCE: "sequence",
    ObjectType.OBJECT_TYPE: "type",
    ObjectType.OBJECT_DOMAIN: "domain",
    ObjectType.OBJECT_FUNCTION: "function",
    ObjectType.OBJECT_PROCEDURE: "procedure",
    ObjectType.OBJECT_TRIGGER: "trigger",
    ObjectType.OBJECT_EXTENSION: "extension",
    ObjectType.OBJECT_FOREIGN_TABLE: "foreign table",
}


def as_relation(names: object) -> ast.RangeVar | None:
    """A RangeVar for a DropStmt object given as a list of names, else None."""
    if not isinstance(names, tuple | list):
        return None
    parts = [p.sval for p in names if isinstance(p, ast.String)]
    if not parts:
        return None
    schema = parts[-2] if len(parts) > 1 else None
    return ast.RangeVar(relname=parts[-1], schemaname=schema, inh=True, relpersistence="p")


def check_drop(node: ast.DropStmt, ctx: StatementContext) -> None:
    """DROP TABLE / SCHEMA (errors) and DROP of other objects (warnings)."""
    kind = node.removeType
    if kind == ObjectType.OBJECT_TABLE:
        names = [
            qualified(obj)
            for obj in node.objects or ()
            if ctx.is_existing(as_relation(obj)) and isinstance(obj, tuple | list)
        ]
        if names:
            ctx.report("DM101", f"DROP TABLE deletes {', '.join(names)} and all of its rows.")
    elif kind == ObjectType.OBJECT_SCHEMA:
        names = [str(o.sval) for o in node.objects or () if isinstance(o, ast.String)]
        cascade = " and everything in it" if node.behavior == DropBehavior.DROP_CASCADE else ""
        ctx.report("DM103", f"DROP SCHEMA deletes {', '.join(names)}{cascade}.")
    elif kind in OTHER_DROPS:
        ctx.report("DM109", f"DROP {OTHER_DROPS[kind].upper()} may break clients that use it.")


def check_dropdb(node: ast.DropdbStmt, ctx: StatementContext) -> None:
    """DROP DATABASE never belongs in a schema migration."""
    ctx.report("DM107", f"DROP DATABASE deletes the database {node.dbname}.")


def check_truncate(node: ast.TruncateStmt, ctx: StatementContext) -> None:
    """TRUNCATE of an existing table deletes every row (CASCADE: of referencing tables too)."""
    tables = [r for r in node.relations or () if ctx.is_existing(r)]
    if tables:
        names = ", ".join(table_name(r) for r in tables)
        cascade = (
            ", and of every table referencing it (CASCADE)"
            if node.behavior == DropBehavior.DROP_CASCADE
            else ""
        )
        ctx.report("DM104", f"TRUNCATE deletes every row of {names}{cascade}.")


def check_delete(node: ast.DeleteStmt, ctx: StatementContext) -> None:
    """DELETE without WHERE on an existing table."""
    if node.whereClause is None and ctx.is_existing(node.relation):
        ctx.report(
            "DM105", f"DELETE without WHERE deletes every row of {table_name(node.relation)}."
        )


def check_update(node: ast.UpdateStmt, ctx: StatementContext) -> None:
    """UPDATE without WHERE on an existing table."""
    if node.whereClause is None and ctx.is_existing(node.relation):
        ctx.report(
            "DM106",
            f"UPDATE without WHERE rewrites every row of {table_name(node.relation)} in one "
            "transaction (long row locks, table bloat).",
        )


def check_alter_drop_column(node: ast.AlterTableStmt, ctx: StatementContext) -> None:
    """ALTER TABLE ... DROP COLUMN on an existing table."""
    if not ctx.is_existing(node.relation):
        return
    for cmd in node.cmds or ():
        if isinstance(cmd, ast.AlterTableCmd) and cmd.subtype == AlterTableType.AT_DropColumn:
            ctx.report(
                "DM102",
                f"DROP COLUMN deletes {table_name(node.relation)}.{cmd.name} and its data; "
                "a running application that still uses it fails.",
            )


def check_rename(node: ast.RenameStmt, ctx: StatementContext) -> None:
    """Renaming a table or a column of an existing table breaks clients using the old name."""
    if node.renameType == ObjectType.OBJECT_TABLE and ctx.is_existing(node.relation):
        what = f"table {table_name(node.relation)}"
    elif node.renameType == ObjectType.OBJECT_COLUMN and ctx.is_existing(node.relation):
        what = f"column {table_name(node.relation)}.{node.subname}"
    else:
        return
    ctx.report(
        "DM108",
        f"Renaming {what} to {node.newname} breaks the running application.",
        location(node.relation) if node.relation is not None else None,
    )


CHECKS = {
    ast.DropStmt: [check_drop],
    ast.DropdbStmt: [check_dropdb],
    ast.TruncateStmt: [check_truncate],
    ast.DeleteStmt: [check_delete],
    ast.UpdateStmt: [check_update],
    ast.AlterTableStmt: [check_alter_drop_column],
    ast.RenameStmt: [check_rename],
}
