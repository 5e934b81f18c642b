"""The history table: created on demand, read back, rolled-back markers, manifests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine import history
from dbmigrate.engine.apply import apply_migrations
from tests.db.engine_support import example_set, fast, query


def _row(version: int, objects: list[CreatedObject], status: str = "applied") -> history.HistoryRow:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return history.HistoryRow(
        version=version,
        name=f"v{version}",
        checksum="c" * 64,
        status=status,
        started_at=start,
        finished_at=start + timedelta(seconds=1.5),
        statements_done=2,
        statements_total=2,
        applied_by="run-a",
        created_objects=objects,
    )


def _index(name: str) -> CreatedObject:
    return CreatedObject(kind="index", schema_name="public", name=name, table="t")


def test_reading_a_fresh_database_creates_nothing(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert history.read_history(conn) == []
        assert history.created_objects(conn, [1]) == []
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'dbmigrate'") == [
        (0,)
    ]


def test_rows_round_trip_and_rollback_markers(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        history.ensure_history(conn)
        history.ensure_history(conn)  # idempotent
        history.upsert_row(conn, _row(1, [_index("a"), _index("b")]))
        history.upsert_row(conn, _row(2, [_index("c")]))
        [one, _two] = history.read_history(conn)
        assert (one.version, one.status, one.duration_seconds) == (1, "applied", 1.5)
        assert one.created_objects == [_index("a"), _index("b")]

        # newest version first, and within a version the reverse of creation order
        assert [o.name for o in history.created_objects(conn, [1, 2])] == ["c", "b", "a"]

        assert history.mark_rolled_back(conn, [2], "run-rb") == 1
        assert history.mark_rolled_back(conn, [2], "run-rb") == 0
        rows = {r.version: r for r in history.read_history(conn)}
        assert (rows[2].status, rows[2].rolled_back_by) == ("rolled_back", "run-rb")
        assert rows[2].rolled_back_at is not None
        assert rows[1].status == "applied"

        history.upsert_row(conn, _row(2, [_index("c")]))  # applied again: the marker is cleared
        again = {r.version: r for r in history.read_history(conn)}[2]
        assert (again.status, again.rolled_back_at, again.rolled_back_by) == ("applied", None, None)

        history.record_progress(conn, 2, 1, [_index("d")])
        progressed = {r.version: r for r in history.read_history(conn)}[2]
        assert (progressed.statements_done, progressed.created_objects) == (1, [_index("d")])


def test_status_values_are_constrained(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        history.ensure_history(conn)
        with pytest.raises(psycopg.errors.CheckViolation):
            history.upsert_row(conn, _row(1, [], status="done"))


def test_rolled_back_versions_are_pending_again(database_url: str) -> None:
    assert apply_migrations(database_url, example_set(), fast(), "first").status == "succeeded"
    with psycopg.connect(database_url, autocommit=True) as conn:
        manifest = history.created_objects(conn, [5])
        assert manifest[0].name == "idx_system_metrics_recorded_at"
        for obj in manifest:
            name = sql.Identifier(obj.schema_name or "public", obj.name)
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(name))
        history.mark_rolled_back(conn, [5], "rb")
    result = apply_migrations(database_url, example_set(), fast(), "again")
    assert [(v.version, v.status) for v in result.versions] == [(5, "applied")]
    assert len(result.versions[0].created_objects) == 5
