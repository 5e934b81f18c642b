"""Restoring a backup with pg_restore: a clean restore into the same database, or into a new one.

Before anything is touched the artefact is checked: it exists, is a custom or directory archive,
matches the recorded sha256 when one is given, and ``pg_restore --list`` reads it. A one-job
restore into the same database runs with ``--single-transaction``, so a failure changes nothing;
with several jobs (``-j``) it is faster but not atomic, and when the caller changes the database
just before it (the rollback drops the run's objects first) the whole archive is read before that,
so a damaged one is found while nothing is changed yet. Restoring into a new database (for
inspection) refuses an existing name and drops the new database again if the restore fails.

pg_restore 17 and newer cannot restore straight into a server older than 17 (its first command
sets ``transaction_timeout``, which such a server does not know). Then pg_restore writes the
restore as an SQL script, in one transaction, and psql of the same folder runs it with
ON_ERROR_STOP, that one SET left out of the script's preamble: the restore stays all or nothing,
and one job (a script cannot be restored in parallel).

The checks cost little next to the restore: one connection reads the server version, checks the
new name and creates the database, the ``pg_restore --version`` probes run while it connects, and
the archive is hashed while ``pg_restore --list`` reads it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import psycopg
from psycopg import sql

from dbmigrate.api.exitcodes import EXIT_FAILED
from dbmigrate.engine.connect import connect
from dbmigrate.engine.undo import pgtools
from dbmigrate.engine.undo.archive import (
    BackupError,
    count_list_entries,
    listed_entries,
    read_back,
    read_whole_archive,
    sha256_of,
)
from dbmigrate.engine.undo.backup import ServerFacts, read_server_facts

CUSTOM_MAGIC = b"PGDMP"
_TABLE_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )")
UNKNOWN_SETTING_LINE = b"SET transaction_timeout = 0;"
# What pg_restore's script starts with before its first object: comments, psql's \restrict, the
# session settings and the transaction's BEGIN.
_PREAMBLE_STARTS = (b"--", b"\\restrict ", b"SET ", b"SELECT pg_catalog.set_config(", b"BEGIN;")


T = TypeVar("T")


class RestoreError(pgtools.StepError):
    """The backup cannot be restored; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class RestoreOutcome:
    """What a restore did."""

    target_database: str
    archive_format: str
    list_entries: int
    table_entries: int
    jobs: int
    atomic: bool
    duration_seconds: float
    pg_restore_version: str


def archive_format(path: Path) -> str:
    """'custom' or 'directory'; RestoreError for anything else (plain SQL, tar, missing)."""
    if path.is_dir():
        if not (path / "toc.dat").is_file():
            raise RestoreError(f"{path} is a folder without toc.dat: not a directory-format dump")
        return "directory"
    if not path.is_file():
        raise RestoreError(
            f"backup {path} does not exist; give the path recorded in the backup evidence "
            "(status.backup.path) and check the backup volume is mounted"
        )
    with path.open("rb") as handle:
        head = handle.read(len(CUSTOM_MAGIC))
    if head != CUSTOM_MAGIC:
        raise RestoreError(f"{path} is not a pg_dump custom-format archive (bad header)")
    return "custom"


def count_table_entries(listing: str) -> int:
    """TABLE entries (not TABLE DATA) in ``pg_restore --list`` output."""
    return sum(1 for line in listing.splitlines() if _TABLE_ENTRY.match(line))


