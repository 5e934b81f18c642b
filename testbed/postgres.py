"""A throwaway PostgreSQL cluster for tests and the test bed.

Which server runs: env DBMIGRATE_TEST_PG_MAJOR (13 to 18) picks that major's binaries, fetched and
cached by `testbed.pgversions` (env DBMIGRATE_TEST_PG_CLIENT_MAJOR: the client programs of a newer
major); else env DBMIGRATE_PG_BIN names the folder holding initdb and
postgres; else Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin). `use_test_major_client_tools`
points dbmigrate's pg_dump and pg_restore (env DBMIGRATE_PG_BIN) at the chosen major's client
programs.

The cluster lives in a temporary folder, listens on a free port on 127.0.0.1 only, runs with fsync
off (its data is disposable) and has a superuser `postgres` with a random password, checked with
SCRAM on TCP. It preloads pg_stat_statements (`shared_preload_libraries`, as the performance watch
wants a production server to), so a test may CREATE EXTENSION it in its database; `settings` adds
or overrides server settings (such as a small `pg_stat_statements.max`). The machines that run the
tests work as root, and PostgreSQL refuses to run as root, so initdb and the server run as the
`postgres` OS user; a cached server (under root's home, which that user cannot enter) is then hard-
linked (or copied) into the cluster's folder first.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from testbed import pgversions
from testbed.proc import TestbedError, free_port, log_tail, start_process, stop_process, wait_until

DEBIAN_PG_BIN = Path("/usr/lib/postgresql/15/bin")
TOOL_DIR_ENV = "DBMIGRATE_PG_BIN"
OS_USER = "postgres"
SUPERUSER = "postgres"
PRELOAD = "pg_stat_statements"


def test_major() -> int | None:
    """The major version asked for by env DBMIGRATE_TEST_PG_MAJOR, if any (validated)."""
    value = os.environ.get(pgversions.MAJOR_ENV, "").strip()
    return pgversions.release_for(value).major if value else None


def server_bin_dir() -> tuple[Path, bool]:
    """The folder of the server binaries to run, and whether it is a cached (fetched) one."""
    major = test_major()
    if major is not None:
        return pgversions.install(major).server_bin, True
    return Path(os.environ.get(TOOL_DIR_ENV) or DEBIAN_PG_BIN), False


def test_client_bin() -> Path | None:
    """The client programs' folder for DBMIGRATE_TEST_PG_MAJOR: that major's own, or those of the
    newer major named by env DBMIGRATE_TEST_PG_CLIENT_MAJOR (as an image with newer client
    programs than the server has). None without DBMIGRATE_TEST_PG_MAJOR."""
    major = test_major()
    if major is None:
        return None
    value = os.environ.get(pgversions.CLIENT_MAJOR_ENV, "").strip()
    if not value:
        return pgversions.install(major).client_bin
    client = pgversions.release_for(value)
    if client.client_major < major:
        raise TestbedError(
            f"{pgversions.CLIENT_MAJOR_ENV}={value} gives client programs "
            f"{client.client.version}, older than the server (PostgreSQL {major}); dbmigrate "
            "refuses those, so no test could run"
        )
    return pgversions.install(client.major).client_bin


@contextlib.contextmanager
def use_test_major_client_tools() -> Iterator[Path | None]:
    """With DBMIGRATE_TEST_PG_MAJOR set, env DBMIGRATE_PG_BIN names the client programs of
    `test_client_bin` for the block (dbmigrate's pg_dump and pg_restore, in this process and its
    children); yields the folder, or None (and changes nothing) without it."""
    client_bin = test_client_bin()
    if client_bin is None:
        yield None
        return
    before = os.environ.get(TOOL_DIR_ENV)
    os.environ[TOOL_DIR_ENV] = str(client_bin)
    try:
        yield client_bin
    finally:
        if before is None:
            os.environ.pop(TOOL_DIR_ENV, None)
        else:
            os.environ[TOOL_DIR_ENV] = before


def _find_binaries(bin_dir: Path) -> tuple[Path, Path]:
    initdb, postgres = bin_dir / "initdb", bin_dir / "postgres"
    if not (initdb.exists() and postgres.exists()):
        raise TestbedError(
            f"PostgreSQL server binaries not found in {bin_dir}; install Debian's PostgreSQL 15 "
            "with `apt-get install postgresql-15`, set DBMIGRATE_PG_BIN to the folder holding "
            f"initdb and postgres, or set {pgversions.MAJOR_ENV} to one of "
            f"{', '.join(map(str, pgversions.SUPPORTED_MAJORS))} to use fetched binaries"
        )
    return initdb, postgres


def _preload(bin_dir: Path) -> list[str]:
    """The server arguments preloading pg_stat_statements; refuses an installation without it."""
    if not any((bin_dir.parent / lib).rglob(f"{PRELOAD}.so") for lib in ("lib", "lib64")):
        raise TestbedError(
            f"{PRELOAD}.so not found under {bin_dir.parent}; the test PostgreSQL preloads it "
            "(install postgresql-contrib, or point DBMIGRATE_PG_BIN at a full installation)"
        )
    return ["-c", f"shared_preload_libraries={PRELOAD}"]


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link SRC to DST, copying where a link cannot be made (another file system)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _stage_install(bin_dir: Path, root: Path) -> Path:
    """A copy (hard links where possible) of the installation holding BIN_DIR inside ROOT, so
    the OS user the server runs as can reach it; returns its bin folder."""
    staged = root / "install"
    shutil.copytree(bin_dir.parent, staged, symlinks=True, copy_function=_link_or_copy)
    return staged / "bin"


def _run_as_owner() -> str | None:
    """The OS user to run PostgreSQL as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(OS_USER)
    except KeyError as exc:
        raise TestbedError(
            f"running as root but there is no `{OS_USER}` OS user to run PostgreSQL as; "
            "install postgresql-15 (it creates the user) or run as a non-root user"
        ) from exc
    return OS_USER


