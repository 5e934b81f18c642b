"""A migration file prepared to run, and how it breaks into units: the whole file in one
transaction, or one statement at a time in autocommit (the first unit of a file, which the apply
reads ahead, is what ``first_step_objects`` looks up).

``execute`` runs the units; the apply (``apply``) reads the next file's first step
ahead, so that the look-up after one file also answers the look-up before the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine.history import HistoryRow
from dbmigrate.engine.planning import resume_point
from dbmigrate.engine.sources import Migration
from dbmigrate.engine.statements import Statement, created_objects_of


@dataclass(frozen=True)
class PreparedFile:
    """A migration with the statements that will run (after any CONCURRENTLY rewrite)."""

    migration: Migration
    statements: list[Statement]

    @property
    def autocommit(self) -> bool:
        """Whether the file must run statement by statement outside a transaction."""
        return any(s.needs_autocommit for s in self.statements)


def first_step_objects(file: PreparedFile, previous: HistoryRow | None) -> list[CreatedObject]:
    """The objects the first step of a file looks up before it runs (the whole file in one
    transaction, or the statement an autocommit file starts or resumes at)."""
    statements = file.statements
    if not file.autocommit:
        return [o for s in statements for o in created_objects_of(s)]
    start = resume_point(file.migration, previous)
    return created_objects_of(statements[start]) if start < len(statements) else []
