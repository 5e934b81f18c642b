"""Is the schema an application version needs in place? Judged from the database's own history.

``dbmigrate wait`` runs as an init container of the application's pods: the new version starts
only once the migrations it was built against are applied. It reads the history table (so it
needs no Kubernetes permission, only a role that can read ``dbmigrate.schema_migrations``) and
``judge`` turns the rows into one of three verdicts: ready, waiting (a run is under way or has
not started), or failed (a version the application needs was rolled back or its run failed;
a person must look, and the init container's restart will ask again after a fix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg

from dbmigrate.engine import history
from dbmigrate.engine.connect import connect
from dbmigrate.engine.errors import ConnectionFailedError
from dbmigrate.engine.sources import MigrationSet

State = Literal["ready", "waiting", "failed"]
BROKEN = ("failed", "rolled_back")


@dataclass(frozen=True)
class Verdict:
    """Where the wait stands, and a sentence saying why."""

    state: State
    message: str


@dataclass(frozen=True)
class Wanted:
    """The versions an application needs: every version of ``versions`` (a migration folder's,
    with their checksums) or, without the files, everything up to and including ``up_to``."""

    up_to: int
    versions: tuple[tuple[int, str], ...] = ()

    @classmethod
    def from_set(cls, migration_set: MigrationSet, up_to: int | None = None) -> Wanted:
        """The folder's versions up to ``up_to`` (default: its highest)."""
        chosen = migration_set.up_to(up_to)
        if chosen.latest is None:
            raise ValueError("the migration folder has no version to wait for")
        return cls(
            up_to=up_to if up_to is not None else chosen.latest,
            versions=tuple((m.version, m.checksum) for m in chosen),
        )

    def describe(self) -> str:
        """What is waited for, in words."""
        if self.versions:
            listed = ", ".join(str(v) for v, _ in self.versions)
            return f"versions {listed} applied and not rolled back"
        return f"every version up to {self.up_to} applied and not rolled back"


def _broken(row: history.HistoryRow) -> Verdict:
    if row.status == "rolled_back":
        by = f" by {row.rolled_back_by}" if row.rolled_back_by else ""
        return Verdict(
            "failed",
            f"version {row.version} ({row.name}) was rolled back{by}: the schema this "
            "application needs is not there; fix the migration and run it again",
        )
    error = f": {row.error}" if row.error else ""
    return Verdict(
        "failed",
        f"version {row.version} ({row.name}) failed after {row.statements_done}/"
        f"{row.statements_total} statements{error}",
    )


def _progress(rows: Sequence[history.HistoryRow], missing: Sequence[int]) -> str:
    applied = [r.version for r in rows if r.status == "applied"]
    running = [r for r in rows if r.status == "running"]
    parts = [f"highest applied {max(applied)}" if applied else "nothing applied yet"]
    parts += [
        f"{r.version} running ({r.statements_done}/{r.statements_total} statements)"
        for r in running
    ]
    if missing:
        parts.append(f"still to apply: {', '.join(str(v) for v in missing)}")
    return "; ".join(parts)


def judge(rows: Sequence[history.HistoryRow], wanted: Wanted) -> Verdict:
    """The verdict on the history rows (pure). A failed or rolled-back version the application
    needs fails the wait; a version applied with another checksum than the mounted file's too
    (the database holds other SQL than the application was built against)."""
    by_version = {r.version: r for r in rows}
    if wanted.versions:
        needed = [v for v, _ in wanted.versions]
        for version, checksum in wanted.versions:
            row = by_version.get(version)
            if row is not None and row.status in BROKEN:
                return _broken(row)
            if row is not None and row.status == "applied" and row.checksum != checksum:
                return Verdict(
                    "failed",
                    f"version {version} ({row.name}) is applied with checksum "
                    f"{row.checksum[:12]}, but the mounted file has {checksum[:12]}: the "
                    "database holds other SQL than this application expects",
                )
        missing = [
            v for v in needed if by_version.get(v) is None or by_version[v].status != "applied"
        ]
    else:
        for row in rows:
            if row.version <= wanted.up_to and row.status in BROKEN:
                return _broken(row)
        unfinished = {r.version for r in rows if r.version <= wanted.up_to}
        unfinished -= {r.version for r in rows if r.status == "applied"}
        highest = max((r.version for r in rows if r.status == "applied"), default=None)
        # out-of-order versions are refused by the plan, so an applied version at or above the
        # wanted one means every version of the set up to it ran
        if highest is None or highest < wanted.up_to:
            unfinished.add(wanted.up_to)
        missing = sorted(unfinished)
    if missing:
        return Verdict("waiting", _progress(rows, missing))
    return Verdict("ready", f"{wanted.describe()}: {_progress(rows, [])}")


def check_database(conninfo: str, wanted: Wanted) -> Verdict:
    """Read the history and judge it; a database that cannot be reached, or has no history
    table yet, is a reason to wait (it may come up, the first run may not have started)."""
    try:
        with connect(conninfo, "wait") as conn:
            if not history.history_exists(conn):
                return Verdict("waiting", "no history table yet: no migration has run")
            rows = history.read_rows(conn)
    except ConnectionFailedError as exc:
        return Verdict("waiting", str(exc))
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Verdict("waiting", f"reading the history failed: {first}")
    return judge(rows, wanted)
