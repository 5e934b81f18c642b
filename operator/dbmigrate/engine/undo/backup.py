"""The backup step: pg_dump, read back with pg_restore --list, hashed, then retention.

Fails closed: the folder must exist (in a Job it is the mounted volume), pg_dump must not be older
than the server, and the dump is only kept and reported once ``pg_restore --list`` has read it
back. It is written under a ``.partial`` name first, so a crash never leaves something that looks
like a finished backup. Retention keeps the newest N backups of the same resource and never
deletes a protected one (``protect`` paths or a ``NAME.keep`` marker beside it).

What it adds to the pg_dump itself is kept small: the client programs' ``--version`` probes run
while the one connection reads the server's version and whether the database is empty, the
result model is loaded while pg_dump works, and the archive is hashed while pg_restore reads it
back.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dbmigrate.engine.undo import pgtools
from dbmigrate.engine.undo.archive import (
    BackupError,
    listed_entries,
    read_back,
    read_whole_archive,
    sha256_of,
    size_of,
)

if TYPE_CHECKING:
    import psycopg

    from dbmigrate.api.dataloss import TableCounters
    from dbmigrate.api.evidence import BackupEvidence, RetentionRecord

BackupFormat = Literal["custom", "directory"]
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
SUFFIX = {"custom": ".dump", "directory": ".dir"}
KEEP_MARKER = ".keep"
RESULT_MODULE = "dbmigrate.api.evidence"


@dataclass
class BackupOptions:
    """What the backup step needs besides the database URL."""

    folder: str
    identity: str
    format: BackupFormat = "custom"
    jobs: int = 1
    keep: int = 5
    protect: Sequence[str] = field(default_factory=tuple)
    pg_bin: str | None = None
    lock_wait_timeout: str = "60s"
    verify_data: bool = False


def safe_identity(identity: str) -> str:
    """A file-name-safe form of the resource identity, unique per identity.

    'ns/name' becomes 'ns_name'; anything else outside [A-Za-z0-9._-] is replaced and a short hash
    of the original is appended, so two different identities never share a prefix.
    """
    if not identity.strip():
        raise BackupError("the resource identity (--name) is empty; give e.g. NAMESPACE/NAME")
    simple = identity.replace("/", "_")
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", simple)
    if safe != simple or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"
    return safe


def backup_name(identity: str, when: datetime, fmt: BackupFormat) -> str:
    """File name of a backup: identity, UTC timestamp, format suffix."""
    return f"{safe_identity(identity)}-{when.astimezone(UTC).strftime(STAMP_FORMAT)}{SUFFIX[fmt]}"


def parse_backup_time(identity: str, name: str) -> datetime | None:
    """The timestamp of a backup name of this identity, or None if the name is not one."""
    prefix = safe_identity(identity) + "-"
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    for suffix in SUFFIX.values():
        if rest.endswith(suffix):
            try:
                return datetime.strptime(rest[: -len(suffix)], STAMP_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                return None
    return None


def choose_retention(
    backups: Iterable[tuple[str, datetime]], keep: int, protected: Iterable[str]
) -> RetentionRecord:
    """Which backups to delete: all but the newest KEEP, never a protected one."""
    from dbmigrate.api.evidence import RetentionRecord

    if keep < 1:
        raise BackupError(f"--keep must be at least 1 (got {keep}): the new backup is always kept")
    ordered = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    guard = set(protected)
    kept = [name for name, _ in ordered[:keep]]
    old = [name for name, _ in ordered[keep:]]
    shielded = [name for name in old if name in guard]
    deleted = [name for name in old if name not in guard]
    return RetentionRecord(keep=keep, kept=kept + shielded, deleted=deleted, protected=shielded)


USER_OBJECTS_SQL = """
SELECT count(*) FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""
SERVER_FACTS_SQL = f"""
SELECT current_setting('server_version_num')::int, current_setting('server_version'),
       current_database(), ({USER_OBJECTS_SQL}) = 0
"""


@dataclass(frozen=True)
class ServerFacts:
    """What the backup and restore steps need to know of the server, read in one query."""

    version_num: int
    version: str
    database: str
    empty: bool

    @property
    def major(self) -> int:
        """The server's major version (15 for 15.8)."""
        return pgtools.server_major(self.version_num)


def server_facts(url: str, purpose: str = "backup") -> ServerFacts:
    """The server version, the database name and whether it holds no relation of its own."""
    from dbmigrate.engine.connect import connect

    with connect(url, purpose) as conn:
        return read_server_facts(conn)


def facts_and_counters(url: str) -> tuple[ServerFacts, str, list[TableCounters]]:
    """``server_facts``, and the WAL position and table counters the data-loss check of a later
    rollback compares with (``dataloss.snapshot``), read on one connection before the dump."""
    from dbmigrate.engine.connect import connect
    from dbmigrate.engine.undo.dataloss import snapshot

    with connect(url, "backup") as conn:
        facts = read_server_facts(conn)
        lsn, counters = snapshot(conn)
    return facts, lsn, counters


