"""What the rules know while they walk a file: the statement at hand and the file so far.

A rule asks the context whether a table is "existing" (it may hold rows, so a strong lock or a
rewrite hurts) and reports findings through it. A table created earlier in the same file is not
existing: it is empty when the statement runs. When the caller knows the database's tables
(``existing_tables``), that knowledge wins: ``CREATE TABLE IF NOT EXISTS`` on a table that is
already there creates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pglast import ast

from dbmigrate.engine.lint.source import SourceMap, Statement


def relation_names(relation: ast.RangeVar) -> set[str]:
    """The spellings a table may be known by: ``name`` and ``schema.name``."""
    name = relation.relname or ""
    schema = relation.schemaname or "public"
    names = {f"{schema}.{name}"}
    if schema == "public":
        names.add(name)
    return names


def qualified(names: object) -> str:
    """``schema.name`` of a name list as found in DropStmt objects and similar nodes."""
    if not isinstance(names, tuple | list):
        return "?"
    return ".".join(str(part.sval) for part in names if isinstance(part, ast.String))


def label(name: str | None) -> str:
    """`` name`` with a leading space for messages, or nothing for an unnamed object."""
    return f" {name}" if name else ""


def table_name(relation: ast.RangeVar | None) -> str:
    """A table's name for messages: ``name`` or ``schema.name``."""
    if relation is None:
        return "?"
    name = relation.relname or "?"
    return f"{relation.schemaname}.{name}" if relation.schemaname else name


@dataclass
class RawFinding:
    """A finding before positions are turned into lines and suppressions are applied."""

    rule: str
    location: int
    statement: int
    message: str
    hint: str | None = None
    check_query: str | None = None


@dataclass
class FileState:
    """What the file has done before the current statement."""

    filename: str
    existing_tables: set[str] | None
    statements: list[Statement]
    source_map: SourceMap
    created_tables: set[str] = field(default_factory=set)
    transaction_start: int | None = None

    def is_existing(self, relation: ast.RangeVar | None) -> bool:
        """Whether the table may hold rows when the statement runs."""
        if relation is None:
            return True
        names = relation_names(relation)
        if self.existing_tables is not None:
            known = set(self.existing_tables)
            known |= {f"public.{n}" for n in self.existing_tables if "." not in n}
            return bool(names & known)
        return not names & self.created_tables

    def note_created(self, relation: ast.RangeVar | None) -> None:
        """Remember a table created by this file."""
        if relation is not None:
            self.created_tables |= relation_names(relation)


@dataclass
class StatementContext:
    """The statement being linted, the file state, and where findings go."""

    state: FileState
    statement: Statement
    findings: list[RawFinding]

    def report(
        self,
        rule: str,
        message: str,
        location: int | None = None,
        hint: str | None = None,
        check_query: str | None = None,
    ) -> None:
        """Record a finding at ``location`` (a character index), or at the statement's start."""
        where = location if location is not None and location >= self.statement.start else None
        self.findings.append(
            RawFinding(
                rule=rule,
                location=where if where is not None else self.statement.start,
                statement=self.statement.index,
                message=message,
                hint=hint,
                check_query=check_query,
            )
        )

    def is_existing(self, relation: ast.RangeVar | None) -> bool:
        """Shortcut for the file state's ``is_existing``."""
        return self.state.is_existing(relation)
