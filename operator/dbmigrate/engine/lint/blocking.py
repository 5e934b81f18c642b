"""Blocking rules outside ALTER TABLE: index builds and maintenance commands.

Lock facts (PostgreSQL 15): CREATE INDEX takes SHARE (blocks writes for the whole build), CREATE
INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE (writes go on). VACUUM FULL and CLUSTER rewrite
the table under ACCESS EXCLUSIVE (blocks reads too). REINDEX blocks writes to the table and
reads that use the index. DROP INDEX takes ACCESS EXCLUSIVE on the table, briefly, but queues
behind every running query.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import ObjectType

from dbmigrate.engine.lint.context import StatementContext, table_name


def has_option(options: object, name: str) -> bool:
    """Whether a DefElem option list switches ``name`` on (``FULL``, ``CONCURRENTLY``)."""
    for option in options or ():  # type: ignore[attr-defined]
        if isinstance(option, ast.DefElem) and option.defname == name:
            value = option.arg
            if isinstance(value, ast.Boolean):
                return bool(value.boolval)
            if isinstance(value, ast.String):
                return (value.sval or "").lower() not in ("false", "off", "0")
            if isinstance(value, ast.Integer):
                return value.ival != 0
            return True
    return False


def check_create_index(node: ast.IndexStmt, ctx: StatementContext) -> None:
    """CREATE INDEX without CONCURRENTLY on a table that may hold rows."""
    if node.concurrent or not ctx.is_existing(node.relation):
        return
    name = f"{node.idxname} " if node.idxname else ""
    ctx.report(
        "DM201",
        f"CREATE INDEX {name}on {table_name(node.relation)} without CONCURRENTLY blocks every "
        "write to the table until the build ends.",
    )


def check_vacuum(node: ast.VacuumStmt, ctx: StatementContext) -> None:
    """VACUUM FULL."""
    if node.is_vacuumcmd and has_option(node.options, "full"):
        ctx.report("DM206", "VACUUM FULL rewrites the table; reads and writes wait until it ends.")


def check_cluster(node: ast.ClusterStmt, ctx: StatementContext) -> None:
    """CLUSTER."""
    target = table_name(node.relation) if node.relation else "every clustered table"
    ctx.report("DM207", f"CLUSTER rewrites {target}; reads and writes wait until it ends.")


def check_reindex(node: ast.ReindexStmt, ctx: StatementContext) -> None:
    """REINDEX without CONCURRENTLY."""
    if not has_option(node.params, "concurrently"):
        what = table_name(node.relation) if node.relation else node.name
        ctx.report("DM208", f"REINDEX of {what} without CONCURRENTLY blocks writes until it ends.")


def check_drop_index(node: ast.DropStmt, ctx: StatementContext) -> None:
    """DROP INDEX without CONCURRENTLY."""
    if node.removeType == ObjectType.OBJECT_INDEX and not node.concurrent:
        ctx.report(
            "DM212",
            "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table; it "
            "waits for every running query and blocks all queries behind it.",
        )


CHECKS = {
    ast.IndexStmt: [check_create_index],
    ast.VacuumStmt: [check_vacuum],
    ast.ClusterStmt: [check_cluster],
    ast.ReindexStmt: [check_reindex],
    ast.DropStmt: [check_drop_index],
}
