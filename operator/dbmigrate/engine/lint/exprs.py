"""Facts about expressions: which function calls are volatile, which are not immutable.

PostgreSQL decides volatility from ``pg_proc.provolatile``; the linter has no database, so it
knows the built-in functions that matter for migrations by name (checked against PostgreSQL 15's
catalog). Two questions are asked:

- ADD COLUMN ... DEFAULT: since PostgreSQL 11 a non-volatile default is stored once in the
  catalog (no rewrite); a volatile one (random(), clock_timestamp(), gen_random_uuid(),
  nextval()) is evaluated per row and rewrites the table. A function the linter does not know
  may be volatile, so it is reported too, and can be waived with a reason.
- Index predicates and expressions: PostgreSQL requires IMMUTABLE functions. ``now()`` and
  ``CURRENT_TIMESTAMP`` are only STABLE, so ``WHERE t > now() - interval '1 day'`` is refused.
"""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

VOLATILE_FUNCTIONS = frozenset(
    {
        "random", "random_normal", "setseed", "clock_timestamp", "timeofday",
        "gen_random_uuid", "uuidv4", "uuidv7", "uuid_generate_v1", "uuid_generate_v1mc",
        "uuid_generate_v4", "nextval", "setval", "currval", "lastval", "gen_random_bytes",
        "pg_sleep", "txid_current", "pg_current_xact_id", "dblink",
    }
)  # fmt: skip

# Built-in functions that are STABLE (not IMMUTABLE) whatever their argument types.
STABLE_FUNCTIONS = frozenset(
    {
        "now", "statement_timestamp", "transaction_timestamp", "current_setting",
        "current_database", "current_schema", "current_schemas", "current_user", "session_user",
        "current_query", "pg_backend_pid", "inet_client_addr", "version", "to_regclass",
        "pg_postmaster_start_time", "pg_conf_load_time",
    }
)  # fmt: skip

# Built-in functions that are IMMUTABLE or STABLE for every argument type: safe as a default.
NON_VOLATILE_FUNCTIONS = STABLE_FUNCTIONS | frozenset(
    {
        "lower", "upper", "length", "char_length", "md5", "sha256", "sha512", "encode",
        "decode", "concat", "concat_ws", "format", "btrim", "ltrim", "rtrim", "substring",
        "substr", "left", "right", "replace", "split_part", "abs", "round", "floor", "ceil",
        "trunc", "date_trunc", "make_date", "make_timestamp", "make_timestamptz", "make_interval",
        "to_timestamp", "to_date", "to_char", "to_number", "jsonb_build_object",
        "jsonb_build_array", "json_build_object", "json_build_array", "array_fill", "nullif",
        "uuid_nil", "date_part", "extract", "timezone", "int4range", "int8range", "tstzrange",
        "daterange", "numrange", "point", "inet", "bool", "text", "age",
    }
)  # fmt: skip

FROZEN_LITERALS = frozenset({"now", "today", "tomorrow", "yesterday"})


def walk(root: object) -> Iterator[ast.Node]:
    """Every node under ``root`` (itself included), iteratively: deep trees cannot overflow."""
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Node):
            yield item
            stack.extend(getattr(item, attr) for attr in item if attr != "ancestors")
        elif isinstance(item, tuple | list):
            stack.extend(item)


def function_name(call: ast.FuncCall) -> str:
    """The unqualified, lower-cased name of a function call (``pg_catalog.now`` is ``now``)."""
    parts = [p.sval or "" for p in call.funcname or () if isinstance(p, ast.String)]
    return parts[-1].lower() if parts else ""


def location(node: ast.Node) -> int | None:
    """The character index a node carries, if any."""
    value = getattr(node, "location", None)
    return value if isinstance(value, int) and value >= 0 else None


def volatile_calls(expr: object) -> list[tuple[str, int | None, bool]]:
    """Function calls that make a default volatile: (name, location, known_volatile)."""
    found = []
    for node in walk(expr):
        if isinstance(node, ast.FuncCall):
            name = function_name(node)
            if name in VOLATILE_FUNCTIONS:
                found.append((name, location(node), True))
            elif name not in NON_VOLATILE_FUNCTIONS:
                found.append((name, location(node), False))
    return found


def frozen_literal(node: ast.Node) -> str | None:
    """'now'::timestamptz and friends: converted once, when the statement is parsed."""
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.A_Const):
        value = node.arg.val
        if isinstance(value, ast.String) and (value.sval or "").strip().lower() in FROZEN_LITERALS:
            return value.sval
    return None


def non_immutable_calls(expr: object) -> list[tuple[str, int | None]]:
    """Calls that PostgreSQL refuses in an index predicate or expression: (what, location)."""
    found: list[tuple[str, int | None]] = []
    for node in walk(expr):
        if isinstance(node, ast.FuncCall):
            name = function_name(node)
            if name in VOLATILE_FUNCTIONS or name in STABLE_FUNCTIONS:
                found.append((f"{name}()", location(node)))
        elif isinstance(node, ast.SQLValueFunction):
            name = node.op.name if node.op is not None else "SVFOP_CURRENT_TIMESTAMP"
            found.append((name.removeprefix("SVFOP_"), location(node)))
    return found
