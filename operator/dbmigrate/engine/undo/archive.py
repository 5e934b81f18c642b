"""The artefact of a backup: read back by pg_restore, hashed and sized.

Shared by the backup step (which reads its new archive back before reporting it) and the restore
step (which checks an archive before it touches a database). ``read_back`` lets the caller work
(hash the artefact) while ``pg_restore --list`` reads it, so the two cost the time of one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from dbmigrate.engine.undo import pgtools

T = TypeVar("T")


class BackupError(pgtools.StepError):
    """The backup could not be taken or verified; nothing was reported as a backup."""


def sha256_of(path: Path) -> str:
    """sha256 of a file; for a directory, of its sorted relative names with each file's sha256."""
    if path.is_file():
        return _file_sha256(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    # one file per thread: hashlib releases the GIL, so a directory dump (one file per table)
    # hashes on every core; the combined digest does not depend on the order of the work
    with ThreadPoolExecutor(max_workers=min(len(files), os.cpu_count() or 1) or 1) as pool:
        digests = list(pool.map(_file_sha256, files))
    outer = hashlib.sha256()
    for item, digest in zip(files, digests, strict=True):
        outer.update(f"{item.relative_to(path).as_posix()}\0{digest}\n".encode())
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


def read_back(path: Path, pg_restore: pgtools.Tool, work: Callable[[], T]) -> tuple[str, T]:
    """``pg_restore --list`` of the archive, and WORK done while it reads; or BackupError."""
    try:
        proc, done = pgtools.run_tool_while(
            [pg_restore.path, "--list", str(path)],
            dict(os.environ),
            f"pg_restore --list {path.name}",
            work,
        )
    except pgtools.PgToolError as exc:
        raise BackupError(
            f"{path} cannot be read back by pg_restore {pg_restore.version}: {exc}. If it was "
            "written by a newer pg_dump, use a pg_restore of at least that version"
        ) from exc
    return proc.stdout, done


def listed_entries(listing: str, path: Path, *, may_be_empty: bool = False) -> int:
    """The entries of a ``pg_restore --list``; BackupError when there are none and must be."""
    entries = count_list_entries(listing)
    if entries == 0 and not may_be_empty:
        raise BackupError(f"pg_restore --list of {path} read no entries: the archive is empty")
    return entries


def read_whole_archive(path: Path, pg_restore: pgtools.Tool, work: Callable[[], T]) -> T:
    """Read every data block of the archive (``pg_restore --file=/dev/null``), doing WORK
    meanwhile; WORK's result, or BackupError.

    ``--list`` reads only the table of contents; a truncated or damaged data section shows up
    only when the data is read.
    """
    argv = [pg_restore.path, f"--file={os.devnull}", str(path)]
    what = f"pg_restore (full read of {path.name})"
    try:
        return pgtools.run_tool_while(argv, dict(os.environ), what, work)[1]
    except pgtools.PgToolError as exc:
        raise BackupError(f"{path} is damaged or truncated: {exc}") from exc
