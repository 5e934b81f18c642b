"""Opening connections to the migrated database, and showing its address without the password.

Every connection the engine opens goes through ``connect`` so it carries an ``application_name``
that names the run (other sessions see who is migrating in pg_stat_activity), asks for
client_encoding UTF8 (on a SQL_ASCII database psycopg would otherwise return every name and text
as bytes), and connection failures become ``ConnectionFailedError`` with the URL redacted. A
string that cannot be parsed (or names a port that is not a number) is refused by
``check_conninfo`` with ``ConnectionStringError`` (bad input, exit 2) before libpq sees it:
libpq's own messages for those quote the whole string, password included.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbmigrate.engine.errors import ConnectionFailedError, ConnectionStringError

APPLICATION_NAME = "dbmigrate"


def redact(conninfo: str) -> str:
    """The connection string with any password replaced by ``***``."""
    if "://" in conninfo:
        parts = urlsplit(conninfo)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = "&".join(
            "password=***" if item.lower().startswith("password=") else item
            for item in parts.query.split("&")
            if item
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparseable connection string>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _bad_ports(params: Mapping[str, object]) -> list[str]:
    ports = str(params.get("port") or "")
    return [
        p for p in ports.split(",") if p.strip() and not (p.strip().isdigit() and int(p) <= 65535)
    ]


def check_conninfo(conninfo: str) -> None:
    """Refuse a URL or libpq string that can never connect, without quoting it."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConnectionStringError(
            "the database URL cannot be parsed: expected postgresql://USER@HOST:PORT/DBNAME "
            "or libpq's 'host=... dbname=...'; check the scheme, the '//' and the quoting of "
            "special characters in the password (percent-encode them in a URL)"
        ) from exc
    if _bad_ports(params):
        raise ConnectionStringError(
            "the database URL's port is not a number; give a port such as 5432 (a password with "
            "special characters must be percent-encoded in a URL, or it is read as the port)"
        )


def database_label(conninfo: str) -> str:
    """A short ``host:port/dbname`` label for results and messages (no user, no password)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return redact(conninfo)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def connection_label(conninfo: str, conn: psycopg.Connection) -> str:
    """``host:port/dbname`` of the URL, or of the connection libpq made from its PG* variables
    (an empty conninfo)."""
    if conninfo:
        return database_label(conninfo)
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


def connect(conninfo: str, purpose: str, run_id: str | None = None) -> psycopg.Connection:
    """An autocommit connection named ``dbmigrate <purpose> <run id>`` in pg_stat_activity."""
    name = " ".join(part for part in (APPLICATION_NAME, purpose, run_id) if part)
    check_conninfo(conninfo)
    try:
        return psycopg.connect(
            conninfo, autocommit=True, application_name=name[:63], client_encoding="UTF8"
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionFailedError(
            f"cannot connect to {redact(conninfo)}: {reason}. Check the URL, that the server "
            "runs and accepts connections from here, and the credentials"
        ) from exc
