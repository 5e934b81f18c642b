"""Index rules: non-immutable predicates and expressions, and the duplicate check of UNIQUE.

PostgreSQL refuses a function that is not IMMUTABLE in an index predicate or expression
("functions in index predicate must be marked IMMUTABLE"); the linter says so before the run.
A literal such as ``'now'::timestamptz`` is accepted but converted once, when the statement runs,
so the "moving window" silently becomes a fixed date: reported too.

A unique index (or UNIQUE / PRIMARY KEY constraint) built on a table that already has duplicate
keys fails; built CONCURRENTLY it also leaves an INVALID index behind. The finding carries the
read-only query that finds duplicates (built as a parse tree and printed by pglast), which the
preflight step runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from pglast import ast
from pglast.enums.nodes import LimitOption
from pglast.enums.parsenodes import A_Expr_Kind
from pglast.enums.primnodes import BoolExprType, NullTestType
from pglast.stream import RawStream

from dbmigrate.engine.lint.context import StatementContext, label, table_name
from dbmigrate.engine.lint.exprs import frozen_literal, location, non_immutable_calls, walk

SAMPLE_LIMIT = 10


def _name(value: str) -> tuple[ast.String]:
    return (ast.String(sval=value),)


def _count_star() -> ast.FuncCall:
    return ast.FuncCall(funcname=_name("count"), agg_star=True)


def _all_not_null(keys: Sequence[ast.Node]) -> list[ast.Node]:
    return [ast.NullTest(arg=key, nulltesttype=NullTestType.IS_NOT_NULL) for key in keys]


def duplicate_check_query(
    relation: ast.RangeVar | None,
    keys: Sequence[ast.Node],
    where: ast.Node | None = None,
    nulls_distinct: bool = True,
) -> str:
    """SELECT the key values that occur more than once (NULL keys never collide by default)."""
    conditions: list[ast.Node] = [where] if where is not None else []
    if nulls_distinct:
        conditions.extend(_all_not_null(keys))
    where_clause: ast.Node | None = None
    if len(conditions) == 1:
        where_clause = conditions[0]
    elif conditions:
        where_clause = ast.BoolExpr(boolop=BoolExprType.AND_EXPR, args=tuple(conditions))
    targets = [ast.ResTarget(val=key) for key in keys]
    targets.append(ast.ResTarget(name="duplicates", val=_count_star()))
    select = ast.SelectStmt(
        targetList=tuple(targets),
        fromClause=(  # a fresh RangeVar: no positions copied from the migration's text
            ast.RangeVar(
                relname=relation.relname if relation else "?",
                schemaname=relation.schemaname if relation else None,
                inh=True,
                relpersistence="p",
            ),
        ),
        whereClause=where_clause,
        groupClause=tuple(keys),
        havingClause=ast.A_Expr(
            kind=A_Expr_Kind.AEXPR_OP,
            name=_name(">"),
            lexpr=_count_star(),
            rexpr=ast.A_Const(val=ast.Integer(ival=1)),
        ),
        limitCount=ast.A_Const(val=ast.Integer(ival=SAMPLE_LIMIT)),
        limitOption=LimitOption.LIMIT_OPTION_COUNT,
    )
    return str(RawStream()(select))


def index_keys(node: ast.IndexStmt) -> list[ast.Node]:
    """The key columns and expressions of an index, as expressions."""
    keys: list[ast.Node] = []
    for param in node.indexParams or ():
        if isinstance(param, ast.IndexElem):
            column = ast.ColumnRef(fields=_name(param.name or ""))
            keys.append(param.expr if param.expr is not None else column)
    return keys


def check_index_expressions(node: ast.IndexStmt, ctx: StatementContext) -> None:
    """Functions that are not IMMUTABLE, or frozen 'now' literals, in predicate or keys."""
    parts = [("predicate", node.whereClause)] if node.whereClause is not None else []
    parts += [
        ("expression", p.expr)
        for p in node.indexParams or ()
        if isinstance(p, ast.IndexElem) and p.expr
    ]
    for part, expr in parts:
        for what, where in non_immutable_calls(expr):
            ctx.report(
                "DM501",
                f"{what} in an index {part} is not IMMUTABLE: PostgreSQL refuses to create "
                f"index{label(node.idxname)} (functions in index {part} must be marked "
                "IMMUTABLE).",
                where,
            )
        for item in walk(expr):
            literal = frozen_literal(item)
            if literal is not None:
                ctx.report(
                    "DM501",
                    f"'{literal}' in an index {part} is converted once, when the index is "
                    "created: the index keeps that fixed moment, it does not move with time.",
                    location(item),
                    hint="Use an explicit constant (a date) and rebuild the index on a "
                    "schedule, or filter the moving window in the query instead.",
                )


def check_unique_index(node: ast.IndexStmt, ctx: StatementContext) -> None:
    """A UNIQUE index on a table that may hold rows: duplicates make the build fail."""
    if not node.unique or not ctx.is_existing(node.relation):
        return
    query = duplicate_check_query(
        node.relation, index_keys(node), node.whereClause, not node.nulls_not_distinct
    )
    ctx.report(
        "DM601",
        f"UNIQUE index{label(node.idxname)} on {table_name(node.relation)} fails if the table has "
        "duplicate keys" + (" and leaves an INVALID index behind." if node.concurrent else "."),
        hint=f"Check first (preflight runs it): {query}",
        check_query=query,
    )


CHECKS = {ast.IndexStmt: [check_index_expressions, check_unique_index]}
