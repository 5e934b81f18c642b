"""One migration run per database at a time: a session-level advisory lock with a bounded wait.

The lock lives on the apply's own session, so it goes away with that session if the process dies.
A second run polls for it up to a bound, then fails with who holds it (pid, application_name,
since when) and how to break it, instead of queueing forever or running alongside.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from dbmigrate.engine.errors import LockHeldError

# A fixed 64-bit key derived from the tool's name; advisory locks are scoped to the database.
LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"dbmigrate.schema_migrations").digest()[:8], "big", signed=True
)
_CLASSID = (LOCK_KEY >> 32) & 0xFFFFFFFF
_OBJID = LOCK_KEY & 0xFFFFFFFF

_HOLDER_QUERY = """
SELECT a.pid, a.application_name, a.backend_start, a.state, host(a.client_addr) AS client,
       left(a.query, 200) AS query
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = %s AND l.objid::bigint = %s
"""


def try_lock(conn: psycopg.Connection) -> bool:
    """Take the lock if free; True when this session holds it now."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection) -> None:
    """Release the lock held by this session (a no-op warning if it does not hold it)."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _since(value: object) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else "unknown"


def describe_holder(conn: psycopg.Connection, waited: float) -> str:
    """A message naming the session that holds the lock and how to break it."""
    with conn.cursor(row_factory=dict_row) as cur:
        holder = cur.execute(_HOLDER_QUERY, (_CLASSID, _OBJID)).fetchone()
    if holder is None:
        return (
            f"the migration lock was busy for {waited:.0f} s but its holder has just released it; "
            "run again"
        )
    pid = holder["pid"]
    return (
        f"another migration run holds the database's migration lock: pid {pid}, "
        f"application_name {holder['application_name']!r}, connected since "
        f"{_since(holder['backend_start'])} from {holder['client'] or 'a local socket'}, state "
        f"{holder['state']}, last query {holder['query']!r}. Waited {waited:.0f} s. If that run "
        f"is dead or stuck, check it first (SELECT * FROM pg_stat_activity WHERE pid = {pid}), "
        f"then break the lock with SELECT pg_terminate_backend({pid}); its history row tells how "
        "far it got and a rerun resumes"
    )


def acquire(conn: psycopg.Connection, wait_seconds: float, poll_seconds: float = 0.5) -> None:
    """Take the lock, polling up to ``wait_seconds``; raise LockHeldError naming the holder."""
    started = time.monotonic()
    while not try_lock(conn):
        waited = time.monotonic() - started
        if waited >= wait_seconds:
            raise LockHeldError(describe_holder(conn, waited))
        time.sleep(min(poll_seconds, max(wait_seconds - waited, 0.01)))


@contextmanager
def migration_lock(conn: psycopg.Connection, wait_seconds: float) -> Iterator[None]:
    """Hold the migration lock for the duration of the block."""
    acquire(conn, wait_seconds)
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            unlock(conn)