def check_backup(
    path: Path, pg_restore: pgtools.Tool, expected_sha256: str | None, read_data: bool
) -> str:
    """Everything checked before a restore touches the database; the archive listing.

    READ_DATA also reads every data block first: needed when the restore is not atomic. The
    sha256 is compared during the longest read (the full one, else ``pg_restore --list``).
    """
    archive_format(path)

    def compare_sha256() -> None:
        if expected_sha256 and sha256_of(path) != expected_sha256.lower():
            raise RestoreError(
                f"{path} does not match the recorded sha256 {expected_sha256}: it changed since "
                "the backup was taken; do not restore it"
            )

    try:
        listing, _ = read_back(path, pg_restore, pgtools.nothing if read_data else compare_sha256)
        listed_entries(listing, path)
        if read_data:
            read_whole_archive(path, pg_restore, compare_sha256)
    except BackupError as exc:
        raise RestoreError(str(exc)) from exc
    return listing


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether a database of that name exists."""
    return (
        conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
    )


def restore(
    url: str,
    path: str | Path,
    jobs: int = 1,
    into_database: str | None = None,
    pg_bin: str | None = None,
    expected_sha256: str | None = None,
    meanwhile: Callable[[], object] = pgtools.nothing,
    first: Callable[[], object] | None = None,
) -> RestoreOutcome:
    """Restore PATH into the URL's database (clean) or into a new database INTO_DATABASE.

    MEANWHILE is called while pg_restore runs (work the caller needs next, done in its shadow);
    FIRST, for a restore into the URL's database, once the archive passed its checks and before
    pg_restore starts (the rollback drops what the run created there).
    """
    backup = Path(path)
    fmt = archive_format(backup)
    # a one-job restore into the same database is one transaction and a restore into a new
    # database is dropped on failure; a parallel restore into this database, or one that FIRST
    # changes it, needs a full read of the archive before anything is changed
    read_data = not into_database and (jobs > 1 or first is not None)
    facts, tools, listing = _prepare(url, backup, into_database, pg_bin, expected_sha256, read_data)
    pg_restore, psql = tools
    if psql is not None:
        jobs = 1  # restored through a script: one job
    started = time.monotonic()
    if into_database:
        _restore_new(url, backup, tools, jobs, into_database, meanwhile)
    else:
        if first is not None:
            first()
        _run_restore(url, backup, tools, (jobs, facts.database, True), meanwhile)
    return RestoreOutcome(
        target_database=into_database or facts.database,
        archive_format=fmt,
        list_entries=count_list_entries(listing),
        table_entries=count_table_entries(listing),
        jobs=jobs,
        atomic=jobs == 1,
        duration_seconds=round(time.monotonic() - started, 3),
        pg_restore_version=pg_restore.version,
    )


Tools = tuple[pgtools.Tool, pgtools.Tool | None]  # pg_restore, and psql when it runs the script


def _prepare(
    url: str,
    backup: Path,
    into_database: str | None,
    pg_bin: str | None,
    expected_sha256: str | None,
    read_data: bool,
) -> tuple[ServerFacts, Tools, str]:
    """On one connection: the server's facts, the pg_restore for it (and psql, when the restore
    goes through a script), the archive checked, and the new database created when
    INTO_DATABASE is given; those and the archive listing."""
    names = ("pg_restore", "psql")
    with pgtools.ToolProbes(names, pg_bin) as probes, connect(url, "restore") as conn:
        facts = read_server_facts(conn)
        pg_restore = probes.find("pg_restore", facts.major)
        psql = None
        if pgtools.restore_sets_unknown_setting(pg_restore, facts.major):
            psql = _script_runner(probes, pg_restore, facts.major)
        if into_database and database_exists(conn, into_database):
            raise RestoreError(
                f"database {into_database!r} exists already; choose a new name for "
                "--into-database (a restore for inspection never overwrites a database)"
            )
        listing = check_backup(backup, pg_restore, expected_sha256, read_data)
        if into_database:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(into_database)))
    return facts, (pg_restore, psql), listing


def _script_runner(
    probes: pgtools.ToolProbes, pg_restore: pgtools.Tool, major: int
) -> pgtools.Tool:
    """psql to run pg_restore's script with, from pg_restore's own folder."""
    try:
        psql = probes.find("psql", major)
    except pgtools.ToolNotFound as exc:
        raise RestoreError(
            f"pg_restore {pg_restore.version} cannot restore straight into PostgreSQL {major} "
            "(it sets transaction_timeout, which servers older than 17 do not have), so the "
            f"restore runs its script through psql, and none was found: {exc}"
        ) from exc
    if Path(psql.path).parent != Path(pg_restore.path).parent:
        raise RestoreError(
            f"pg_restore {pg_restore.version} ({pg_restore.path}) restores into PostgreSQL {major} "
            f"through psql, which must come from the same folder; found {psql.path}: point "
            f"--pg-bin / {pgtools.TOOL_DIR_ENV} at a folder holding both"
        )
    return psql


def _restore_new(
    url: str,
    backup: Path,
    tools: Tools,
    jobs: int,
    name: str,
    meanwhile: Callable[[], object],
) -> None:
    """Restore into the database just created for it; drop it again if the restore fails."""
    try:
        _run_restore(url, backup, tools, (jobs, name, False), meanwhile)
    except RestoreError:
        with connect(url, "restore") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        raise


def restore_argv(
    tool: pgtools.Tool, backup: Path, conninfo: str, jobs: int, clean: bool
) -> list[str]:
    """The pg_restore command line (no password: it travels as PGPASSWORD)."""
    argv = [tool.path, "--exit-on-error", "--no-password", f"--dbname={conninfo}"]
    if clean:
        argv += ["--clean", "--if-exists"]
    argv += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
    return [*argv, str(backup)]


def script_argv(tool: pgtools.Tool, backup: Path, clean: bool) -> list[str]:
    """pg_restore writing the restore as one transaction's SQL script to its standard output."""
    argv = [tool.path, "--file=-", "--single-transaction"]
    if clean:
        argv += ["--clean", "--if-exists"]
    return [*argv, str(backup)]


