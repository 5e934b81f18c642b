"""Idempotency rules: a file that stopped half-way must run again without failing.

Statements that cannot run inside a transaction (CREATE INDEX CONCURRENTLY and friends) are
committed one by one, so a file that fails after them is re-run from a database where they
already happened. ``IF NOT EXISTS`` / ``IF EXISTS`` / ``OR REPLACE`` make the re-run succeed.
Statements that have no such form in PostgreSQL (CREATE TYPE, ADD CONSTRAINT) are not reported.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import AlterTableType, ObjectType

from dbmigrate.engine.lint.context import StatementContext

DROP_KINDS = {
    ObjectType.OBJECT_TABLE: "TABLE",
    ObjectType.OBJECT_INDEX: "INDEX",
    ObjectType.OBJECT_VIEW: "VIEW",
    ObjectType.OBJECT_MATVIEW: "MATERIALIZED VIEW",
    ObjectType.OBJECT_SEQUENCE: "SEQUENCE",
    ObjectType.OBJECT_SCHEMA: "SCHEMA",
    ObjectType.OBJECT_TYPE: "TYPE",
    ObjectType.OBJECT_DOMAIN: "DOMAIN",
    ObjectType.OBJECT_FUNCTION: "FUNCTION",
    ObjectType.OBJECT_PROCEDURE: "PROCEDURE",
    ObjectType.OBJECT_TRIGGER: "TRIGGER",
    ObjectType.OBJECT_EXTENSION: "EXTENSION",
}


def _create(ctx: StatementContext, what: str, fix: str = "IF NOT EXISTS") -> None:
    ctx.report(
        "DM301",
        f"CREATE {what} without {fix} fails if the migration is run again after a partial failure.",
        hint=f"Write CREATE {what} {fix} ..." if fix == "IF NOT EXISTS" else f"Use {fix}.",
    )


def check_create_table(node: ast.CreateStmt, ctx: StatementContext) -> None:
    """CREATE TABLE without IF NOT EXISTS."""
    if not node.if_not_exists:
        _create(ctx, "TABLE")


def check_create_index(node: ast.IndexStmt, ctx: StatementContext) -> None:
    """CREATE INDEX without IF NOT EXISTS (which needs an index name)."""
    if node.if_not_exists:
        return
    if node.idxname:
        _create(ctx, "INDEX CONCURRENTLY" if node.concurrent else "INDEX")
    else:
        _create(ctx, "INDEX", "an index name and IF NOT EXISTS")


def check_create_simple(node: ast.Node, ctx: StatementContext) -> None:
    """CREATE SCHEMA / SEQUENCE / EXTENSION / TABLE AS without IF NOT EXISTS."""
    if getattr(node, "if_not_exists", True):
        return
    what = {
        ast.CreateSchemaStmt: "SCHEMA",
        ast.CreateSeqStmt: "SEQUENCE",
        ast.CreateExtensionStmt: "EXTENSION",
    }.get(type(node))
    if isinstance(node, ast.CreateTableAsStmt):
        what = "MATERIALIZED VIEW" if node.objtype == ObjectType.OBJECT_MATVIEW else "TABLE AS"
    if what:
        _create(ctx, what)


def check_create_or_replace(node: ast.Node, ctx: StatementContext) -> None:
    """CREATE VIEW / FUNCTION / TRIGGER without OR REPLACE."""
    if getattr(node, "replace", True):
        return
    if isinstance(node, ast.ViewStmt):
        _create(ctx, "VIEW", "CREATE OR REPLACE VIEW")
    elif isinstance(node, ast.CreateFunctionStmt):
        kind = "PROCEDURE" if node.is_procedure else "FUNCTION"
        _create(ctx, kind, f"CREATE OR REPLACE {kind}")
    elif isinstance(node, ast.CreateTrigStmt):
        _create(ctx, "TRIGGER", "CREATE OR REPLACE TRIGGER (PostgreSQL 14+)")


def check_drop(node: ast.DropStmt, ctx: StatementContext) -> None:
    """DROP ... without IF EXISTS."""
    kind = DROP_KINDS.get(node.removeType) if node.removeType is not None else None
    if kind and not node.missing_ok:
        ctx.report(
            "DM302",
            f"DROP {kind} without IF EXISTS fails if the migration is run again after a "
            "partial failure.",
            hint=f"Write DROP {kind} IF EXISTS ...",
        )


def check_alter_table(node: ast.AlterTableStmt, ctx: StatementContext) -> None:
    """ADD COLUMN without IF NOT EXISTS; DROP COLUMN / CONSTRAINT without IF EXISTS."""
    for cmd in node.cmds or ():
        if not isinstance(cmd, ast.AlterTableCmd) or cmd.missing_ok:
            continue
        if cmd.subtype == AlterTableType.AT_AddColumn:
            column = cmd.def_.colname if isinstance(cmd.def_, ast.ColumnDef) else "?"
            ctx.report(
                "DM301",
                f"ADD COLUMN {column} without IF NOT EXISTS fails if the migration is run again.",
                getattr(cmd.def_, "location", None),
                hint="Write ADD COLUMN IF NOT EXISTS ...",
            )
        elif cmd.subtype in (AlterTableType.AT_DropColumn, AlterTableType.AT_DropConstraint):
            what = "COLUMN" if cmd.subtype == AlterTableType.AT_DropColumn else "CONSTRAINT"
            ctx.report(
                "DM302",
                f"DROP {what} {cmd.name} without IF EXISTS fails if the migration is run again.",
                hint=f"Write DROP {what} IF EXISTS ...",
            )


CHECKS = {
    ast.CreateStmt: [check_create_table],
    ast.IndexStmt: [check_create_index],
    ast.CreateSchemaStmt: [check_create_simple],
    ast.CreateSeqStmt: [check_create_simple],
    ast.CreateExtensionStmt: [check_create_simple],
    ast.CreateTableAsStmt: [check_create_simple],
    ast.ViewStmt: [check_create_or_replace],
    ast.CreateFunctionStmt: [check_create_or_replace],
    ast.CreateTrigStmt: [check_create_or_replace],
    ast.DropStmt: [check_drop],
    ast.AlterTableStmt: [check_alter_table],
}
