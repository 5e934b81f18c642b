"""Rules about what a file does to its own session: explicit table locks and the timeouts.

Both escape the other rules, which judge DDL by the locks it takes: ``LOCK TABLE`` takes the lock
it names and holds it until the file's transaction ends (so every statement after it lengthens
the outage), and ``SET lock_timeout = 0`` (pg_dump writes it in every dump's header) would let
the next ALTER TABLE queue forever behind a long transaction while every writer queues behind it.
The apply puts the run's own timeouts back after such a SET (a file can only lower them); the
linter still reports it, so that under the strict policy a file that tries is refused.
"""

from __future__ import annotations

import re

from pglast import ast
from pglast.enums.parsenodes import VariableSetKind

from dbmigrate.engine.lint.context import StatementContext, table_name

LOCK_MODES = {
    1: "ACCESS SHARE",
    2: "ROW SHARE",
    3: "ROW EXCLUSIVE",
    4: "SHARE UPDATE EXCLUSIVE",
    5: "SHARE",
    6: "SHARE ROW EXCLUSIVE",
    7: "EXCLUSIVE",
    8: "ACCESS EXCLUSIVE",
}
# SHARE and stronger block writes; EXCLUSIVE and stronger block reads as well (ACCESS EXCLUSIVE).
BLOCKS_WRITES = 5
TIMEOUTS = ("lock_timeout", "statement_timeout")
_ZERO = re.compile(r"^\s*0+(\.0*)?\s*(us|ms|s|min|h|d)?\s*$", re.IGNORECASE)


def _what_it_blocks(mode: int) -> str:
    if mode == 8:
        return "every read and write of the table"
    if mode >= BLOCKS_WRITES:
        return "every write to the table"
    return "the DDL that conflicts with it"


def check_lock(node: ast.LockStmt, ctx: StatementContext) -> None:
    """LOCK TABLE: the mode, what it blocks, and how much of the transaction follows it."""
    mode = int(node.mode or 8)
    tables = ", ".join(table_name(r) for r in node.relations or ())
    following = len(ctx.state.statements) - ctx.statement.index - 1
    rest = (
        f"it is held until the file's transaction ends, {following} statement(s) later"
        if following
        else "it is held until the file's transaction ends"
    )
    ctx.report(
        "DM214",
        f"LOCK TABLE {tables} IN {LOCK_MODES.get(mode, str(mode))} MODE blocks "
        f"{_what_it_blocks(mode)}; {rest}.",
    )


def _disables(node: ast.VariableSetStmt) -> bool:
    if node.kind in (VariableSetKind.VAR_SET_DEFAULT, VariableSetKind.VAR_RESET):
        return True
    for arg in node.args or ():
        value = getattr(arg, "val", None)
        if isinstance(value, ast.Integer) and value.ival == 0:
            return True
        if isinstance(value, ast.String) and _ZERO.match(value.sval or ""):
            return True
    return False


def check_set_timeout(node: ast.VariableSetStmt, ctx: StatementContext) -> None:
    """SET / RESET of lock_timeout or statement_timeout to none (0, DEFAULT, RESET)."""
    if node.kind == VariableSetKind.VAR_RESET_ALL:
        ctx.report("DM215", "RESET ALL turns lock_timeout and statement_timeout off.")
        return
    if (node.name or "").lower() in TIMEOUTS and _disables(node):
        ctx.report(
            "DM215",
            f"{'RESET' if node.kind == VariableSetKind.VAR_RESET else 'SET'} {node.name} turns "
            "the timeout off: the run's own value is put back after it, and a file may only "
            "lower it.",
        )


CHECKS = {ast.LockStmt: [check_lock], ast.VariableSetStmt: [check_set_timeout]}
