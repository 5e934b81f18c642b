"""A dropCreatedObjects rollback brings back the indexes the run dropped, on real PostgreSQL:
the apply records each definition before its DROP INDEX (in the file's transaction, or committed
before a DROP INDEX CONCURRENTLY), the rollback builds them again CONCURRENTLY, valid and with
the same pg_get_indexdef, and a second rollback, or an INVALID leftover of the same name, finds
its way to the same end."""

from __future__ import annotations

import psycopg
import pytest

from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.sources import load_mapping
from dbmigrate.engine.undo import dataloss, dropped_indexes, rollback
from tests.db.engine_support import fast, index_state, query

BASE = """
CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL,
                     n integer NOT NULL);
INSERT INTO events SELECT g, 'k' || (g % 7), now() - g * interval '1 minute', g % 5
FROM generate_series(1, 2000) g;
CREATE INDEX idx_events_kind_at ON events (kind, at DESC) INCLUDE (n) WHERE n > 0;
CREATE UNIQUE INDEX uq_events_at ON events (at);
CREATE INDEX idx_events_lower ON events (lower(kind));
"""
FILES = {
    "001_base.sql": BASE,
    # autocommit: the definition is committed before the drop
    "002_drop_concurrently.sql": """
DROP INDEX CONCURRENTLY IF EXISTS idx_events_kind_at;
DROP INDEX CONCURRENTLY IF EXISTS no_such_index;
CREATE INDEX CONCURRENTLY idx_events_n ON events (n);
CREATE TABLE scratch (id integer);
CREATE INDEX idx_scratch_id ON scratch (id);
""",
    # one transaction: two indexes in one statement, one on a table the run created
    "003_drop_in_transaction.sql": """
DROP INDEX public.uq_events_at, idx_scratch_id;
""",
}
FAILING = {"004_fails.sql": "DROP INDEX idx_events_lower;\nSELECT 1 / 0;\n"}
KEPT = ("idx_events_kind_at", "uq_events_at")


def definitions(url: str) -> dict[str, str]:
    rows = query(
        url,
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " AND tablename = 'events' ORDER BY 1",
    )
    return {str(n): str(d) for n, d in rows}


def test_the_dropped_indexes_come_back_valid_and_as_they_were(database_url: str) -> None:
    first = apply_migrations(database_url, load_mapping(FILES), fast(target=1), "run-base")
    assert first.status == "succeeded", first.error
    before = definitions(database_url)
    run = apply_migrations(database_url, load_mapping({**FILES, **FAILING}), fast(), "run-drops")
    assert run.status == "failed" and "division by zero" in (run.error or "")
    dropped = definitions(database_url)
    assert not set(KEPT) & set(dropped) and "idx_events_lower" in dropped  # 004 rolled back
    with psycopg.connect(database_url, autocommit=True) as conn:
        recorded = dropped_indexes.recorded(conn, [2, 3, 4])
    assert [(r.version, r.name, r.table) for r in recorded] == [
        (2, "idx_events_kind_at", "events"),
        (3, "uq_events_at", "events"),
        (3, "idx_scratch_id", "scratch"),
    ]  # nothing of 004: its record rolled back with its transaction
    assert recorded[0].definition == before["idx_events_kind_at"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        given = dataloss.CheckInput("undo", "DropCreatedObjects", "run-drops")
        plan = dataloss.check(conn, given)
        counted = {c.table for c in dataloss.read_counters(conn)}
    assert "dbmigrate.dropped_indexes" not in counted  # bookkeeping, never data a restore loses
    assert plan.indexes_to_rebuild == ["public.idx_events_kind_at", "public.uq_events_at"]

    # an INVALID leftover of a dropped index's name (an interrupted build) is replaced
    with pytest.raises(psycopg.errors.UniqueViolation):  # the failed build leaves it behind
        query(database_url, "CREATE UNIQUE INDEX CONCURRENTLY idx_events_kind_at ON events (kind)")
    leftover = index_state(database_url, "idx_events_kind_at")
    assert leftover is not None and not leftover[0]

    record = rollback.rollback(database_url, "dropCreatedObjects", "rb-1", versions=[2, 3])
    assert record.verified, record.message
    assert definitions(database_url) == before  # idx_events_n dropped, the two back as they were
    for name in KEPT:
        assert index_state(database_url, name) == (True, True)
    states = {r.name: (r.state, r.valid) for r in record.rebuilt_indexes}
    assert states == {
        "idx_events_kind_at": ("rebuilt", True),
        "uq_events_at": ("rebuilt", True),
        "idx_scratch_id": ("tableGone", False),
    }
    assert "rebuilt 2 index(es) it dropped" in record.message
    assert query(database_url, "SELECT to_regclass('scratch')") == [(None,)]

    again = rollback.rollback(database_url, "dropCreatedObjects", "rb-2", versions=[2, 3])
    assert again.verified, again.message
    assert {r.name: r.state for r in again.rebuilt_indexes}["uq_events_at"] == "present"
    assert definitions(database_url) == before
