"""The runner sends its SET of lock_timeout/statement_timeout only when the values change, and
again after anything that may have changed them (no database: a connection that records)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dbmigrate.engine.execute import FileRunner
from dbmigrate.engine.settings import ApplySettings
from dbmigrate.engine.statements import executable_statements


class RecordingConnection:
    """Just enough of a psycopg connection for the runner's SET."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.fail = fail

    def execute(self, query: str, params: Any = None) -> None:
        if self.fail:
            raise psycopg.OperationalError("connection lost")
        self.sent.append((query, params))


def _runner(conn: RecordingConnection, **settings: Any) -> FileRunner:
    return FileRunner(conn, None, ApplySettings(**settings), "run-x")  # type: ignore[arg-type]


def test_unchanged_timeouts_are_not_sent_again() -> None:
    conn = RecordingConnection()
    runner = _runner(conn, lock_timeout_ms=1500, statement_timeout_ms=60_000)
    runner._set_timeouts(1500)
    runner._set_timeouts(1500)
    assert [params for _, params in conn.sent] == [("1500", "60000")]
    runner._set_timeouts(400)  # the concurrent lock timeout differs: sent
    runner._set_timeouts(1500)  # and back
    assert [params for _, params in conn.sent] == [
        ("1500", "60000"),
        ("400", "60000"),
        ("1500", "60000"),
    ]


def test_a_failed_set_is_sent_again() -> None:
    conn = RecordingConnection(fail=True)
    runner = _runner(conn, lock_timeout_ms=1500)
    with pytest.raises(psycopg.OperationalError):
        runner._set_timeouts(1500)
    conn.fail = False
    runner._set_timeouts(1500)
    assert len(conn.sent) == 1


@pytest.mark.parametrize(
    ("sql", "may_change"),
    [
        ("SET lock_timeout = '1s'", True),
        ("RESET ALL", True),
        ("SELECT set_config('lock_timeout', '0', false)", True),
        ("DO $$ BEGIN PERFORM 1; END $$", True),
        ("INSERT INTO t SELECT 1", True),
        ("CREATE TABLE t2 AS SELECT 1 AS a", True),
        ("CALL p()", True),
        ("CREATE TABLE t (a int)", False),
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", False),
        ("ALTER TABLE t ADD COLUMN IF NOT EXISTS b int", False),
        ("COMMENT ON COLUMN t.a IS 'x'", False),
    ],
)
def test_statements_that_may_change_settings(sql: str, may_change: bool) -> None:
    [statement] = executable_statements(sql)
    assert statement.may_change_settings is may_change
