"""Reading CREATE INDEX statements and touched tables from the parse tree."""

from __future__ import annotations

from pathlib import Path

from dbmigrate.engine import indexdefs

MIGRATIONS = Path(__file__).resolve().parents[2] / "database" / "migrations"


def test_indexes_of_005() -> None:
    found = indexdefs.index_defs((MIGRATIONS / "005_add_performance_indexes.sql").read_text(), 5)
    by_name = {i.name: i for i in found}
    assert len(found) == 5 and all(i.concurrent and i.version == 5 for i in found)
    first = by_name["idx_page_views_timestamp_desc_path"]
    assert first.table == "page_views" and first.key_columns == ("timestamp", "path")
    partial = by_name["idx_visitor_sessions_active_last_activity"]
    assert partial.partial and partial.predicate_sql == "ended_at IS NULL"
    assert partial.referenced_columns == ("last_activity_at", "ended_at")


def test_expressions_includes_and_unique() -> None:
    (idx,) = indexdefs.index_defs(
        'CREATE UNIQUE INDEX "i ü" ON "s x"."t" USING btree (lower(email), "Id" DESC)'
        " INCLUDE (z) WHERE deleted_at IS NULL AND kind IN ('a', 'b')"
    )
    assert idx.unique and idx.schema == "s x" and idx.name == "i ü"
    assert idx.key_columns == ("Id",) and idx.key_sql == ("lower(email)", "Id")
    assert not idx.simple_keys and idx.include_columns == ("z",)
    assert idx.referenced_columns == ("email", "Id", "z", "deleted_at", "kind")


def test_retargeted_index_sql_quotes_hostile_names() -> None:
    (idx,) = indexdefs.index_defs(
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "a ""b""" ON "s"."t" (x) WHERE y > 0'
    )
    text = indexdefs.index_sql_on(idx, "pg_temp", 'sample "t"')
    assert "CONCURRENTLY" not in text and "IF NOT EXISTS" not in text
    assert 'pg_temp."sample ""t"""' in text and '"a ""b"""' in text
    assert idx.statement.concurrent  # the original statement is untouched


def test_comparable_definition_ignores_names_only() -> None:
    a = indexdefs.comparable_definition(
        'CREATE INDEX idx_a ON public.page_views USING btree ("timestamp" DESC, path)'
    )
    b = indexdefs.comparable_definition(
        'CREATE INDEX other ON pg_temp_3.sample USING btree ("timestamp" DESC, path)'
    )
    c = indexdefs.comparable_definition(
        'CREATE INDEX idx_a ON public.page_views USING btree ("timestamp", path)'
    )
    assert a == b and a != c


def test_touched_tables_and_schemas() -> None:
    texts = [
        "CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE app.t (id int);",
        "ALTER TABLE users ADD COLUMN x int; CREATE INDEX ON page_views (path);"
        " CREATE INDEX i2 ON page_views (id); SELECT 1;",
    ]
    refs = indexdefs.touched_tables(texts)
    assert [(r.schema, r.name, r.created) for r in refs] == [
        ("app", "t", True),
        (None, "users", False),
        (None, "page_views", False),
    ]
    assert indexdefs.created_schemas(texts) == ["app"]


def test_dropped_indexes() -> None:
    (stmt,) = indexdefs.statements('DROP INDEX CONCURRENTLY IF EXISTS s."a b"')
    assert indexdefs.dropped_indexes(stmt) == ["a b"]
    (other,) = indexdefs.statements("DROP TABLE t")
    assert indexdefs.dropped_indexes(other) == []
