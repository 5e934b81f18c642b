"""Each rule fires on the unsafe form and stays quiet on the safe one."""

from __future__ import annotations

import pytest

from dbmigrate.engine.lint import RULES, lint_sql


def rules_of(sql: str, existing: set[str] | None = None) -> set[str]:
    return {f.rule for f in lint_sql(sql, "t.sql", existing)}


FIRES = [
    ("DM005", "DO $$ BEGIN EXECUTE 'DROP TABLE events'; END $$;"),
    ("DM005", "DO LANGUAGE plperl $$ 1; $$;"),
    ("DM101", "DO $$ BEGIN DROP TABLE IF EXISTS events; END $$;"),
    ("DM101", "DROP TABLE IF EXISTS events;"),
    ("DM102", "ALTER TABLE users DROP COLUMN IF EXISTS fax;"),
    ("DM103", "DROP SCHEMA IF EXISTS staging CASCADE;"),
    ("DM104", "TRUNCATE page_views;"),
    ("DM105", "DELETE FROM page_views;"),
    ("DM106", "UPDATE users SET active = true;"),
    ("DM107", "DROP DATABASE IF EXISTS old;"),
    ("DM108", "ALTER TABLE users RENAME COLUMN name TO full_name;"),
    ("DM109", "DROP VIEW IF EXISTS daily;"),
    ("DM201", "CREATE INDEX IF NOT EXISTS i ON page_views (path);"),
    ("DM202", "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (b_id) REFERENCES b (id);"),
    ("DM202", "ALTER TABLE a ADD CONSTRAINT c CHECK (n > 0);"),
    ("DM202", "ALTER TABLE a ADD COLUMN IF NOT EXISTS n int CHECK (n > 0);"),
    ("DM203", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
    ("DM204", "ALTER TABLE users ALTER COLUMN id TYPE bigint;"),
    ("DM205", "ALTER TABLE users ADD COLUMN IF NOT EXISTS k uuid DEFAULT gen_random_uuid();"),
    ("DM205", "ALTER TABLE users ADD COLUMN IF NOT EXISTS r float8 DEFAULT random() * 10;"),
    ("DM205", "ALTER TABLE users ADD COLUMN IF NOT EXISTS s bigserial;"),
    ("DM205", "ALTER TABLE users ADD COLUMN IF NOT EXISTS v int DEFAULT my_func();"),
    ("DM205", "ALTER TABLE t ADD COLUMN IF NOT EXISTS g int GENERATED ALWAYS AS (a * 2) STORED;"),
    ("DM206", "VACUUM (FULL, ANALYZE) page_views;"),
    ("DM207", "CLUSTER page_views USING idx;"),
    ("DM208", "REINDEX INDEX idx;"),
    ("DM209", "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email);"),
    ("DM209", "ALTER TABLE users ADD PRIMARY KEY (id);"),
    ("DM210", "ALTER TABLE v ADD COLUMN IF NOT EXISTS u_id bigint REFERENCES users (id);"),
    ("DM211", "ALTER TABLE users ADD COLUMN IF NOT EXISTS c text NOT NULL;"),
    ("DM212", "DROP INDEX IF EXISTS idx;"),
    ("DM213", "ALTER TABLE p DETACH PARTITION p2019;"),
    ("DM214", "LOCK TABLE users IN ACCESS EXCLUSIVE MODE;"),
    ("DM215", "SET lock_timeout = 0;"),
    ("DM301", "CREATE TABLE t (id bigint);"),
    ("DM301", "CREATE INDEX CONCURRENTLY i ON t (a);"),
    ("DM301", "CREATE INDEX CONCURRENTLY ON t (a);"),
    ("DM301", "ALTER TABLE t ADD COLUMN c int;"),
    ("DM301", "CREATE VIEW v AS SELECT 1;"),
    ("DM301", "CREATE EXTENSION pgcrypto;"),
    ("DM302", "DROP INDEX CONCURRENTLY i;"),
    ("DM302", "ALTER TABLE t DROP CONSTRAINT c;"),
    ("DM401", "BEGIN;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\nCOMMIT;"),
    ("DM401", "DO $$ BEGIN CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a); END $$;"),
    ("DM401", "BEGIN;\nDROP INDEX CONCURRENTLY IF EXISTS i;\nCOMMIT;"),
    ("DM401", "BEGIN;\nREINDEX INDEX CONCURRENTLY i;\nCOMMIT;"),
    ("DM401", "START TRANSACTION;\nVACUUM t;\nCOMMIT;"),
    ("DM402", "BEGIN;\nSELECT 1;\nCOMMIT;"),
    ("DM403", "BEGIN;\nSELECT 1;"),
    ("DM403", "SELECT 1;\nCOMMIT;"),
    ("DM403", "BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 2;"),
    ("DM403", "SELECT 1;\nSAVEPOINT a;"),
    ("DM501", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s (a) WHERE a > now();"),
    ("DM501", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s (a) WHERE a > CURRENT_TIMESTAMP;"),
    ("DM501", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s (a) WHERE a > pg_catalog.now();"),
    ("DM501", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s ((a + random()));"),
    ("DM501", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s (a) WHERE a > 'today'::date;"),
    ("DM601", "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON users (email);"),
]

QUIET = [
    ("DM101", "CREATE TABLE IF NOT EXISTS tmp (id bigint);\nDROP TABLE IF EXISTS tmp;"),
    ("DM105", "DELETE FROM m WHERE recorded_at < now() - interval '90 days';"),
    ("DM106", "UPDATE users SET e = lower(e) WHERE id < 1000;"),
    ("DM201", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON page_views (path);"),
    ("DM201", "CREATE TABLE IF NOT EXISTS n (a int);\nCREATE INDEX IF NOT EXISTS i ON n (a);"),
    (
        "DM201",
        "CREATE TABLE IF NOT EXISTS public.n (a int);\nCREATE INDEX IF NOT EXISTS i ON n (a);",
    ),
    ("DM202", "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES b (id) NOT VALID;"),
    ("DM202", "ALTER TABLE a VALIDATE CONSTRAINT f;"),
    (
        "DM202",
        "CREATE TABLE IF NOT EXISTS a (b int);\nALTER TABLE a ADD CONSTRAINT c CHECK (b > 0);",
    ),
    ("DM205", "ALTER TABLE users ADD COLUMN IF NOT EXISTS at timestamptz DEFAULT now();"),
    ("DM205", "ALTER TABLE users ADD COLUMN IF NOT EXISTS n int NOT NULL DEFAULT 0;"),
    ("DM205", "ALTER TABLE users ADD COLUMN IF NOT EXISTS s text DEFAULT lower('X');"),
    ("DM206", "VACUUM (ANALYZE) page_views;"),
    ("DM206", "VACUUM (FULL false) page_views;"),
    ("DM208", "REINDEX INDEX CONCURRENTLY idx;"),
    ("DM209", "ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX idx_u;"),
    ("DM211", "ALTER TABLE users ADD COLUMN IF NOT EXISTS c text NOT NULL DEFAULT '';"),
    ("DM212", "DROP INDEX CONCURRENTLY IF EXISTS idx;"),
    ("DM213", "ALTER TABLE p DETACH PARTITION p2019 CONCURRENTLY;"),
    ("DM301", "CREATE TABLE IF NOT EXISTS t (id bigint);"),
    ("DM301", "CREATE OR REPLACE VIEW v AS SELECT 1;"),
    ("DM301", "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int;"),
    ("DM302", "DROP INDEX CONCURRENTLY IF EXISTS i;"),
    ("DM401", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"),
    ("DM403", "BEGIN;\nSELECT 1;\nCOMMIT;"),
    ("DM005", "DO $$ BEGIN PERFORM 1; END $$;"),
    ("DM402", "BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 2;"),
    ("DM401", "BEGIN;\nSELECT 1;\nCOMMIT;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"),
    ("DM501", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s (a) WHERE ended_at IS NULL;"),
    ("DM501", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s (lower(e)) WHERE a > '2024-01-01';"),
    ("DM601", "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON users (email);", {"other"}),
]


@pytest.mark.parametrize(("rule", "sql"), FIRES)
def test_rule_fires(rule: str, sql: str) -> None:
    assert rule in rules_of(sql), f"{rule} should fire on: {sql}"


@pytest.mark.parametrize("case", QUIET)
def test_rule_stays_quiet(case: tuple[str, ...] | tuple[str, str, set[str]]) -> None:
    rule, sql = case[0], case[1]
    existing = case[2] if len(case) > 2 and isinstance(case[2], set) else None
    assert rule not in rules_of(sql, existing), f"{rule} should not fire on: {sql}"


def test_every_rule_is_exercised() -> None:
    exercised = {rule for rule, _ in FIRES} | {"DM001", "DM002", "DM003", "DM004", "DM009"}
    assert exercised == set(RULES)


def test_every_finding_carries_message_and_hint() -> None:
    for rule, sql in FIRES:
        for finding in lint_sql(sql, "t.sql"):
            assert finding.message and finding.hint, (rule, finding)
            assert finding.severity == RULES[finding.rule].severity


def test_known_existing_tables_override_the_file() -> None:
    sql = (
        "CREATE TABLE IF NOT EXISTS users (id bigint);\nCREATE INDEX IF NOT EXISTS i ON users (id);"
    )
    assert "DM201" not in rules_of(sql)
    assert "DM201" in rules_of(sql, {"users"})
    assert "DM201" not in rules_of("CREATE INDEX IF NOT EXISTS i ON fresh (id);", {"users"})


def test_unique_index_check_query_is_read_only_and_parses() -> None:
    from pglast import ast, parse_sql

    sql = (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON app.users (tenant, lower(email)) "
        "WHERE deleted_at IS NULL;"
    )
    (finding,) = [f for f in lint_sql(sql, "t.sql") if f.rule == "DM601"]
    assert finding.check_query is not None
    (statement,) = parse_sql(finding.check_query)
    assert isinstance(statement.stmt, ast.SelectStmt)
    assert "FROM app.users" in finding.check_query
    assert "deleted_at IS NULL" in finding.check_query
    assert "lower(email) IS NOT NULL" in finding.check_query
    assert "HAVING count(*) > 1" in finding.check_query
    assert finding.check_query in finding.hint


def test_nulls_not_distinct_checks_null_keys_too() -> None:
    sql = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON t (a) NULLS NOT DISTINCT;"
    (finding,) = [f for f in lint_sql(sql, "t.sql") if f.rule == "DM601"]
    assert finding.check_query is not None
    assert "IS NOT NULL" not in finding.check_query


def test_volatile_default_message_names_the_function() -> None:
    sql = "ALTER TABLE users ADD COLUMN IF NOT EXISTS k uuid DEFAULT gen_random_uuid();"
    (finding,) = [f for f in lint_sql(sql, "t.sql") if f.rule == "DM205"]
    assert "gen_random_uuid()" in finding.message
    assert finding.column == sql.index("gen_random_uuid") + 1
