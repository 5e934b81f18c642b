"""How ``plan``, ``apply``, ``status`` and ``history`` look to a person.

Pure text renderers for the result models, and the live view of an apply: a rich progress bar for
the running statement (index-build phase and percent when PostgreSQL reports them) and the sessions
it waits for. The live view draws on stderr, so stdout carries only the final summary; the engine's
log lines (retries, invalid-index drops) are drawn above the bar.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from dbmigrate.api.plan import ApplyProgress, ApplyResult, Blocker, CreatedObject, PlanResult

if TYPE_CHECKING:  # rich is imported when a live view is drawn: step pods only print text
    from rich.progress import Progress, TaskID
from dbmigrate.engine.history import HistoryRow


def _short(checksum: str | None) -> str:
    return checksum[:12] if checksum else "-"


def _object_text(o: CreatedObject) -> str:
    if o.kind == "column":
        return f"column {o.schema_name}.{o.table}.{o.name}"
    on = f" on {o.table}" if o.table else ""
    return f"{o.kind} {o.schema_name}.{o.name}{on}" if o.schema_name else f"{o.kind} {o.name}{on}"


def plan_text(result: PlanResult) -> list[str]:
    """The plan: pending versions, the hash, and drift."""
    lines = [f"plan for {result.database} (target {result.target}): {len(result.applied)} applied"]
    for p in result.pending:
        resume = f" (resumes after statement {p.resume_from})" if p.resume_from else ""
        lines.append(f"  pending {p.version:>4} {p.name}  sha256 {_short(p.checksum)}{resume}")
    if not result.pending:
        lines.append("  nothing pending")
    lines.append(f"plan hash {result.plan_hash}")
    lines += [f"DRIFT: {e.message}" for e in result.drift_errors]
    return lines


def blocker_text(b: Blocker) -> str:
    """One blocking session on one line."""
    age = f"{b.transaction_age_seconds:.0f}s" if b.transaction_age_seconds is not None else "?"
    return (
        f"pid {b.pid} {b.state or '?'} app={b.application_name or '-'} xact_age={age} "
        f"query={(b.query or '').strip()[:80]!r}"
    )


def apply_text(result: ApplyResult) -> list[str]:
    """The outcome of an apply, version by version."""
    lines = [f"apply {result.run_id} on {result.database}: {result.status}"]
    for v in result.versions:
        took = f"{v.duration_seconds:.2f}s" if v.duration_seconds is not None else "-"
        retries = f", {v.retries} retries" if v.retries else ""
        lines.append(
            f"  {v.version:>4} {v.name:<34} {v.status:<8} {v.mode:<11} "
            f"{v.statements_done}/{v.statements_total} statements, {took}{retries}"
        )
        lines += [f"       created {_object_text(o)}" for o in v.created_objects]
    if result.error:
        lines.append(f"error [{result.error_code}]: {result.error}")
    lines += [f"  blocker: {blocker_text(b)}" for b in result.blockers]
    return lines


def history_text(rows: Sequence[HistoryRow]) -> list[str]:
    """The history table as aligned lines."""
    if not rows:
        return ["no migrations recorded (the history table is empty or absent)"]
    lines = []
    for r in rows:
        when = r.finished_at.isoformat(timespec="seconds") if r.finished_at else "-"
        took = f"{r.duration_seconds:.2f}s" if r.duration_seconds is not None else "-"
        lines.append(
            f"{r.version:>5} {r.name:<34} {r.status:<11} {r.statements_done}/{r.statements_total}"
            f"  {when}  {took}  by {r.applied_by or '-'}  sha256 {_short(r.checksum)}"
        )
        if r.error:
            lines.append(f"      error: {r.error}")
    return lines


class ProgressView:
    """The live progress bar of an apply (a no-op when disabled, e.g. for --output json)."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.enabled = enabled
        self.console = Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._blockers: set[int] = set()
        self._handler: logging.Handler | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressView:
        logger = logging.getLogger("dbmigrate")
        logger.setLevel(logging.INFO)
        if self.enabled:
            from rich.logging import RichHandler
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[pct]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=100, pct="")
            self._handler = RichHandler(console=self.console, show_path=False)
        else:
            self._handler = logging.StreamHandler()
        logger.addHandler(self._handler)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._handler is not None:
            logging.getLogger("dbmigrate").removeHandler(self._handler)

    def update(self, p: ApplyProgress) -> None:
        """Show one progress sample (called from the engine's monitor thread too)."""
        if self._progress is None or self._task is None:
            return
        with self._lock:
            phase = f" - {p.phase}" if p.phase else ""
            wait = " - waiting for a lock" if p.waiting else ""
            description = (
                f"{p.version:03d} {p.name} [{p.statement_index}/{p.statements_total}] "
                f"{p.statement[:60]}{phase}{wait}"
            )
            done = p.percent if p.percent is not None else 0.0
            pct = f"{p.percent:.1f}%" if p.percent is not None else ""
            self._progress.update(self._task, description=description, completed=done, pct=pct)
            for b in p.blockers:
                if b.pid not in self._blockers:
                    self._blockers.add(b.pid)
                    self.console.print(f"[yellow]waiting for[/] {blocker_text(b)}")