def psql_argv(psql: pgtools.Tool, conninfo: str) -> list[str]:
    """psql running a script from its standard input, stopping at the first error."""
    return [
        psql.path,
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={conninfo}",
    ]


def in_preamble(line: bytes) -> bool:
    """Whether a line of pg_restore's script belongs to its preamble (before any object)."""
    stripped = line.strip()
    return not stripped or stripped.startswith(_PREAMBLE_STARTS)


def copy_script(source: IO[bytes], target: IO[bytes]) -> int:
    """Copy pg_restore's script to psql, leaving out the preamble's SET transaction_timeout (and
    nothing else: table data is never looked at). Returns the number of lines left out."""
    left_out = 0
    for line in source:
        if line.rstrip(b"\r\n") == UNKNOWN_SETTING_LINE:
            left_out += 1
            continue
        target.write(line)
        if not in_preamble(line):
            break
    shutil.copyfileobj(source, target, 1 << 20)
    return left_out


def _tail(handle: IO[bytes]) -> str:
    handle.seek(0)
    lines = handle.read().decode(errors="replace").strip().splitlines()
    return "; ".join(lines[-5:])


def run_script_restore(
    restore_cmd: list[str], psql_cmd: list[str], env: dict[str, str], meanwhile: Callable[[], T]
) -> T:
    """pg_restore's script piped through ``copy_script`` into psql, MEANWHILE run beside them.

    Fails (ToolFailed) when either program fails; psql's error comes first, as it names the
    statement the server refused. A pg_restore that stops early leaves the transaction without
    its COMMIT, so the server rolls it back when psql disconnects.
    """
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        try:
            runner = subprocess.Popen(
                psql_cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err
            )
        except OSError as exc:
            raise pgtools.ToolNotFound(f"cannot run {psql_cmd[0]}: {exc}") from exc
        try:
            writer = subprocess.Popen(
                restore_cmd, env=env, stdout=subprocess.PIPE, stderr=restore_err
            )
        except OSError as exc:
            runner.kill()
            runner.wait()
            raise pgtools.ToolNotFound(f"cannot run {restore_cmd[0]}: {exc}") from exc
        assert writer.stdout is not None and runner.stdin is not None
        copied: list[BaseException] = []

        def copy() -> None:
            assert writer.stdout is not None and runner.stdin is not None
            try:
                copy_script(writer.stdout, runner.stdin)
            except BrokenPipeError as exc:  # psql stopped first: its own exit code says why
                copied.append(exc)
            finally:
                writer.stdout.close()
                # psql may be gone already; closing its end of the pipe then has nothing to flush
                with contextlib.suppress(BrokenPipeError):
                    runner.stdin.close()

        thread = threading.Thread(target=copy, name="restore-script", daemon=True)
        thread.start()
        try:
            done = meanwhile()
        except BaseException:
            writer.kill()
            runner.kill()
            raise
        finally:
            thread.join()
            writer.wait()
            runner.wait()
        if runner.returncode != 0:
            raise pgtools.ToolFailed(
                f"psql (running pg_restore's script) failed: {_tail(psql_err) or runner.returncode}"
            )
        if writer.returncode != 0 or copied:
            raise pgtools.ToolFailed(
                f"pg_restore failed: {_tail(restore_err) or f'exit code {writer.returncode}'}"
            )
        return done


def _run_restore(
    url: str,
    backup: Path,
    tools: Tools,
    how: tuple[int, str, bool],
    meanwhile: Callable[[], object],
) -> None:
    """pg_restore with HOW = (jobs, target database, clean first), MEANWHILE run beside it;
    through a script run by psql when TOOLS has one."""
    jobs, dbname, clean = how
    tool, psql = tools
    conninfo, env = pgtools.libpq_args(url, dbname=dbname)
    try:
        if psql is not None:
            run_script_restore(
                script_argv(tool, backup, clean), psql_argv(psql, conninfo), env, meanwhile
            )
        else:
            argv = restore_argv(tool, backup, conninfo, jobs, clean)
            pgtools.run_tool_while(argv, env, "pg_restore", meanwhile)
    except pgtools.PgToolError as exc:
        atomic = (
            "nothing was changed (one transaction, rolled back)"
            if jobs == 1
            else (
                "the parallel restore may have been partly applied; run it again or restore with "
                "--jobs 1 for an all-or-nothing restore"
            )
        )
        raise RestoreError(f"{exc}; {atomic}", exit_code=EXIT_FAILED) from exc
