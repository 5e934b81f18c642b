"""Failures of the migration engine, named after what went wrong rather than after a SQLSTATE.

psycopg raises one class per SQLSTATE; ``from_database_error`` maps those to the few classes the
engine and the CLI act on (retry a lock timeout, report an unavailable database with exit code 3,
a failed statement with 1). Every class carries the exit code the ``dbmigrate`` command returns.
"""

from __future__ import annotations

import psycopg

from dbmigrate.api.exitcodes import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PLAN_CHANGED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from dbmigrate.api.plan import Blocker


class MigrationError(Exception):
    """Base of every engine failure."""

    exit_code = EXIT_FAILED
    sqlstate: str | None = None

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.blockers: list[Blocker] = []

    @property
    def code(self) -> str:
        """SQLSTATE when the database raised it, else the class name."""
        return self.sqlstate or type(self).__name__


class StatementError(MigrationError):
    """A migration statement failed (syntax, constraint, missing object, ...)."""

    sqlstate = "XX000"


class LockTimeoutError(MigrationError):
    """lock_timeout expired (55P03 lock_not_available): another session holds a needed lock."""

    exit_code = EXIT_UNAVAILABLE
    sqlstate = "55P03"


class DeadlockError(MigrationError):
    """The statement was chosen as a deadlock victim (40P01)."""

    exit_code = EXIT_UNAVAILABLE
    sqlstate = "40P01"


class StatementTimeoutError(MigrationError):
    """statement_timeout expired or the statement was cancelled (57014 query_canceled)."""

    exit_code = EXIT_UNAVAILABLE
    sqlstate = "57014"


class InsufficientPrivilegeError(MigrationError):
    """The role lacks a privilege the migration needs (42501)."""

    sqlstate = "42501"


class UndefinedObjectError(MigrationError):
    """The migration refers to a table, column or object that does not exist (42P01, 42703...)."""

    sqlstate = "42P01"


class DuplicateObjectError(MigrationError):
    """The migration creates something that exists already (42P07, 42710, 42701)."""

    sqlstate = "42P07"


class DataViolationError(MigrationError):
    """Existing rows violate what the migration asks for (unique, not null, check: class 23)."""

    sqlstate = "23000"


class ConnectionFailedError(MigrationError):
    """The database cannot be reached or refused the connection (class 08, 57P0x)."""

    exit_code = EXIT_UNAVAILABLE
    sqlstate = "08000"


class ConnectionStringError(MigrationError):
    """The database URL or libpq string cannot be parsed or has a bad value (a port that is not a
    number): no retry can heal it, so it is bad input. The message never repeats the string."""

    exit_code = EXIT_USAGE


class LockHeldError(MigrationError):
    """Another run holds the migration advisory lock and did not release it within the wait."""

    exit_code = EXIT_UNAVAILABLE


class DriftError(MigrationError):
    """The migration set disagrees with the history table (changed checksum, missing file)."""


class PlanChangedError(MigrationError):
    """The plan differs from the approved one (its hash changed); raised before anything ran."""

    exit_code = EXIT_PLAN_CHANGED


class LintRefusedError(MigrationError):
    """The linter found errors and the policy is strict: nothing was run."""


class IndexInvalidError(MigrationError):
    """An index is INVALID or not ready after its build, or one is being built by someone else."""


class HistoryError(MigrationError):
    """The history table is in a state the engine cannot act on safely."""


_BY_SQLSTATE: dict[str, type[MigrationError]] = {
    "55P03": LockTimeoutError,
    "40P01": DeadlockError,
    "57014": StatementTimeoutError,
    "42501": InsufficientPrivilegeError,
    "42P01": UndefinedObjectError,
    "42703": UndefinedObjectError,
    "42704": UndefinedObjectError,
    "42883": UndefinedObjectError,
    "3F000": UndefinedObjectError,
    "42P07": DuplicateObjectError,
    "42710": DuplicateObjectError,
    "42701": DuplicateObjectError,
    "42P06": DuplicateObjectError,
}


def class_for_sqlstate(sqlstate: str | None) -> type[MigrationError]:
    """The engine's class for a SQLSTATE (StatementError when none fits)."""
    if not sqlstate:
        return ConnectionFailedError
    if sqlstate in _BY_SQLSTATE:
        return _BY_SQLSTATE[sqlstate]
    if sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"):
        return ConnectionFailedError
    if sqlstate.startswith("23"):
        return DataViolationError
    return StatementError


def from_database_error(exc: psycopg.Error, context: str) -> MigrationError:
    """Wrap a psycopg error: ``context`` says where (file, line, statement)."""
    sqlstate = exc.sqlstate
    diag = exc.diag
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    hint = f" Hint: {diag.message_hint}" if diag.message_hint else ""
    message = f"{context}: {str(exc).strip().splitlines()[0]}{detail}{hint}"
    return class_for_sqlstate(sqlstate)(message, sqlstate=sqlstate)


def _all_classes(base: type[MigrationError]) -> list[type[MigrationError]]:
    return [base, *(c for sub in base.__subclasses__() for c in _all_classes(sub))]


def exit_code_for(code: str | None) -> int:
    """The CLI exit code of an ``ApplyResult.error_code`` (SQLSTATE or error class name)."""
    if code is None:
        return EXIT_OK
    if code in ("MigrationSourceError", "SqlParseError", "TransactionControlError"):
        return EXIT_USAGE
    for cls in _all_classes(MigrationError):
        if cls.__name__ == code:
            return cls.exit_code
    if len(code) == 5 and code.isalnum() and code.upper() == code:
        return class_for_sqlstate(code).exit_code
    return EXIT_FAILED
