"""The plan step's promotion check: did the pending versions already succeed in staging?

``dbmigrate plan --require-applied-in NAME`` (repeatable; the operator passes one per
``spec.promotion.requireAppliedIn``, named after its Secret) connects to the Nth staging database
with env ``DBMIGRATE_STAGING_<N>_URL``, or libpq's variables under that prefix
(``DBMIGRATE_STAGING_<N>_PGHOST``, ``_PGPORT``, ``_PGDATABASE``, ``_PGUSER``, ``_PGPASSWORD``,
``_PGSSLMODE``), which the Job sets from the Secret; by hand, set them yourself. The session is
read-only, and only the history table is read. Each database is judged by
``api.promotion.check_versions``; one that cannot be reached fails its check (the run waits and
checks again) rather than the step: staging being down is no reason to fail production's plan.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
from psycopg.conninfo import make_conninfo

from dbmigrate.api.labels import STAGING_ENV_PREFIX
from dbmigrate.api.plan import PlannedVersion
from dbmigrate.api.promotion import (
    PromotionCheck,
    PromotionEvidence,
    StagedVersion,
    WantedVersion,
    check_versions,
)
from dbmigrate.engine.errors import ConnectionFailedError, ConnectionStringError

PURPOSE = "promotion-check"
LIBPQ_PARTS = (
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGSSLMODE", "sslmode"),
)


def staging_conninfo(number: int) -> str | None:
    """The Nth staging database's connection string from the environment (None if unset)."""
    prefix = f"{STAGING_ENV_PREFIX}{number}_"
    url = os.environ.get(prefix + "URL")
    parts = {
        key: os.environ[prefix + var] for var, key in LIBPQ_PARTS if os.environ.get(prefix + var)
    }
    if url:
        sslmode = parts.get("sslmode")
        return make_conninfo(url, sslmode=sslmode) if sslmode else url
    if "host" not in parts and "dbname" not in parts:
        return None
    return make_conninfo(**parts)


def staged_versions(conninfo: str, run_id: str | None) -> dict[int, StagedVersion]:
    """The staging history table's versions, read in a read-only session."""
    from dbmigrate.engine.connect import connect
    from dbmigrate.engine.history import read_history

    with connect(conninfo, PURPOSE, run_id) as conn:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        rows = read_history(conn)
    return {r.version: StagedVersion(r.version, r.status, r.checksum) for r in rows}


def check_database(
    number: int, name: str, pending: Sequence[PlannedVersion], run_id: str | None
) -> PromotionCheck:
    """The check of one staging database (its problems become a failed check, never an error)."""
    source = f"database {name}"
    wanted = [WantedVersion(p.version, p.checksum) for p in pending]
    conninfo = staging_conninfo(number)
    if conninfo is None:
        prefix = f"{STAGING_ENV_PREFIX}{number}_"
        problem = f"no connection: set {prefix}URL (or {prefix}PGHOST, {prefix}PGDATABASE, ...)"
        return check_versions(source, wanted, {}, problem=problem)
    try:
        staged = staged_versions(conninfo, run_id)
    except (ConnectionFailedError, ConnectionStringError) as exc:
        return check_versions(source, wanted, {}, problem=f"cannot be read: {exc}")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return check_versions(source, wanted, {}, problem=f"its history cannot be read: {reason}")
    return check_versions(source, wanted, staged)


def promotion_evidence(
    names: Sequence[str], pending: Sequence[PlannedVersion], run_id: str | None
) -> PromotionEvidence:
    """Every staging database of ``--require-applied-in``, in order (the Nth is env N)."""
    checks = [
        check_database(number, name, pending, run_id) for number, name in enumerate(names, start=1)
    ]
    return PromotionEvidence(
        passed=all(c.passed for c in checks), checked_at=datetime.now(UTC), checks=checks
    )


def promotion_lines(evidence: PromotionEvidence) -> list[str]:
    """The evidence as lines of the step's summary."""
    head = (
        "promotion: every pending version succeeded in staging"
        if evidence.passed
        else ("promotion: waiting for staging")
    )
    marks = [f"  {'ok  ' if c.passed else 'WAIT'} {c.source}: {c.message}" for c in evidence.checks]
    return [head, *marks]
