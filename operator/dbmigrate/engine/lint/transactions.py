"""Transaction rules: explicit BEGIN/COMMIT in a file, and what cannot run inside them.

PostgreSQL refuses CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, DETACH PARTITION
CONCURRENTLY, VACUUM and CREATE/DROP DATABASE inside a transaction block ("cannot run inside a
transaction block"). dbmigrate runs such statements on their own, in autocommit, but it cannot
take them out of a BEGIN ... COMMIT written in the file. BEGIN/COMMIT themselves also fight the
transaction dbmigrate opens around each file: the runner drops a BEGIN ... COMMIT that wraps the
whole file (DM402, a warning) and refuses any other transaction control (DM403, an error), since
a COMMIT in the middle would end its transaction before the history row is written.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import AlterTableType, TransactionStmtKind

from dbmigrate.engine.lint.blocking import has_option
from dbmigrate.engine.lint.context import StatementContext

OPENS = (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START)
CLOSES = (
    TransactionStmtKind.TRANS_STMT_COMMIT,
    TransactionStmtKind.TRANS_STMT_ROLLBACK,
    TransactionStmtKind.TRANS_STMT_PREPARE,
)


def non_transactional(node: ast.Node) -> str | None:
    """What makes this statement impossible inside a transaction block, if anything."""
    if isinstance(node, ast.IndexStmt) and node.concurrent:
        return "CREATE INDEX CONCURRENTLY"
    if isinstance(node, ast.DropStmt) and node.concurrent:
        return "DROP INDEX CONCURRENTLY"
    if isinstance(node, ast.ReindexStmt) and has_option(node.params, "concurrently"):
        return "REINDEX CONCURRENTLY"
    if isinstance(node, ast.VacuumStmt) and node.is_vacuumcmd:
        return "VACUUM"
    if isinstance(node, ast.CreatedbStmt | ast.DropdbStmt):
        return "CREATE DATABASE" if isinstance(node, ast.CreatedbStmt) else "DROP DATABASE"
    if isinstance(node, ast.AlterTableStmt):
        for cmd in node.cmds or ():
            if (
                isinstance(cmd, ast.AlterTableCmd)
                and cmd.subtype == AlterTableType.AT_DetachPartition
                and isinstance(cmd.def_, ast.PartitionCmd)
                and cmd.def_.concurrent
            ):
                return "DETACH PARTITION CONCURRENTLY"
    return None


def _closed_later(ctx: StatementContext) -> bool:
    """Whether a COMMIT/ROLLBACK follows the current statement in the file."""
    return any(
        isinstance(later.node, ast.TransactionStmt) and later.node.kind in CLOSES
        for later in ctx.state.statements[ctx.statement.index + 1 :]
    )


def check_in_transaction(node: ast.Node, ctx: StatementContext) -> None:
    """A non-transactional statement after BEGIN and before COMMIT in the same file."""
    what = non_transactional(node)
    if what is None or ctx.state.transaction_start is None:
        return
    line, _ = ctx.state.source_map.position(ctx.state.transaction_start)
    ctx.report(
        "DM401",
        f"{what} cannot run inside a transaction block, and this one is inside the BEGIN on "
        f"line {line}: PostgreSQL refuses it.",
    )


def _wrapper_position(ctx: StatementContext) -> str | None:
    """Whether the statement is the BEGIN ("first") or COMMIT ("last") wrapping the file."""
    statements = ctx.state.statements
    if len(statements) < 2:
        return None
    first, last = statements[0].node, statements[-1].node
    if not (
        isinstance(first, ast.TransactionStmt)
        and first.kind in OPENS
        and isinstance(last, ast.TransactionStmt)
        and last.kind == TransactionStmtKind.TRANS_STMT_COMMIT
    ):
        return None
    if ctx.statement.index == statements[0].index:
        return "first"
    return "last" if ctx.statement.index == statements[-1].index else None


def _control_message(node: ast.TransactionStmt, ctx: StatementContext) -> str:
    state = ctx.state
    if node.kind in OPENS and state.transaction_start is not None:
        return "BEGIN inside a transaction block that is already open."
    if node.kind in OPENS and not _closed_later(ctx):
        return "BEGIN without a later COMMIT or ROLLBACK: the transaction is never ended."
    if node.kind in OPENS:
        return "BEGIN ... COMMIT in the middle of a file: dbmigrate refuses transaction control."
    if node.kind in CLOSES and state.transaction_start is None:
        return (
            "COMMIT/ROLLBACK without a BEGIN in the file would end the transaction dbmigrate "
            "opened for the file, before its history row is written."
        )
    kind = node.kind.name.removeprefix("TRANS_STMT_") if node.kind is not None else "?"
    return f"Transaction control ({kind}) in a file: dbmigrate refuses to run it."


def check_transaction_control(node: ast.TransactionStmt, ctx: StatementContext) -> None:
    """BEGIN/COMMIT written in the file; then track whether a block is open."""
    wrapper = _wrapper_position(ctx)
    if wrapper == "first":
        ctx.report(
            "DM402",
            "This BEGIN and the final COMMIT wrap the whole file: dbmigrate drops them and runs "
            "the file in its own transaction.",
        )
    elif wrapper is None:
        ctx.report("DM403", _control_message(node, ctx))
    if node.kind in OPENS and ctx.state.transaction_start is None:
        ctx.state.transaction_start = ctx.statement.start
    elif node.kind in CLOSES:
        ctx.state.transaction_start = None


CHECKS = {
    ast.TransactionStmt: [check_transaction_control],
    ast.IndexStmt: [check_in_transaction],
    ast.DropStmt: [check_in_transaction],
    ast.ReindexStmt: [check_in_transaction],
    ast.VacuumStmt: [check_in_transaction],
    ast.CreatedbStmt: [check_in_transaction],
    ast.DropdbStmt: [check_in_transaction],
    ast.AlterTableStmt: [check_in_transaction],
}
