"""Error classes from SQLSTATEs, exit codes, and connection strings without passwords."""

from __future__ import annotations

import pytest

from dbmigrate.engine.connect import database_label, redact
from dbmigrate.engine.errors import (
    ConnectionFailedError,
    DataViolationError,
    DuplicateObjectError,
    InsufficientPrivilegeError,
    LockTimeoutError,
    StatementError,
    StatementTimeoutError,
    UndefinedObjectError,
    class_for_sqlstate,
    exit_code_for,
)


@pytest.mark.parametrize(
    ("sqlstate", "cls"),
    [
        ("55P03", LockTimeoutError),
        ("57014", StatementTimeoutError),
        ("42501", InsufficientPrivilegeError),
        ("42P01", UndefinedObjectError),
        ("42703", UndefinedObjectError),
        ("42P07", DuplicateObjectError),
        ("23505", DataViolationError),
        ("08006", ConnectionFailedError),
        ("57P01", ConnectionFailedError),
        ("42601", StatementError),
    ],
)
def test_sqlstates_map_to_named_classes(sqlstate: str, cls: type) -> None:
    assert class_for_sqlstate(sqlstate) is cls


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (None, 0),
        ("55P03", 3),
        ("57014", 3),
        ("08006", 3),
        ("LockHeldError", 3),
        ("ConnectionFailedError", 3),
        ("42P01", 1),
        ("23505", 1),
        ("DriftError", 1),
        ("LintRefusedError", 1),
        ("PlanChangedError", 4),
        ("IndexInvalidError", 1),
        ("SqlParseError", 2),
        ("MigrationSourceError", 2),
    ],
)
def test_exit_codes(code: str | None, exit_code: int) -> None:
    assert exit_code_for(code) == exit_code


@pytest.mark.parametrize(
    ("conninfo", "shown"),
    [
        ("postgresql://app:s3cr%40t@db:5432/analytics", "postgresql://app:***@db:5432/analytics"),
        (
            "postgresql://app@db/analytics?password=s3cr3t&sslmode=require",
            "postgresql://app@db/analytics?password=***&sslmode=require",
        ),
        ("postgresql://db/analytics", "postgresql://db/analytics"),
    ],
)
def test_urls_are_redacted(conninfo: str, shown: str) -> None:
    assert redact(conninfo) == shown


def test_keyword_conninfo_is_redacted() -> None:
    shown = redact("host=db dbname=analytics user=app password=s3cr3t")
    assert "s3cr3t" not in shown
    assert "password=***" in shown


def test_database_label_has_no_user_or_password() -> None:
    label = database_label("postgresql://app:s3cr3t@db.example:6543/analytics")
    assert label == "db.example:6543/analytics"
