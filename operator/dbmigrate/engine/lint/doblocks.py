"""DO blocks: the linter reads the SQL inside them as well.

A DO block's body is read with PostgreSQL's own PL/pgSQL parser (pglast's
``parse_plpgsql_json``). Every static SQL statement in it is parsed and checked by the same rules
as a top-level statement; its findings are reported at the DO statement (so a waiver comment
before the DO covers them) and say they come from inside the block. A statement that cannot run
in a transaction block (CONCURRENTLY, VACUUM...) is DM401: a DO block is one statement, always
inside a transaction. What the linter cannot read is said, never skipped in silence: SQL built at
run time (EXECUTE, FOR ... IN EXECUTE, OPEN ... FOR EXECUTE), a body in another language, or a
body the PL/pgSQL parser cannot read without the database's catalog are DM005 (a warning).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError, parse_plpgsql_json

from dbmigrate.engine.lint.context import FileState, RawFinding, StatementContext
from dbmigrate.engine.lint.transactions import non_transactional

IN_DO_BLOCK = "In the DO block: "  # how the findings of statements inside a block begin
Check = Callable[[Any, StatementContext], None]
Track = Callable[[Any, FileState], None]
DYNAMIC = ("PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors")


def _option(node: ast.DoStmt, name: str) -> str | None:
    for item in node.args or ():
        if isinstance(item, ast.DefElem) and item.defname == name:
            arg = item.arg
            return str(arg.sval) if isinstance(arg, ast.String) else None
    return None


def _dollar_quoted(body: str) -> str:
    tag = "$dbmigrate$"
    while tag in body:
        tag = tag[:-1] + "_$"
    return f"{tag}{body}{tag}"


def _walk(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of the parser's JSON tree, depth first."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _walk(item)


def read_body(body: str) -> tuple[list[str], int]:
    """The static SQL statements of a PL/pgSQL DO body and how many statements build their SQL at
    run time; raises ``ParseError`` when the PL/pgSQL parser refuses the body."""
    tree = json.loads(parse_plpgsql_json(f"DO {_dollar_quoted(body)}"))
    static, dynamic = [], 0
    for key, value in _walk(tree):
        if key == "PLpgSQL_stmt_execsql":
            static.append(str(value["sqlstmt"]["PLpgSQL_expr"]["query"]))
        elif key in DYNAMIC or (key == "PLpgSQL_stmt_open" and "dynquery" in value):
            dynamic += 1
    return static, dynamic


def _check_inner(
    sql: str, ctx: StatementContext, dispatch: dict[type, list[Check]], track: Track
) -> None:
    """Run the rules on one statement of the block; its findings land at the DO statement."""
    try:
        nodes = [raw.stmt for raw in parse_sql(sql) if raw.stmt is not None]
    except ParseError as exc:
        ctx.report("DM005", f"A statement in the DO block could not be read on its own ({exc}).")
        return
    for node in nodes:
        found: list[RawFinding] = []
        inner = StatementContext(ctx.state, replace(ctx.statement, node=node), found)
        what = non_transactional(node)
        if what is not None:
            inner.report(
                "DM401",
                f"{what} cannot run inside a DO block: the block runs as one statement, in a "
                "transaction, and PostgreSQL refuses it there.",
                hint="Take the statement out of the DO block; dbmigrate runs it in autocommit.",
            )
        for check in dispatch.get(type(node), ()):
            check(node, inner)
        track(node, ctx.state)
        for finding in found:
            finding.location = ctx.statement.start
            finding.message = IN_DO_BLOCK + finding.message
            ctx.findings.append(finding)


def check_do(
    node: ast.DoStmt, ctx: StatementContext, dispatch: dict[type, list[Check]], track: Track
) -> None:
    """Lint the SQL inside a DO block with ``dispatch`` (the rules by node type); ``track``
    records what each inner statement creates, as for top-level statements."""
    language = (_option(node, "language") or "plpgsql").lower()
    body = _option(node, "as") or ""
    if language != "plpgsql":
        ctx.report("DM005", f"A DO block in {language} is not linted: only PL/pgSQL is read.")
        return
    try:
        static, dynamic = read_body(body)
    except ParseError as exc:
        message = exc.args[0] if exc.args else exc
        ctx.report("DM005", f"The DO block could not be read ({message}); nothing in it is linted.")
        return
    if dynamic:
        ctx.report(
            "DM005",
            f"The DO block builds {dynamic} statement(s) at run time (EXECUTE); the linter "
            "cannot see them.",
        )
    for sql in static:
        _check_inner(sql, ctx, dispatch, track)
