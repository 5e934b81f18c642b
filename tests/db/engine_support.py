"""Helpers of the engine's db tests: migration sets written to folders, settings, blockers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from dbmigrate.engine.settings import ApplySettings
from dbmigrate.engine.sources import MigrationSet, load_directory, load_mapping

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "database" / "migrations"


def example_set() -> MigrationSet:
    """The analytics migrations 001-005."""
    return load_directory(EXAMPLE, allow_gaps=False)


def example_with(extra: dict[str, str]) -> MigrationSet:
    """The analytics migrations plus extra files."""
    files = {p.name: p.read_text() for p in EXAMPLE.glob("*.sql")}
    return load_mapping({**files, **extra})


def fast(**overrides: object) -> ApplySettings:
    """Settings with short waits so tests end quickly."""
    values: dict[str, object] = {
        "lock_timeout_ms": 2000,
        "retry_backoff_seconds": 0.1,
        "lock_wait_seconds": 5.0,
        "progress_interval_seconds": 0.1,
        "lint_policy": "off",
    }
    values.update(overrides)
    return ApplySettings(**values)  # type: ignore[arg-type]


def query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of one query on a short-lived connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []


def index_state(url: str, name: str) -> tuple[bool, bool] | None:
    """(indisvalid, indisready) of an index in public, None when absent."""
    rows = query(
        url,
        "SELECT indisvalid, indisready FROM pg_index"
        " WHERE indexrelid = to_regclass(format('public.%%I', %s::text))",
        (name,),
    )
    return (bool(rows[0][0]), bool(rows[0][1])) if rows else None


@contextmanager
def open_transaction(url: str, application_name: str, *statements: str) -> Iterator[int]:
    """A session that runs statements inside an open transaction until the block ends; yields
    its pid."""
    conn = psycopg.connect(url, application_name=application_name)
    try:
        for statement in statements:
            conn.execute(statement)
        yield conn.info.backend_pid
    finally:
        conn.rollback()
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


class Background(threading.Thread):
    """Runs a callable in a thread and keeps its result or exception."""

    def __init__(self, target: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_fn()
        except BaseException as exc:  # handed to the test, which re-raises it
            self.error = exc

    def outcome(self, timeout: float = 60.0) -> object:
        self.join(timeout)
        assert not self.is_alive(), "background apply did not finish"
        if self.error is not None:
            raise self.error
        return self.result
