"""Statements found by the real parser: autocommit detection, positions, manifests, rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbmigrate.engine.statements import (
    SqlParseError,
    TransactionControlError,
    created_objects_of,
    executable_statements,
    rewrite_concurrently,
    split_statements,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("sql", "autocommit"),
    [
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", True),
        ("CREATE INDEX IF NOT EXISTS i ON t (a)", False),
        ("DROP INDEX CONCURRENTLY IF EXISTS i", True),
        ("DROP INDEX IF EXISTS i", False),
        ("REINDEX INDEX CONCURRENTLY i", True),
        ("REINDEX (CONCURRENTLY) TABLE t", True),
        ("REINDEX TABLE t", False),
        ("ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh'", True),
        ("ALTER TYPE mood RENAME VALUE 'a' TO 'b'", False),
        ("VACUUM (ANALYZE) t", True),
        ("ANALYZE t", False),
        ("CREATE DATABASE other", True),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", True),
        ("ALTER TABLE p DETACH PARTITION c", False),
        ("CLUSTER", True),
        ("CLUSTER t USING i", False),
        ("ALTER SYSTEM SET work_mem = '8MB'", True),
    ],
)
def test_autocommit_detection(sql: str, autocommit: bool) -> None:
    [statement] = split_statements(sql + ";")
    assert statement.needs_autocommit is autocommit


def test_text_and_lines_survive_comments_and_unicode() -> None:
    sql = "-- café\nCREATE TABLE IF NOT EXISTS a (id int); -- é\n\n/* ü */ SELECT 'x;y';\n"
    first, second = split_statements(sql)
    assert first.text == "CREATE TABLE IF NOT EXISTS a (id int)"
    assert first.line == 2
    assert second.text == "SELECT 'x;y'"
    assert second.line == 4


def test_dollar_quoted_bodies_are_one_statement() -> None:
    sql = "DO $$ BEGIN PERFORM 1; PERFORM 2; END $$;\nSELECT 1;"
    assert [s.kind for s in split_statements(sql)] == ["DoStmt", "SelectStmt"]


def test_parse_error_has_file_line_and_column() -> None:
    with pytest.raises(SqlParseError) as info:
        split_statements("SELECT 1;\n\n  SELEC 2;", "007_x.sql")
    assert (info.value.line, info.value.column) == (3, 3)
    assert str(info.value).startswith("007_x.sql:3:3:")


def test_psql_meta_commands_are_parse_errors() -> None:
    with pytest.raises(SqlParseError, match="meta-commands"):
        split_statements("\\i other.sql\n", "001_a.sql")


def test_begin_commit_wrapper_is_dropped() -> None:
    statements = executable_statements("BEGIN;\nCREATE TABLE IF NOT EXISTS a (id int);\nCOMMIT;\n")
    assert [s.kind for s in statements] == ["CreateStmt"]


def test_concurrently_inside_a_wrapper_is_refused() -> None:
    with pytest.raises(TransactionControlError, match=r"BEGIN \.\.\. COMMIT"):
        executable_statements("BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;")


def test_stray_transaction_control_is_refused() -> None:
    with pytest.raises(TransactionControlError, match="managed by dbmigrate"):
        executable_statements("CREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);")


def test_created_objects_of_every_kind() -> None:
    sql = """
    CREATE SCHEMA IF NOT EXISTS app;
    CREATE TABLE IF NOT EXISTS app.t (id int);
    CREATE TEMP TABLE scratch (id int);
    CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON app.t (id);
    CREATE INDEX ON app.t (id);
    CREATE VIEW v AS SELECT 1;
    CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT 1;
    CREATE SEQUENCE IF NOT EXISTS s;
    CREATE TYPE app.mood AS ENUM ('a');
    ALTER TABLE app.t ADD COLUMN IF NOT EXISTS c int, ADD COLUMN d int;
    """
    found = [(o.kind, o.schema_name, o.name, o.table) for o in created_objects_of(sql)]
    assert found == [
        ("schema", None, "app", None),
        ("table", "app", "t", None),
        ("index", "app", "t_id", "t"),
        ("view", None, "v", None),
        ("materialized_view", None, "mv", None),
        ("sequence", None, "s", None),
        ("type", "app", "mood", None),
        ("column", "app", "c", "t"),
        ("column", "app", "d", "t"),
    ]


def test_manifest_wire_form_uses_schema_key() -> None:
    [obj] = created_objects_of("CREATE INDEX IF NOT EXISTS i ON s.t (a);")
    assert obj.to_wire() == {"kind": "index", "schema": "s", "name": "i", "table": "t"}


def test_rewrite_concurrently_on_existing_tables_only() -> None:
    plain, new_table, already = split_statements(
        "CREATE UNIQUE INDEX IF NOT EXISTS i ON s.t USING btree (lower(email)) WHERE a > 1;"
        "CREATE INDEX j ON fresh (a);"
        "CREATE INDEX CONCURRENTLY k ON s.t (a);"
    )
    rewritten = rewrite_concurrently(plain, {"s.t"})
    assert rewritten.needs_autocommit
    assert rewritten.text.startswith("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t")
    assert "WHERE a > 1" in rewritten.text
    [reparsed] = split_statements(rewritten.text)
    assert reparsed.needs_autocommit
    assert plain.needs_autocommit is False  # the original statement is untouched
    assert rewrite_concurrently(new_table, {"s.t"}) is new_table
    assert rewrite_concurrently(already, {"s.t"}) is already
    assert rewrite_concurrently(plain, {"t"}) is plain  # qualified name must match qualified


def test_worked_example_modes() -> None:
    folder = REPO / "database" / "migrations"
    modes = {}
    for path in sorted(folder.glob("*.sql")):
        statements = executable_statements(path.read_text(), path.name)
        modes[path.name[:3]] = any(s.needs_autocommit for s in statements)
    assert modes == {"001": False, "002": True, "003": True, "004": False, "005": True}


def test_worked_example_never_indexes_existing_tables_without_concurrently() -> None:
    folder = REPO / "database" / "migrations"
    for path in sorted(folder.glob("*.sql"))[1:]:
        for statement in split_statements(path.read_text(), path.name):
            if statement.kind == "IndexStmt":
                assert statement.needs_autocommit, f"{path.name}:{statement.line}"
