"""The supported PostgreSQL range: what preflight says about a server in and out of it."""

from __future__ import annotations

import pytest

from dbmigrate.engine import preflight
from dbmigrate.engine.undo import pgtools
from testbed import pgversions


def test_the_tested_majors_are_the_supported_range() -> None:
    supported = range(pgtools.OLDEST_SUPPORTED_MAJOR, pgtools.NEWEST_SUPPORTED_MAJOR + 1)
    assert tuple(supported) == pgversions.SUPPORTED_MAJORS


@pytest.mark.parametrize("num", [130000, 130023, 150019, 180000, 180006])
def test_a_supported_server_passes(num: int) -> None:
    assert pgtools.unsupported_server(num) is None
    check = preflight._version_check(num, "x")
    assert check.name == "server-version" and check.status == "ok"
    assert "supported: 13 to 18" in check.message


@pytest.mark.parametrize(
    ("num", "words"),
    [
        (120022, "PostgreSQL 12 is older than the supported PostgreSQL 13 to 18"),
        (90624, "PostgreSQL 9.x is older than the supported PostgreSQL 13 to 18"),
        (190000, "PostgreSQL 19 is newer than the supported PostgreSQL 13 to 18"),
    ],
)
def test_a_server_outside_the_range_is_warned_about(num: int, words: str) -> None:
    check = preflight._version_check(num, "x")
    assert check.status == "warn" and check.message.startswith(words)
    assert "not tested" in check.message
