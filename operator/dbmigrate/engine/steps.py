"""How a migration file breaks into steps: the whole file in one transaction, or one statement
at a time in autocommit (and where an interrupted autocommit file resumes).

The runner (``execute``) runs the steps; the apply (``apply``) reads the next file's first step
ahead, so that the look-up after one file also answers the look-up before the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine.history import HistoryRow
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


def resume_point(migration: Migration, previous: HistoryRow | None) -> int:
    """Where an autocommit file resumes: after the statements its interrupted run committed,
    unless the file changed since (then from the start)."""
    if previous is None or previous.status not in ("failed", "running"):
        return 0
    return previous.statements_done if previous.checksum == migration.checksum else 0


def first_step_objects(
    migration: Migration, statements: list[Statement], previous: HistoryRow | None
) -> list[CreatedObject]:
    """The objects the first step of a file looks up before it runs (the whole file in one
    transaction, or the statement an autocommit file starts or resumes at)."""
    if not any(s.needs_autocommit for s in statements):
        return [o for s in statements for o in created_objects_of(s)]
    start = resume_point(migration, previous)
    return created_objects_of(statements[start]) if start < len(statements) else []
