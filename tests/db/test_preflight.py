"""The preflight step on real PostgreSQL: privileges, sizes, estimates against real builds,
blockers, UNIQUE duplicates and HOT updates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dbmigrate.engine import preflight
from dbmigrate.engine.indexdefs import deparse, index_defs
from dbmigrate.engine.sources import Migration, load_directory
from tests.db.data import MIGRATIONS, load_sample_data, migrate, run_cli

# Stated bounds of the estimates (see dbmigrate.engine.estimates): the size comes from the same
# index built on a sample and is within 25 %; the build time within a factor of 3 either way.
SIZE_FACTOR = 1.25
TIME_FACTOR = 3.0


def _pending() -> list[Migration]:
    return list(load_directory(MIGRATIONS))[4:]


def _ready(url: str, views: int = 5000) -> None:
    migrate(url, MIGRATIONS, 4)
    with psycopg.connect(url, autocommit=True) as conn:
        load_sample_data(conn, users=200, sessions=max(views // 10, 100), views=views)


def _run(url: str, pending: list[Migration], **kw: object) -> preflight.PreflightResult:
    with psycopg.connect(url, autocommit=True) as conn:
        return preflight.run_preflight(conn, pending, preflight.PreflightOptions(**kw))  # type: ignore[arg-type]


def _check(result: preflight.PreflightResult, name: str) -> preflight.Check:
    return next(c for c in result.checks if c.name == name)


def test_estimates_match_a_real_build(database_url: str) -> None:
    _ready(database_url, views=100_000)
    result = _run(database_url, _pending())
    assert result.passed
    est = {i.name: i for i in result.new_indexes}["idx_page_views_timestamp_desc_path"]
    assert est.estimated_rows == pytest.approx(100_000, rel=0.1)
    assert "sample" in est.estimate_basis
    statement = next(
        deparse(i.statement) for i in index_defs(_pending()[0].sql) if i.name == est.name
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        started = time.monotonic()
        conn.execute(sql.SQL(statement))
        took = time.monotonic() - started
        size = conn.execute("SELECT pg_relation_size(%s::regclass)", (est.name,)).fetchone()
    assert size is not None
    assert 1 / SIZE_FACTOR <= est.estimated_size_bytes / size[0] <= SIZE_FACTOR
    assert 1 / TIME_FACTOR <= est.estimated_build_seconds / took <= TIME_FACTOR
    formula = _run(database_url, _pending(), sample_builds=False)
    fest = {i.name: i for i in formula.new_indexes}[est.name]
    assert "default rate" in fest.estimate_basis
    assert 0.5 <= fest.estimated_size_bytes / size[0] <= 2.0


def test_the_server_version_is_in_the_supported_range(database_url: str, pg_major: int) -> None:
    _ready(database_url, views=100)
    check = _check(_run(database_url, _pending(), sample_builds=False), "server-version")
    assert check.status == "ok" and check.message.startswith(f"PostgreSQL {pg_major}.")


def test_sizes_rows_and_large_tables(database_url: str) -> None:
    _ready(database_url)
    result = _run(database_url, _pending(), large_table_rows=2000)
    tables = {t.name: t for t in result.tables}
    assert set(tables) == {"page_views", "visitor_sessions", "system_metrics"}
    assert tables["page_views"].estimated_rows == 5000 and tables["page_views"].large
    assert not tables["visitor_sessions"].large and tables["page_views"].size_bytes > 0
    assert result.touches_large_tables and result.database_size_bytes > 0
    check = _check(result, "large-tables")
    assert check.status == "warn" and "maintenance window" in check.message
    assert _check(_run(database_url, _pending()), "large-tables").status == "ok"


@pytest.fixture
def other_role(database_url: str) -> Iterator[str]:
    """A login role that owns nothing: the URL to connect as it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute('DROP ROLE IF EXISTS "app reader"')
        conn.execute("CREATE ROLE \"app reader\" LOGIN PASSWORD 'reader-pw'")
    yield make_conninfo(database_url, user="app reader", password="reader-pw")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute('DROP OWNED BY "app reader"')
        conn.execute('DROP ROLE "app reader"')


def test_privileges_fail_for_a_role_that_owns_nothing(database_url: str, other_role: str) -> None:
    _ready(database_url)
    result = _run(other_role, _pending(), sample_builds=False)
    check = _check(result, "privileges")
    assert not result.passed and check.status == "fail"
    assert "does not own public.page_views" in check.message
    new_table = Migration(6, "t", "006_t.sql", "CREATE TABLE IF NOT EXISTS fresh (id int);")
    with psycopg.connect(database_url, autocommit=True) as conn:
        # PostgreSQL 15 stopped granting CREATE on schema public to PUBLIC; revoked here, the
        # check is the same on every major.
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    check = _check(_run(other_role, [new_table]), "privileges")
    assert check.status == "fail" and "may not create tables in schema public" in check.message
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute('GRANT CREATE ON SCHEMA public TO "app reader"')
    assert _check(_run(other_role, [new_table]), "privileges").status == "ok"


