"""What a probe query may be: one read-only query, checked at admission and before any Job.

A probe (``spec.verification.probes[].sql``) is EXPLAINed after the migration, with ANALYZE when
asked, to see that the planner uses the new index. A ``DELETE``, an ``UPDATE`` or ``SELECT ...;
DROP ...`` there is a mistake at best; found only by the verify step it would fail a migration
that went well and roll it back. So it is refused twice, as early as each check can be made:

* at admission, by a CEL rule on the field (``SQL_RULE``): the text starts with SELECT, WITH,
  VALUES or TABLE and holds no ``;`` but a trailing one (a ``;`` inside a string literal is
  refused too: write the probe without it);
* by the operator before the run's first Job, and by the verify step itself, with PostgreSQL's
  own parser (``probe_problem``): exactly one statement, a SELECT (VALUES and TABLE parse as
  one), with no data-modifying WITH, no ``SELECT ... INTO`` and no ``FOR UPDATE``/``FOR SHARE``.
"""

from __future__ import annotations

import re

MAX_LENGTH = 10_000
START_PATTERN = r"(?i)^\s*(select|with|values|table)([^a-z0-9_$;][^;]*)?;?\s*$"
SQL_HELP = (
    "must be one read-only query starting with SELECT, WITH, VALUES or TABLE, with no ';' but "
    "a trailing one: a probe is EXPLAINed after the migration to see its plan use the index, "
    "never run to change data"
)
SQL_RULE: dict[str, str] = {
    "rule": "self.matches('" + START_PATTERN.replace("\\", "\\\\") + "')",
    "message": SQL_HELP,
}
_START = re.compile(START_PATTERN)


def admits(sql: str) -> bool:
    """Whether the API server's rule (``SQL_RULE``) admits ``sql``."""
    return bool(_START.match(sql))


def probe_problem(sql: str) -> str | None:
    """Why ``sql`` is not one read-only query, by PostgreSQL's parser; None when it is one."""
    from pglast import ast, parse_sql  # the parser loads only where probes are checked
    from pglast.parser import ParseError

    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        return f"it does not parse: {exc}"
    if len(statements) != 1:
        return f"it must be exactly one statement, found {len(statements)}"
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = type(statement).__name__.removesuffix("Stmt").upper()
        return f"it must be a SELECT (it is EXPLAINed, never allowed to change data), not {kind}"
    return _select_problem(statement)


def _select_problem(statement: object) -> str | None:
    """A SELECT that still writes or locks: INTO, FOR UPDATE/SHARE, a data-modifying WITH."""
    from pglast import ast

    assert isinstance(statement, ast.SelectStmt)
    if statement.intoClause is not None:
        return "SELECT ... INTO creates a table; a probe must only read"
    if statement.lockingClause:
        return "FOR UPDATE/FOR SHARE locks rows; a probe must only read"
    for cte in (statement.withClause.ctes if statement.withClause else None) or ():
        if not isinstance(cte.ctequery, ast.SelectStmt):
            kind = type(cte.ctequery).__name__.removesuffix("Stmt").upper()
            return f"its WITH {cte.ctename} runs a {kind}; a probe must only read"
        problem = _select_problem(cte.ctequery)
        if problem is not None:
            return problem
    for side in (statement.larg, statement.rarg):  # UNION, INTERSECT, EXCEPT
        if side is not None:
            problem = _select_problem(side)
            if problem is not None:
                return problem
    return None