def read_server_facts(conn: psycopg.Connection) -> ServerFacts:
    """``server_facts`` on a connection the caller holds open."""
    row = conn.execute(SERVER_FACTS_SQL).fetchone()
    assert row is not None
    return ServerFacts(int(row[0]), str(row[1]), str(row[2]), bool(row[3]))


def database_is_empty(url: str) -> bool:
    """Whether the database holds no relation of its own: its dump may rightly list nothing."""
    return server_facts(url).empty


def take_backup(url: str, options: BackupOptions, now: datetime | None = None) -> BackupEvidence:
    """Dump the database, verify the archive, hash it, apply retention; the evidence."""
    folder = _check_inputs(options)
    with pgtools.ToolProbes(("pg_dump", "pg_restore"), options.pg_bin) as probes:
        facts, lsn, counters = facts_and_counters(url)
        pg_dump = probes.find("pg_dump", facts.major)
        pg_restore = probes.find("pg_restore", facts.major)
    started = now or datetime.now(UTC)
    final = folder / backup_name(options.identity, started, options.format)
    if final.exists():
        raise BackupError(f"{final} already exists; wait a second and run the backup again")
    clock = time.monotonic()
    entries, digest = _dump_and_check(url, (pg_dump, pg_restore), final, options, facts.empty)
    duration = time.monotonic() - clock
    from dbmigrate.api.evidence import BackupEvidence

    evidence = BackupEvidence(
        path=str(final),
        format=options.format,
        jobs=options.jobs,
        database=facts.database,
        resource=options.identity,
        size_bytes=size_of(final),
        sha256=digest,
        duration_seconds=round(duration, 3),
        pg_dump_version=pg_dump.version,
        pg_restore_version=pg_restore.version,
        server_version=facts.version,
        started_at=started,
        finished_at=datetime.now(UTC),
        restore_list_entries=entries,
        verified=True,
        wal_lsn=lsn or None,
        table_counters=counters,
    )
    evidence.retention = apply_retention(folder, options, final.name)
    return evidence


def _check_inputs(options: BackupOptions) -> Path:
    folder = Path(options.folder)
    if not folder.is_dir():
        raise BackupError(
            f"backup folder {folder} does not exist or is not a folder; mount the volume there "
            "or create it (the backup never creates it, so a missing mount cannot go unnoticed)"
        )
    if options.format == "custom" and options.jobs != 1:
        raise BackupError("--jobs > 1 needs --format directory (custom is written by one process)")
    if options.jobs < 1:
        raise BackupError(f"--jobs must be at least 1, got {options.jobs}")
    return folder


def _dump_and_check(
    url: str,
    tools: tuple[pgtools.Tool, pgtools.Tool],
    final: Path,
    options: BackupOptions,
    may_be_empty: bool,
) -> tuple[int, str]:
    """pg_dump into FINAL.partial, read it back (hashing it meanwhile; with ``verify_data`` also
    every data block), then rename it to FINAL; the list entries and the sha256."""
    pg_dump, pg_restore = tools
    partial = final.with_name(final.name + ".partial")

    def hashing() -> str:
        return sha256_of(partial)

    try:
        _run_pg_dump(url, pg_dump, partial, options)
        if options.verify_data:  # hash during the longer read
            listing, _ = read_back(partial, pg_restore, pgtools.nothing)
            entries = listed_entries(listing, partial, may_be_empty=may_be_empty)
            digest = read_whole_archive(partial, pg_restore, hashing)
        else:
            listing, digest = read_back(partial, pg_restore, hashing)
            entries = listed_entries(listing, partial, may_be_empty=may_be_empty)
        partial.rename(final)
    finally:
        _remove(partial)
    return entries, digest


def _run_pg_dump(url: str, tool: pgtools.Tool, target: Path, options: BackupOptions) -> None:
    conninfo, env = pgtools.libpq_args(url)
    argv = [
        tool.path,
        f"--format={options.format}",
        f"--file={target}",
        f"--lock-wait-timeout={options.lock_wait_timeout}",
        "--no-password",
        f"--dbname={conninfo}",
    ]
    if options.format == "directory":
        argv.append(f"--jobs={options.jobs}")
    try:
        pgtools.run_tool_while(argv, env, "pg_dump", _load_result_model)
    except pgtools.PgToolError as exc:
        raise BackupError(str(exc), exit_code=exc.exit_code) from exc


def _load_result_model() -> None:
    """Import the evidence model while pg_dump works, instead of after it."""
    importlib.import_module(RESULT_MODULE)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def apply_retention(folder: Path, options: BackupOptions, newest: str) -> RetentionRecord:
    """Delete all but the newest ``keep`` backups of this identity, sparing protected ones."""
    found = [
        (entry.name, stamp)
        for entry in folder.iterdir()
        if (stamp := parse_backup_time(options.identity, entry.name)) is not None
    ]
    protected = {Path(p).name for p in options.protect} | {newest}
    protected |= {name for name, _ in found if (folder / (name + KEEP_MARKER)).exists()}
    record = choose_retention(found, options.keep, protected)
    for name in record.deleted:
        _remove(folder / name)
    return record
