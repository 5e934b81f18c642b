"""Finding and running PostgreSQL's client programs (pg_dump, pg_restore) safely.

Backups fail closed on version trouble: a pg_dump older than the server cannot dump it faithfully,
so it is refused before it runs. The password never appears on a command line (where `ps` shows
it): the URL is split into a conninfo without the password, given as ``--dbname``, and the
password, given in the child's environment as PGPASSWORD.

The steps that use these programs are one-shot commands whose start-up cost is added to every
backup and restore, so the ``--version`` probes of all candidates run at once (``start_probes``,
while the caller connects to the server), ``run_tool_while`` lets the caller work while a program
runs, and psycopg is imported only when a URL is split.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_USAGE

TOOL_DIR_ENV = "DBMIGRATE_PG_BIN"
SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
)
DEBIAN_WRAPPER = "/postgresql-common/pg_wrapper"
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
VERSION_TIMEOUT = 30.0
T = TypeVar("T")


class StepError(Exception):
    """A step cannot go on; the message says what is wrong and how to fix it.

    ``exit_code`` is what the ``dbmigrate`` command returns: ``EXIT_USAGE`` for bad input (the
    default), ``EXIT_FAILED`` when the step ran and failed.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class PgToolError(StepError):
    """A PostgreSQL client program is missing, unsuitable or failed."""


class ToolNotFound(PgToolError):
    """No usable binary was found."""


class ToolVersionError(PgToolError):
    """The binary's version cannot work with this server or archive."""