class PostgresServer:
    """One throwaway PostgreSQL cluster: `start()`, use `admin_url`, then `stop()`.

    `root` (default: a new temporary folder) holds `data/` and `postgres.log`; `stop()` removes it
    when it was created here.
    """

    def __init__(
        self,
        root: Path | None = None,
        max_connections: int = 100,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="dbmigrate-pg-")) if root is None else root
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        """Superuser URL of the `postgres` database (contains the password: never log it)."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        """Superuser URL of database `dbname` on this server."""
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/"
            f"{quote(dbname, safe='')}"
        )

    def start(self, timeout: float = 60.0) -> None:
        """initdb, then start the server and wait until it accepts connections. On failure
        nothing is left behind (process stopped, temporary folder removed)."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        bin_dir, cached = server_bin_dir()
        _find_binaries(bin_dir)
        owner = _run_as_owner()
        self.root.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            shutil.chown(self.root, user=owner, group=owner)
            if cached:
                bin_dir = _stage_install(bin_dir, self.root)
        initdb, postgres = _find_binaries(bin_dir)
        self._initdb(initdb, owner)
        self.port = free_port()
        argv = [
            str(postgres),
            "-D",
            str(self.data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.root}",
            "-c",
            f"max_connections={self.max_connections}",
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
            *("-c", "shared_buffers=32MB", "-c", "logging_collector=off"),
            *_preload(bin_dir),
            *(arg for key, value in self.settings.items() for arg in ("-c", f"{key}={value}")),
        ]
        self.proc = start_process(argv, self.log_path, user=owner, cwd=self.root)
        wait_until(
            self._accepts_connections,
            part="PostgreSQL",
            proc=self.proc,
            log_path=self.log_path,
            timeout=timeout,
        )

    def _initdb(self, initdb: Path, owner: str | None) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if owner is not None:
            shutil.chown(pwfile, user=owner, group=owner)
        pwfile.chmod(0o600)
        argv = [
            str(initdb),
            "-D",
            str(self.data_dir),
            f"--username={SUPERUSER}",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        kwargs: dict[str, object] = {}
        if owner is not None:
            kwargs.update(user=owner, group=owner, extra_groups=[])
        result = subprocess.run(  # type: ignore[call-overload]
            argv, capture_output=True, text=True, cwd=self.root, check=False, **kwargs
        )
        pwfile.unlink()
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise TestbedError(f"PostgreSQL initdb failed (exit {result.returncode}):\n{tail}")

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown of the server (SIGINT), then removes the folder if we created it."""
        if self.proc is not None:
            stop_process(self.proc, first=signal.SIGINT)
            self.proc = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        return log_tail(self.log_path, lines)

    def create_database(self, name: str) -> str:
        """Creates an empty database `name` and returns its superuser URL."""
        return create_database(self.admin_url, name)

    def drop_database(self, name: str) -> None:
        """Drops database `name`, disconnecting any sessions still in it."""
        drop_database(self.admin_url, name)


def create_database(admin_url: str, name: str) -> str:
    """Creates database `name` through the superuser URL `admin_url`; returns the new URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return replace_dbname(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drops database `name` (if it exists) WITH (FORCE)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def replace_dbname(url: str, dbname: str) -> str:
    """The same connection URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "t") -> Iterator[str]:
    """A new empty database with a unique name for the duration of the block; yields its URL and
    drops it WITH (FORCE) afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


@contextlib.contextmanager
def admin_url_from_env_or_server(env_var: str = "DBMIGRATE_TEST_DATABASE_URL") -> Iterator[str]:
    """The superuser URL named by `env_var`, or one of a throwaway server started for the block."""
    url = os.environ.get(env_var)
    if url:
        yield url
        return
    server = PostgresServer()
    server.start()
    try:
        yield server.admin_url
    finally:
        server.stop()
