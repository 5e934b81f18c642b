"""Blocking rules of ALTER TABLE on a table that may hold rows.

Facts (PostgreSQL 11+, checked against 15): ALTER TABLE takes ACCESS EXCLUSIVE for most
sub-commands, so anything that scans or rewrites the table blocks reads and writes for as long.
- ADD CONSTRAINT FOREIGN KEY / CHECK validates every row; NOT VALID skips that, and a later
  VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE (reads and writes go on).
- SET NOT NULL scans the table; ALTER COLUMN TYPE rewrites it (unless binary compatible).
- ADD COLUMN with a non-volatile default is metadata-only since PostgreSQL 11; a volatile default,
  an identity or serial column, or a STORED generated column rewrites the table.
- ADD COLUMN ... REFERENCES without a default needs no validation scan (the new column is all
  NULL) but locks the referenced table in SHARE ROW EXCLUSIVE mode; an inline CHECK is validated
  by a scan; inline UNIQUE / PRIMARY KEY builds an index under the ACCESS EXCLUSIVE lock.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType

from dbmigrate.engine.lint.context import StatementContext, label, table_name
from dbmigrate.engine.lint.exprs import location, volatile_calls
from dbmigrate.engine.lint.indexes import duplicate_check_query

SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})
INDEX_CONSTRAINTS = (
    ConstrType.CONSTR_UNIQUE,
    ConstrType.CONSTR_PRIMARY,
    ConstrType.CONSTR_EXCLUSION,
)


def _constraints(column: ast.ColumnDef) -> list[ast.Constraint]:
    return [c for c in column.constraints or () if isinstance(c, ast.Constraint)]


def _index_constraint(
    con: ast.Constraint, relation: ast.RangeVar | None, ctx: StatementContext
) -> None:
    """UNIQUE / PRIMARY KEY / EXCLUDE built in place (not USING INDEX)."""
    kinds = {ConstrType.CONSTR_UNIQUE: "UNIQUE", ConstrType.CONSTR_PRIMARY: "PRIMARY KEY"}
    kind = kinds.get(con.contype, "EXCLUDE") if con.contype is not None else "EXCLUDE"
    ctx.report(
        "DM209",
        f"Adding {kind} constraint{label(con.conname)} builds its index while holding an ACCESS "
        f"EXCLUSIVE lock on {table_name(relation)}: reads and writes wait for the whole build.",
        location(con),
    )
    if con.contype != ConstrType.CONSTR_EXCLUSION and con.keys:
        keys = [ast.ColumnRef(fields=(key,)) for key in con.keys]
        query = duplicate_check_query(relation, keys, None, not con.nulls_not_distinct)
        ctx.report(
            "DM601",
            f"{kind} constraint{label(con.conname)} on {table_name(relation)} fails if the table "
            "has duplicate keys.",
            location(con),
            hint=f"Check first (preflight runs it): {query}",
            check_query=query,
        )


def check_constraint(
    con: ast.Constraint, relation: ast.RangeVar | None, ctx: StatementContext
) -> None:
    """ADD CONSTRAINT: FK / CHECK without NOT VALID; UNIQUE / PK without USING INDEX."""
    if con.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
        if not con.skip_validation:
            kind = "FOREIGN KEY" if con.contype == ConstrType.CONSTR_FOREIGN else "CHECK"
            locks = (
                "SHARE ROW EXCLUSIVE locks on both tables (writes wait)"
                if con.contype == ConstrType.CONSTR_FOREIGN
                else "an ACCESS EXCLUSIVE lock (reads and writes wait)"
            )
            ctx.report(
                "DM202",
                f"{kind} constraint{label(con.conname)} is validated by scanning "
                f"{table_name(relation)} while holding {locks}.",
                location(con),
            )
    elif con.contype in INDEX_CONSTRAINTS and not con.indexname:
        _index_constraint(con, relation, ctx)


def _rewrite_reason(
    column: ast.ColumnDef, default: ast.Constraint | None
) -> tuple[str, int | None] | None:
    """Why adding this column rewrites the table, if it does."""
    type_name = column.typeName.names[-1].sval if column.typeName and column.typeName.names else ""
    if type_name.lower() in SERIAL_TYPES:
        return f"a {type_name} column gets nextval() (volatile) for every row", location(column)
    for con in _constraints(column):
        if con.contype == ConstrType.CONSTR_IDENTITY:
            return "an identity column gets a value for every row", location(con)
        if con.contype == ConstrType.CONSTR_GENERATED and con.generated_kind != "v":
            return "a STORED generated column is computed for every row", location(con)
    if default is not None:
        for name, where, known in volatile_calls(default.raw_expr):
            if known:
                return f"the default calls {name}(), which is volatile", where
            return (
                f"the default calls {name}(), which may be volatile (the linter does not know "
                "it; if it is STABLE or IMMUTABLE, waive with a reason)",
                where,
            )
    return None


def check_add_column(
    column: ast.ColumnDef, relation: ast.RangeVar | None, ctx: StatementContext
) -> None:
    """ADD COLUMN: rewrites, NOT NULL without default, inline constraints."""
    cons = _constraints(column)
    default = next((c for c in cons if c.contype == ConstrType.CONSTR_DEFAULT), None)
    rewrite = _rewrite_reason(column, default)
    if rewrite is not None:
        reason, where = rewrite
        ctx.report(
            "DM205",
            f"ADD COLUMN {column.colname} rewrites {table_name(relation)} under an ACCESS "
            f"EXCLUSIVE lock: {reason}.",
            where,
        )
    not_null = column.is_not_null or any(
        c.contype in (ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY) for c in cons
    )
    if not_null and default is None and rewrite is None:
        ctx.report(
            "DM211",
            f"ADD COLUMN {column.colname} NOT NULL without a default fails as soon as "
            f"{table_name(relation)} has a row.",
            location(column),
        )
    for con in cons:
        if con.contype == ConstrType.CONSTR_FOREIGN and default is None:
            ctx.report(
                "DM210",
                f"ADD COLUMN {column.colname} REFERENCES {table_name(con.pktable)} locks "
                f"{table_name(con.pktable)} in SHARE ROW EXCLUSIVE mode (its writes wait).",
                location(con),
            )
        elif con.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
            check_constraint(con, relation, ctx)
        elif con.contype in INDEX_CONSTRAINTS:
            _index_constraint(con, relation, ctx)


def check_command(
    cmd: ast.AlterTableCmd, relation: ast.RangeVar | None, ctx: StatementContext
) -> None:
    """One sub-command of ALTER TABLE on an existing table."""
    kind = cmd.subtype
    if kind == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        check_constraint(cmd.def_, relation, ctx)
    elif kind == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        check_add_column(cmd.def_, relation, ctx)
    elif kind == AlterTableType.AT_SetNotNull:
        ctx.report(
            "DM203",
            f"SET NOT NULL on {table_name(relation)}.{cmd.name} scans the whole table while reads "
            "and writes wait (ACCESS EXCLUSIVE).",
        )
    elif kind == AlterTableType.AT_AlterColumnType:
        ctx.report(
            "DM204",
            f"ALTER COLUMN {cmd.name} TYPE rewrites {table_name(relation)} (and its indexes) "
            "while reads and writes wait, unless the new type is binary compatible.",
            location(cmd.def_) if isinstance(cmd.def_, ast.Node) else None,
        )
    elif (
        kind == AlterTableType.AT_DetachPartition
        and isinstance(cmd.def_, ast.PartitionCmd)
        and not cmd.def_.concurrent
    ):
        ctx.report(
            "DM213",
            f"DETACH PARTITION {table_name(cmd.def_.name)} takes an ACCESS EXCLUSIVE lock on "
            f"{table_name(relation)}.",
        )


def check_alter_table(node: ast.AlterTableStmt, ctx: StatementContext) -> None:
    """Every sub-command of ALTER TABLE, when the table may hold rows."""
    if node.objtype != ObjectType.OBJECT_TABLE or not ctx.is_existing(node.relation):
        return
    for cmd in node.cmds or ():
        if isinstance(cmd, ast.AlterTableCmd):
            check_command(cmd, node.relation, ctx)


CHECKS = {ast.AlterTableStmt: [check_alter_table]}