class ToolFailed(PgToolError):
    """The program ran and exited with an error."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class Tool:
    """A client program and its version."""

    path: str
    major: int
    minor: int
    version_text: str

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_tool_version(output: str) -> tuple[int, int]:
    """(major, minor) from ``pg_dump --version`` output such as 'pg_dump (PostgreSQL) 15.8'."""
    match = _VERSION_RE.search(output)
    if not match:
        raise ToolVersionError(f"cannot read a PostgreSQL version from {output.strip()!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def server_major(server_version_num: int) -> int:
    """Major version from server_version_num (150008 -> 15; 90624 -> 9)."""
    return server_version_num // 10000


# The PostgreSQL majors dbmigrate supports: its database tests run against each of them
# (`make test-db-matrix`). Outside the range it still runs, with a warning from preflight.
OLDEST_SUPPORTED_MAJOR = 13
NEWEST_SUPPORTED_MAJOR = 18


def unsupported_server(server_version_num: int) -> str | None:
    """Why a server of this version is outside the supported range, or None when it is in it."""
    major = server_major(server_version_num)
    shown = "9.x" if major < 10 else str(major)
    supported = f"PostgreSQL {OLDEST_SUPPORTED_MAJOR} to {NEWEST_SUPPORTED_MAJOR}"
    if major < OLDEST_SUPPORTED_MAJOR:
        return (
            f"PostgreSQL {shown} is older than the supported {supported} and is not tested: "
            "upgrade the server, or check every step's result by hand"
        )
    if major > NEWEST_SUPPORTED_MAJOR:
        return (
            f"PostgreSQL {shown} is newer than the supported {supported} and is not tested yet: "
            "check every step's result by hand"
        )
    return None


class _VersionProbe:
    """``PATH --version``, started at once and read when needed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.proc: subprocess.Popen[str] | OSError
        try:
            self.proc = subprocess.Popen(
                [path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except OSError as exc:
            self.proc = exc

    def result(self) -> Tool:
        """The tool, or ToolNotFound when it cannot run or fails."""
        if isinstance(self.proc, OSError):
            raise ToolNotFound(f"{self.path} --version failed: {self.proc}") from self.proc
        with self.proc as proc:
            try:
                out, err = proc.communicate(timeout=VERSION_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                raise ToolNotFound(f"{self.path} --version failed: {exc}") from exc
        if proc.returncode != 0:
            raise ToolNotFound(
                f"{self.path} --version failed: exit code {proc.returncode}: {err.strip()}"
            )
        major, minor = parse_tool_version(out)
        return Tool(path=self.path, major=major, minor=minor, version_text=out.strip())

    def discard(self) -> None:
        """Stop the probe if it still runs and reap it (its result is not needed)."""
        if isinstance(self.proc, subprocess.Popen) and self.proc.returncode is None:
            with self.proc as proc:
                proc.kill()
                proc.communicate()


class ToolProbes:
    """The ``--version`` probes of every candidate of some client programs, all running at once.

    Start them before connecting to the server; ``find`` then needs only the server's major
    version, and the probes have finished meanwhile.
    """

    def __init__(self, names: Iterable[str], override_dir: str | None = None) -> None:
        self.override_dir = override_dir
        self._probes = {
            name: [_VersionProbe(path) for path in runnable_candidates(name, override_dir)]
            for name in names
        }
        self._found: dict[str, list[Tool] | PgToolError] = {}

    def __enter__(self) -> ToolProbes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leave no probe running, whether or not ``find`` was called."""
        for probes in self._probes.values():
            for probe in probes:
                probe.discard()

    def _settle(self) -> None:
        """Wait for every probe once, so none is left running whichever is asked for."""
        for name, probes in self._probes.items():
            tools: list[Tool] = []
            for probe in probes:
                try:
                    tools.append(probe.result())
                except PgToolError as exc:
                    self._found.setdefault(name, exc)
            self._found.setdefault(name, tools)

    def _tools(self, name: str) -> list[Tool]:
        if not self._found:
            self._settle()
        found = self._found[name]
        if isinstance(found, PgToolError):
            raise found
        return found

    def find(self, name: str, server_major_version: int) -> Tool:
        """NAME for this server; refuses one older than the server (see ``find_tool``)."""
        tools = self._tools(name)
        if not tools:
            where = (
                self.override_dir
                or os.environ.get(TOOL_DIR_ENV)
                or "PATH and " + ", ".join(SEARCH_GLOBS)
            )
            raise ToolNotFound(
                f"{name} not found in {where}; install the PostgreSQL {server_major_version} "
                f"client programs or point --pg-bin / {TOOL_DIR_ENV} at their folder"
            )
        tool = choose_tool(tools, server_major_version)
        assert tool is not None
        require_not_older(tool, name, server_major_version)
        return tool


def candidate_paths(name: str, override_dir: str | None = None) -> list[str]:
    """Where to look for NAME: an explicit folder, DBMIGRATE_PG_BIN, PATH, the distro folders.

    Debian's ``pg_wrapper`` on PATH (a Perl script that runs one of the versioned binaries) is
    left out when those binaries are found themselves: probing it costs a Perl start and can only
    yield one of them.
    """
    explicit = override_dir or os.environ.get(TOOL_DIR_ENV)
    if explicit:
        return [str(Path(explicit) / name)]
    found: list[str] = []
    for pattern in SEARCH_GLOBS:
        for folder in sorted(glob.glob(pattern)):
            path = str(Path(folder) / name)
            if os.access(path, os.X_OK) and path not in found:
                found.append(path)
    on_path = shutil.which(name)
    if on_path and on_path not in found and not (found and is_version_wrapper(on_path)):
        found.insert(0, on_path)
    return found


def is_version_wrapper(path: str) -> bool:
    """Whether PATH is Debian's postgresql-common wrapper rather than a client program."""
    return os.path.realpath(path).endswith(DEBIAN_WRAPPER)


def runnable_candidates(name: str, override_dir: str | None = None) -> list[str]:
    """The candidate paths of NAME that can be executed."""
    return [p for p in candidate_paths(name, override_dir) if os.access(p, os.X_OK)]


def choose_tool(tools: Sequence[Tool], wanted_major: int) -> Tool | None:
    """The tool of the server's major version, else the newest one (None if there is none)."""
    same = [t for t in tools if t.major == wanted_major]
    if same:
        return same[0]
    return max(tools, key=lambda t: (t.major, t.minor), default=None)


def find_tool(name: str, server_major_version: int, override_dir: str | None = None) -> Tool:
    """Find NAME, refusing one older than the server: it cannot read or dump it faithfully."""
    return ToolProbes((name,), override_dir).find(name, server_major_version)


def require_not_older(tool: Tool, name: str, server_major_version: int) -> None:
    """Refuse a client program whose major version is older than the server's."""
    if tool.major < server_major_version:
        raise ToolVersionError(
            f"{name} {tool.version} ({tool.path}) is older than the server "
            f"(PostgreSQL {server_major_version}); an older {name} cannot handle a newer server "
            f"faithfully. Install the PostgreSQL {server_major_version} client programs (or newer) "
            f"and point --pg-bin / {TOOL_DIR_ENV} at them"
        )


# pg_restore 17 and newer begin every restore with ``SET transaction_timeout = 0`` whatever the
# server's version, and a server older than 17 has no such setting: the restore fails on it before
# it does anything (seen with pg_restore 17.11 and 18.6 into PostgreSQL 13 to 16).
TRANSACTION_TIMEOUT_MAJOR = 17


def restore_sets_unknown_setting(pg_restore: Tool, server_major_version: int) -> bool:
    """Whether this pg_restore, restoring straight into this server, fails on its first SET."""
    return pg_restore.major >= TRANSACTION_TIMEOUT_MAJOR > server_major_version


def libpq_args(url: str, dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and the child environment carrying it as PGPASSWORD."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    if dbname is not None:
        params["dbname"] = dbname
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def run_tool(
    argv: Sequence[str], env: dict[str, str], what: str
) -> subprocess.CompletedProcess[str]:
    """Run a client program; a non-zero exit becomes ToolFailed with its stderr (no secrets)."""
    return run_tool_while(argv, env, what, nothing)[0]


def nothing() -> None:
    """No work to do beside a client program."""


def run_tool_while(
    argv: Sequence[str], env: dict[str, str], what: str, work: Callable[[], T]
) -> tuple[subprocess.CompletedProcess[str], T]:
    """Start a client program, do WORK while it runs, then wait for it (see ``run_tool``).

    If WORK raises, the program is killed and the error propagates; WORK's result is returned
    only when the program succeeded too.
    """
    try:
        proc = subprocess.Popen(
            list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except OSError as exc:
        raise ToolNotFound(f"cannot run {argv[0]}: {exc}") from exc
    with proc:
        try:
            done = work()
        except BaseException:
            proc.kill()
            raise
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        detail = stderr.strip().splitlines()
        tail = "; ".join(detail[-5:]) if detail else f"exit code {proc.returncode}"
        raise ToolFailed(f"{what} failed: {tail}")
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr), done
