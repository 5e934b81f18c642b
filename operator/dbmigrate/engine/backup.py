"""The backup step: pg_dump, read back with pg_restore --list, hashed, then retention.

Fails closed: the folder must exist (in a Job it is the mounted volume), pg_dump must not be older
than the server, and the dump is only kept and reported once ``pg_restore --list`` has read it
back. It is written under a ``.partial`` name first, so a crash never leaves something that looks
like a finished backup. Retention keeps the newest N backups of the same resource and never
deletes a protected one (``protect`` paths or a ``NAME.keep`` marker beside it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from dbmigrate.api.evidence import BackupEvidence, RetentionRecord
from dbmigrate.engine import pgtools
from dbmigrate.engine.connect import connect

BackupFormat = Literal["custom", "directory"]
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
SUFFIX = {"custom": ".dump", "directory": ".dir"}
KEEP_MARKER = ".keep"


class BackupError(pgtools.StepError):
    """The backup could not be taken or verified; nothing was reported as a backup."""


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
    if keep < 1:
        raise BackupError(f"--keep must be at least 1 (got {keep}): the new backup is always kept")
    ordered = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    guard = set(protected)
    kept = [name for name, _ in ordered[:keep]]
    old = [name for name, _ in ordered[keep:]]
    shielded = [name for name in old if name in guard]
    deleted = [name for name in old if name not in guard]
    return RetentionRecord(keep=keep, kept=kept + shielded, deleted=deleted, protected=shielded)


def sha256_of(path: Path) -> str:
    """sha256 of a file; for a directory, of its sorted relative names with each file's sha256."""
    if path.is_file():
        return _file_sha256(path)
    outer = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = item.relative_to(path).as_posix()
        outer.update(f"{rel}\0{_file_sha256(item)}\n".encode())
    return outer.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def count_list_entries(listing: str) -> int:
    """Entries in ``pg_restore --list`` output (comment lines start with ';')."""
    return sum(1 for line in listing.splitlines() if line.strip() and not line.startswith(";"))


USER_OBJECTS_SQL = """
SELECT count(*) FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""


def database_is_empty(url: str) -> bool:
    """Whether the database holds no relation of its own: its dump may rightly list nothing."""
    with connect(url, "backup") as conn:
        row = conn.execute(USER_OBJECTS_SQL).fetchone()
    return row is not None and row[0] == 0


def server_info(url: str) -> tuple[int, str, str]:
    """(server_version_num, server_version, database name) of the URL's database."""
    with connect(url, "backup") as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int,"
            " current_setting('server_version'), current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1]), str(row[2])


def verify_archive(path: Path, pg_restore: pgtools.Tool, *, may_be_empty: bool = False) -> int:
    """Read the archive back with pg_restore --list; the number of entries, or BackupError."""
    try:
        proc = pgtools.run_tool(
            [pg_restore.path, "--list", str(path)],
            dict(os.environ),
            f"pg_restore --list {path.name}",
        )
    except pgtools.PgToolError as exc:
        raise BackupError(
            f"{path} cannot be read back by pg_restore {pg_restore.version}: {exc}. If it was "
            "written by a newer pg_dump, use a pg_restore of at least that version"
        ) from exc
    entries = count_list_entries(proc.stdout)
    if entries == 0 and not may_be_empty:
        raise BackupError(f"pg_restore --list of {path} read no entries: the archive is empty")
    return entries


def read_whole_archive(path: Path, pg_restore: pgtools.Tool) -> None:
    """Read every data block of the archive (``pg_restore --file=/dev/null``), or BackupError.

    ``--list`` reads only the table of contents; a truncated or damaged data section shows up
    only when the data is read.
    """
    argv = [pg_restore.path, f"--file={os.devnull}", str(path)]
    try:
        pgtools.run_tool(argv, dict(os.environ), f"pg_restore (full read of {path.name})")
    except pgtools.PgToolError as exc:
        raise BackupError(f"{path} is damaged or truncated: {exc}") from exc


def take_backup(url: str, options: BackupOptions, now: datetime | None = None) -> BackupEvidence:
    """Dump the database, verify the archive, hash it, apply retention; the evidence."""
    folder = _check_inputs(options)
    version_num, server_version, dbname = server_info(url)
    major = pgtools.server_major(version_num)
    pg_dump = pgtools.find_tool("pg_dump", major, options.pg_bin)
    pg_restore = pgtools.find_tool("pg_restore", major, options.pg_bin)
    started = now or datetime.now(UTC)
    final = folder / backup_name(options.identity, started, options.format)
    if final.exists():
        raise BackupError(f"{final} already exists; wait a second and run the backup again")
    partial = final.with_name(final.name + ".partial")
    clock = time.monotonic()
    entries = _dump_and_check(url, pg_dump, pg_restore, partial, final, options)
    duration = time.monotonic() - clock
    evidence = BackupEvidence(
        path=str(final),
        format=options.format,
        jobs=options.jobs,
        database=dbname,
        resource=options.identity,
        size_bytes=size_of(final),
        sha256=sha256_of(final),
        duration_seconds=round(duration, 3),
        pg_dump_version=pg_dump.version,
        pg_restore_version=pg_restore.version,
        server_version=server_version,
        started_at=started,
        finished_at=datetime.now(UTC),
        restore_list_entries=entries,
        verified=True,
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
    pg_dump: pgtools.Tool,
    pg_restore: pgtools.Tool,
    partial: Path,
    final: Path,
    options: BackupOptions,
) -> int:
    """pg_dump into PARTIAL, read it back, then rename it to FINAL; the list entries."""
    try:
        _run_pg_dump(url, pg_dump, partial, options)
        entries = verify_archive(partial, pg_restore, may_be_empty=database_is_empty(url))
        if options.verify_data:
            read_whole_archive(partial, pg_restore)
        partial.rename(final)
    finally:
        _remove(partial)
    return entries


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
        pgtools.run_tool(argv, env, "pg_dump")
    except pgtools.PgToolError as exc:
        raise BackupError(str(exc), exit_code=exc.exit_code) from exc


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
