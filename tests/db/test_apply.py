"""Applying migrations to a real PostgreSQL: the worked example, drift, failures, lint gate."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from dbmigrate.api.lint import LintFinding
from dbmigrate.api.plan import ApplyProgress
from dbmigrate.engine import catalog
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.errors import exit_code_for
from dbmigrate.engine.history import read_history
from dbmigrate.engine.planning import plan
from dbmigrate.engine.sources import load_mapping
from tests.db.engine_support import example_set, example_with, fast, index_state, query

EXAMPLE_INDEXES = [
    "idx_users_email_lower",
    "idx_users_email_hash",
    "idx_page_views_timestamp_desc_path",
    "idx_page_views_session_timestamp_desc",
    "idx_visitor_sessions_active_last_activity",
    "idx_visitor_sessions_last_activity_at",
    "idx_system_metrics_recorded_at",
]


def test_example_applies_once_then_nothing(database_url: str) -> None:
    samples: list[ApplyProgress] = []
    first = apply_migrations(database_url, example_set(), fast(), "run-one", samples.append)
    assert first.status == "succeeded", first.error
    assert [(v.version, v.status) for v in first.versions] == [(n, "applied") for n in range(1, 6)]
    assert [v.mode for v in first.versions] == [
        "transaction",
        "autocommit",
        "autocommit",
        "transaction",
        "autocommit",
    ]
    for name in EXAMPLE_INDEXES:
        assert index_state(database_url, name) == (True, True), name
    assert {(s.version, s.statement_index) for s in samples} >= {(5, 1), (5, 5)}

    second = apply_migrations(database_url, example_set(), fast(), "run-two")
    assert second.status == "nothing_to_do"
    assert second.versions == []

    with psycopg.connect(database_url) as conn:
        rows = read_history(conn)
    assert [(r.version, r.status, r.applied_by) for r in rows] == [
        (n, "applied", "run-one") for n in range(1, 6)
    ]
    five = rows[4]
    assert (five.statements_done, five.statements_total) == (5, 5)
    assert [o.name for o in five.created_objects] == EXAMPLE_INDEXES[2:]
    assert all(o.schema_name == "public" for o in five.created_objects)
    assert rows[2].created_objects[0].to_wire() == {
        "kind": "column",
        "schema": "public",
        "name": "email_hash",
        "table": "users",
    }


def test_objects_that_existed_before_are_not_in_the_manifest(database_url: str) -> None:
    query(database_url, "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)")
    result = apply_migrations(database_url, example_set(), fast(), "run")
    assert result.status == "succeeded", result.error
    created = [o.name for o in result.versions[0].created_objects]
    assert "users" not in created
    assert "visitor_sessions" in created


def test_drift_is_refused_naming_the_file_and_both_checksums(database_url: str) -> None:
    assert apply_migrations(database_url, example_set(), fast(), "run").status == "succeeded"
    changed = example_with(
        {"002_add_user_email_index.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS x ON users (id);"}
    )
    recorded = example_set().get(2).checksum  # type: ignore[union-attr]
    current = changed.get(2).checksum  # type: ignore[union-attr]

    planned = plan(database_url, changed)
    [error] = planned.drift_errors
    assert "002_add_user_email_index.sql" in error.message
    assert recorded in error.message and current in error.message

    extended = example_with(
        {
            "002_add_user_email_index.sql": changed.get(2).sql,  # type: ignore[union-attr]
            "006_more.sql": "CREATE TABLE IF NOT EXISTS more (id int);",
        }
    )
    result = apply_migrations(database_url, extended, fast(), "run-2")
    assert result.status == "failed"
    assert result.error_code == "DriftError"
    assert "002_add_user_email_index.sql" in (result.error or "")
    assert query(database_url, "SELECT to_regclass('public.more')") == [(None,)]


def test_plan_hash_binds_the_apply(database_url: str) -> None:
    wrong = apply_migrations(database_url, example_set(), fast(expected_plan_hash="0" * 64), "r")
    assert (wrong.status, wrong.error_code) == ("failed", "PlanChangedError")
    assert query(database_url, "SELECT to_regclass('dbmigrate.schema_migrations')") == [(None,)]
    planned = plan(database_url, example_set())
    right = apply_migrations(
        database_url, example_set(), fast(expected_plan_hash=planned.plan_hash), "r"
    )
    assert right.status == "succeeded"
    assert right.plan_hash == planned.plan_hash


def test_transactional_file_failing_midway_leaves_history_honest(database_url: str) -> None:
    files = {
        "001_base.sql": "CREATE TABLE IF NOT EXISTS base (id int PRIMARY KEY);",
        "002_broken.sql": (
            "CREATE TABLE IF NOT EXISTS half (id int);\n"
            "INSERT INTO half VALUES (1);\n"
            "ALTER TABLE base ADD COLUMN IF NOT EXISTS note text;\n"
            "INSERT INTO missing_table VALUES (1);\n"
        ),
        "003_after.sql": "CREATE TABLE IF NOT EXISTS after_it (id int);",
    }
    result = apply_migrations(database_url, load_mapping(files), fast(), "run")
    assert result.status == "failed"
    assert result.error_code == "42P01"
    assert "002_broken.sql:4" in (result.error or "")
    assert [(v.version, v.status) for v in result.versions] == [(1, "applied"), (2, "failed")]

    # the database is as before 002: nothing of it survived, and 003 never ran
    assert query(database_url, "SELECT to_regclass('public.half')") == [(None,)]
    assert query(
        database_url,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'base'"
        " AND column_name = 'note'",
    ) == [(0,)]
    assert query(database_url, "SELECT to_regclass('public.after_it')") == [(None,)]
    with psycopg.connect(database_url) as conn:
        rows = {r.version: r for r in read_history(conn)}
    assert rows[1].status == "applied"
    assert (rows[2].status, rows[2].statements_done, rows[2].statements_total) == ("failed", 0, 4)
    assert "missing_table" in (rows[2].error or "")
    assert rows[2].created_objects == []
    assert 3 not in rows

    files["002_broken.sql"] = files["002_broken.sql"].replace("missing_table", "half")
    fixed = apply_migrations(database_url, load_mapping(files), fast(), "run-2")
    assert fixed.status == "succeeded", fixed.error
    assert [v.version for v in fixed.versions] == [2, 3]
    assert query(database_url, "SELECT count(*) FROM half") == [(2,)]


def test_autocommit_file_resumes_after_the_last_committed_statement(database_url: str) -> None:
    query(database_url, "CREATE TABLE events (id int, note text)")
    sql = (
        "INSERT INTO events VALUES (1, 'once');\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_id ON events (id);\n"
        "INSERT INTO later VALUES (1);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_note ON events (note);\n"
    )
    files = {"001_events.sql": sql}
    failed = apply_migrations(database_url, load_mapping(files), fast(), "run")
    assert failed.status == "failed"
    [record] = failed.versions
    assert (record.mode, record.status, record.statements_done) == ("autocommit", "failed", 2)
    with psycopg.connect(database_url) as conn:
        [row] = read_history(conn)
    assert (row.status, row.statements_done) == ("failed", 2)
    assert [o.name for o in row.created_objects] == ["events_id"]
    assert plan(database_url, load_mapping(files)).pending[0].resume_from == 2

    query(database_url, "CREATE TABLE later (id int)")
    resumed = apply_migrations(database_url, load_mapping(files), fast(), "run-2")
    assert resumed.status == "succeeded", resumed.error
    assert query(database_url, "SELECT count(*) FROM events") == [(1,)]  # not inserted twice
    with psycopg.connect(database_url) as conn:
        [row] = read_history(conn)
    assert (row.status, row.statements_done, row.applied_by) == ("applied", 4, "run-2")
    assert [o.name for o in row.created_objects] == ["events_id", "events_note"]


def test_unsafe_sql_is_refused_under_strict_before_anything_runs(database_url: str) -> None:
    query(database_url, "CREATE TABLE keep_me (id int)")
    files = {
        "001_fine.sql": "CREATE TABLE IF NOT EXISTS fine (id int);",
        "002_unsafe.sql": "DROP TABLE keep_me;",
    }
    refused = apply_migrations(database_url, load_mapping(files), fast(lint_policy="strict"), "r")
    assert (refused.status, refused.error_code) == ("failed", "LintRefusedError")
    assert "002_unsafe.sql:1" in (refused.error or "")
    assert refused.versions == []
    assert query(database_url, "SELECT to_regclass('public.fine')") == [(None,)]
    assert query(database_url, "SELECT to_regclass('dbmigrate.schema_migrations')") == [(None,)]
    assert query(database_url, "SELECT to_regclass('public.keep_me')") != [(None,)]

    seen: list[LintFinding] = []
    warned = apply_migrations(
        database_url,
        load_mapping(files),
        fast(lint_policy="warn", on_lint_findings=seen.extend),
        "r",
    )
    assert warned.status == "succeeded", warned.error
    assert any(f.file == "002_unsafe.sql" and f.severity == "error" for f in seen)


def test_example_passes_the_strict_linter(database_url: str) -> None:
    result = apply_migrations(database_url, example_set(), fast(lint_policy="strict"), "run")
    assert result.status == "succeeded", result.error


def test_auto_concurrently_rewrites_indexes_on_existing_tables(database_url: str) -> None:
    query(database_url, "CREATE TABLE t (a int)")
    files = {
        "001_idx.sql": "\n".join(
            [
                "CREATE INDEX IF NOT EXISTS t_a ON t (a);",
                "CREATE TABLE IF NOT EXISTS u (b int);",
                "CREATE INDEX IF NOT EXISTS u_b ON u (b);",
            ]
        )
    }
    result = apply_migrations(
        database_url, load_mapping(files), fast(auto_concurrently=True, lint_policy="strict"), "r"
    )
    assert result.status == "succeeded", result.error
    assert result.versions[0].mode == "autocommit"
    assert index_state(database_url, "t_a") == (True, True)
    assert index_state(database_url, "u_b") == (True, True)
    plain = apply_migrations(
        database_url,
        load_mapping({**files, "002_more.sql": "CREATE INDEX IF NOT EXISTS t_a2 ON t (a);"}),
        fast(lint_policy="off"),
        "r2",
    )
    assert plain.versions[0].mode == "transaction"


def test_parse_error_stops_before_anything_runs(database_url: str) -> None:
    files = {
        "001_ok.sql": "CREATE TABLE IF NOT EXISTS ok (id int);",
        "002_bad.sql": "CREATE TABEL x;",
    }
    result = apply_migrations(database_url, load_mapping(files), fast(), "r")
    assert (result.status, result.error_code) == ("failed", "SqlParseError")
    assert "002_bad.sql:1" in (result.error or "")
    assert query(database_url, "SELECT to_regclass('public.ok')") == [(None,)]


def test_manifest_records_every_kind_with_its_schema(database_url: str) -> None:
    sql = "\n".join(
        [
            "CREATE SCHEMA IF NOT EXISTS app;",
            "CREATE TYPE app.mood AS ENUM ('ok', 'meh');",
            "CREATE TABLE IF NOT EXISTS app.t (id int, m app.mood);",
            "CREATE SEQUENCE IF NOT EXISTS t_seq;",
            "CREATE VIEW v AS SELECT 1 AS one;",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT 1 AS one;",
            "ALTER TABLE app.t ADD COLUMN IF NOT EXISTS note text;",
            "CREATE INDEX IF NOT EXISTS t_note ON app.t (note);",
            "ALTER TABLE app.t ADD COLUMN IF NOT EXISTS note text;",  # exists: not recorded twice
        ]
    )
    result = apply_migrations(database_url, load_mapping({"001_all.sql": sql}), fast(), "r")
    assert result.status == "succeeded", result.error
    found = [(o.kind, o.schema_name, o.name, o.table) for o in result.versions[0].created_objects]
    assert found == [
        ("schema", None, "app", None),
        ("type", "app", "mood", None),
        ("table", "app", "t", None),
        ("sequence", "public", "t_seq", None),
        ("view", "public", "v", None),
        ("materialized_view", "public", "mv", None),
        ("column", "app", "note", "t"),
        ("index", "app", "t_note", "t"),
    ]


def test_a_retried_run_still_matches_its_approved_plan(database_url: str) -> None:
    files = {
        "001_a.sql": "CREATE TABLE IF NOT EXISTS a (id int);",
        "002_b.sql": "INSERT INTO not_yet VALUES (1);",
    }
    approved = plan(database_url, load_mapping(files)).plan_hash
    settings = fast(expected_plan_hash=approved)
    first = apply_migrations(database_url, load_mapping(files), settings, "run-7")
    assert [(v.version, v.status) for v in first.versions] == [(1, "applied"), (2, "failed")]
    query(database_url, "CREATE TABLE not_yet (id int)")
    other = apply_migrations(database_url, load_mapping(files), settings, "run-8")
    assert (other.status, other.error_code) == ("failed", "PlanChangedError")
    retry = apply_migrations(database_url, load_mapping(files), settings, "run-7")
    assert retry.status == "succeeded", retry.error
    assert [v.version for v in retry.versions] == [2]


def test_a_role_without_create_privilege_gets_a_clear_failure(database_url: str) -> None:
    parts = urlsplit(database_url)
    role = f"dbm_reader_{parts.path.rsplit('/', 1)[1]}"[:60]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal("pw-reader")
            )
        )
        try:
            netloc = f"{role}:pw-reader@{parts.hostname}:{parts.port}"
            reader = parts._replace(netloc=netloc).geturl()
            result = apply_migrations(reader, example_set(), fast(), "r")
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert (result.status, result.error_code) == ("failed", "42501")
    assert "permission denied" in (result.error or "")
    assert exit_code_for(result.error_code) == 1


def test_each_step_looks_the_catalog_up_once(database_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The look-up after a step also answers the look-up before the next one (the next file's
    first step included): one catalog query per step, plus one before the first."""
    asked: list[int] = []
    real = catalog.lookup

    def counting(conn: psycopg.Connection, objects: list) -> list:
        if objects:
            asked.append(len(objects))
        return real(conn, objects)

    monkeypatch.setattr(catalog, "lookup", counting)
    result = apply_migrations(database_url, example_set(), fast(), "run-count")
    assert result.status == "succeeded", result.error
    steps = sum(1 if v.mode == "transaction" else v.statements_total for v in result.versions)
    assert 0 < len(asked) <= steps + 1
    manifest = [o.name for v in result.versions for o in v.created_objects]
    assert set(EXAMPLE_INDEXES) <= set(manifest)
