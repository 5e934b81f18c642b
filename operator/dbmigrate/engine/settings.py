"""The knobs of an apply run, with safe defaults.

Timeouts are in milliseconds as PostgreSQL takes them. ``lock_timeout`` bounds how long any
statement may queue for a lock (a queued ALTER TABLE blocks every later query on the table, so this
stays short); ``concurrent_lock_timeout`` applies to CONCURRENTLY statements instead, whose waits
block no readers or writers; retries with exponential backoff follow a lock timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dbmigrate.api.lint import LintFinding

LintPolicy = Literal["strict", "warn", "off"]


@dataclass(frozen=True)
class ApplySettings:
    """How an apply run behaves."""

    target: int | None = None
    lock_timeout_ms: int = 5_000
    concurrent_lock_timeout_ms: int | None = None  # None: same as lock_timeout_ms
    statement_timeout_ms: int = 0  # 0: no limit (index builds on big tables take long)
    max_retries: int = 3
    retry_backoff_seconds: float = 2.0
    retry_backoff_max_seconds: float = 60.0
    lock_wait_seconds: float = 60.0  # how long to wait for another run's advisory lock
    auto_concurrently: bool = False
    lint_policy: LintPolicy = "strict"
    expected_plan_hash: str | None = None
    progress_interval_seconds: float = 0.5
    on_lint_findings: Callable[[list[LintFinding]], None] | None = None

    def __post_init__(self) -> None:
        numbers = {
            "lock_timeout_ms": self.lock_timeout_ms,
            "statement_timeout_ms": self.statement_timeout_ms,
            "max_retries": self.max_retries,
            "retry_backoff_seconds": self.retry_backoff_seconds,
            "lock_wait_seconds": self.lock_wait_seconds,
        }
        for name, value in numbers.items():
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if not 0 < self.progress_interval_seconds <= 2:
            raise ValueError("progress_interval_seconds must be in (0, 2]")

    @property
    def concurrent_timeout_ms(self) -> int:
        """lock_timeout for CONCURRENTLY and other autocommit statements."""
        if self.concurrent_lock_timeout_ms is None:
            return self.lock_timeout_ms
        return self.concurrent_lock_timeout_ms

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): doubling, capped."""
        return float(
            min(self.retry_backoff_seconds * 2 ** (attempt - 1), self.retry_backoff_max_seconds)
        )