def test_idle_transaction_is_reported_as_blocker(database_url: str) -> None:
    _ready(database_url)
    with psycopg.connect(database_url, application_name="report-job") as idle:
        idle.execute("SELECT count(*) FROM page_views")  # the transaction stays open, idle
        result = _run(database_url, _pending(), sample_builds=False)
        pid = idle.info.backend_pid
    check = _check(result, "long-transactions")
    assert check.status == "warn" and str(pid) in check.message
    assert "waiting for old snapshots" in check.message
    blocker = next(b for b in result.blockers if b.pid == pid)
    assert blocker.application_name == "report-job"
    assert blocker.state == "idle in transaction"
    assert _check(_run(database_url, _pending()), "long-transactions").status == "ok"


def test_unique_duplicates_found_and_bounded(database_url: str) -> None:
    _ready(database_url)
    dup = Migration(
        6, "u", "006_u.sql",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_pv_path_u ON page_views (path);",
    )  # fmt: skip
    unique = Migration(
        7, "v", "007_v.sql",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_pv_sess_ts_u"
        " ON page_views (session_id, timestamp) WHERE status_code = 200;",
    )  # fmt: skip
    result = _run(database_url, [dup, unique], sample_builds=False)
    found = {i.name: i for i in result.new_indexes}
    assert found["idx_pv_path_u"].unique_duplicates_found is True
    assert found["idx_pv_sess_ts_u"].unique_duplicates_found is False
    failed = _check(result, "unique-duplicates:idx_pv_path_u")
    assert failed.status == "fail" and "remove the duplicates" in failed.message
    assert not result.passed
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO page_views (path) SELECT 'x' FROM generate_series(1, 200000)")
    bounded = _run(database_url, [dup], sample_builds=False, duplicate_check_timeout_ms=1)
    assert bounded.new_indexes[0].unique_duplicates_found is None
    assert _check(bounded, "unique-duplicates:idx_pv_path_u").status == "warn"


HEARTBEAT = """
CREATE TABLE heartbeats (id int PRIMARY KEY, last_seen timestamptz NOT NULL, active boolean)
    WITH (fillfactor = 50);
INSERT INTO heartbeats SELECT g, now(), true FROM generate_series(1, 100) g;
"""


def _hot_counts(conn: psycopg.Connection, updates: int) -> tuple[int, int]:
    """(n_tup_upd, n_tup_hot_upd) of heartbeats, once the statistics count UPDATES updates.

    PostgreSQL 15 and newer flush a session's counts on request. Before 15 a session sends them
    to the statistics collector when idle between statements, at most every 500 ms, and readers
    see the collector's file: the counts are polled until they are all there.
    """
    deadline = time.monotonic() + 15
    while True:
        if conn.info.server_version >= 150000:
            conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'heartbeats'"
        ).fetchone()
        assert row is not None
        if row[0] >= updates or time.monotonic() > deadline:
            return int(row[0]), int(row[1])
        time.sleep(0.1)


def _beat(conn: psycopg.Connection, times: int, done: int) -> tuple[int, int]:
    """Run TIMES updates of one row after DONE earlier ones; the (updates, HOT ones) counted."""
    before = _hot_counts(conn, done)
    for _ in range(times):
        conn.execute("UPDATE heartbeats SET last_seen = now() WHERE id = 7")
    after = _hot_counts(conn, done + times)
    return after[0] - before[0], after[1] - before[1]


def test_partial_index_on_heartbeat_ends_hot_updates(database_url: str) -> None:
    index = Migration(
        2, "hb", "002_hb.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_hb_seen ON heartbeats (last_seen)"
        " WHERE active;",
    )  # fmt: skip
    harmless = Migration(
        3, "hb2", "003_hb2.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_hb_id ON heartbeats (id);",
    )  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in HEARTBEAT.split(";")[:-1]:
            conn.execute(sql.SQL(statement))
        updates, hot = _beat(conn, 200, 0)
        assert updates == 200 and hot >= 190  # nearly all HOT before the index
        result = _run(database_url, [index, harmless], sample_builds=False)
        est = {i.name: i for i in result.new_indexes}
        assert est["idx_hb_seen"].ends_hot_updates is True
        assert est["idx_hb_seen"].newly_indexed_columns == ["active", "last_seen"]
        assert est["idx_hb_id"].ends_hot_updates is False
        check = _check(result, "hot-updates:idx_hb_seen")
        assert check.status == "warn" and "non-HOT" in check.message
        assert result.tables[0].hot_update_percent and result.tables[0].hot_update_percent > 90
        conn.execute("CREATE INDEX idx_hb_seen ON heartbeats (last_seen) WHERE active")
        updates, hot = _beat(conn, 200, 200)
    assert updates == 200 and hot == 0  # the prediction, observed: 100 % HOT became 0 %


def test_cli_preflight_json(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _ready(database_url)
    argv = ["preflight", "--database-url", database_url, "--migrations", MIGRATIONS]
    assert run_cli([*argv, "--output", "json", "--no-sample-builds"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["pendingVersions"] == ["5"]
    assert len(data["newIndexes"]) == 5 and data["largeTableRows"] == 1_000_000
    assert run_cli([*argv, "--probe", "p=idx_page_views_user_id:SELECT 1"]) == 0
    assert "preflight PASSED" in capsys.readouterr().out
