"""The catalog look-up that builds the manifest and checks indexes: many kinds in one query."""

from __future__ import annotations

import psycopg

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine import catalog

ODD = '"Odd ""Name"""'  # the table name Odd "Name", quoted
SETUP = [
    "CREATE SCHEMA app",
    f'CREATE TABLE app.{ODD} (id int, "Mixed Col" text)',
    "CREATE TABLE plain (id int, note text)",
    "CREATE INDEX plain_note ON plain (note)",
    "CREATE VIEW plain_view AS SELECT id FROM plain",
    "CREATE SEQUENCE app.counter",
    "CREATE TYPE app.mood AS ENUM ('ok')",
    f'CREATE INDEX "odd idx" ON app.{ODD} (id)',
    "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'app.\"odd idx\"'::regclass",
]


def _obj(
    kind: str, name: str, schema: str | None = None, table: str | None = None
) -> CreatedObject:
    return CreatedObject(kind=kind, schema_name=schema, name=name, table=table)


def test_one_lookup_answers_for_every_kind(database_url: str) -> None:
    objects = [
        _obj("schema", "app"),
        _obj("schema", "nope"),
        _obj("table", 'Odd "Name"', "app"),
        _obj("table", "plain"),  # unqualified: resolved through the search_path
        _obj("table", "missing"),
        _obj("column", "Mixed Col", "app", 'Odd "Name"'),
        _obj("column", "absent", None, "plain"),
        _obj("column", "id", None, "no_such_table"),
        _obj("index", "plain_note", None, "plain"),
        _obj("index", "odd idx", "app", 'Odd "Name"'),
        _obj("index", "never_built", None, "plain"),
        _obj("view", "plain_view"),
        _obj("sequence", "counter", "app"),
        _obj("type", "mood", "app"),
        _obj("type", "mood"),  # not on the search_path
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in SETUP:
            conn.execute(statement)
        found = catalog.lookup(conn, objects)
        assert catalog.lookup(conn, []) == []
    assert [f.obj.name for f in found] == [o.name for o in objects]  # same order
    assert [f.present for f in found] == [
        True, False, True, True, False, True, False, False, True, True, False, True, True, True,
        False,
    ]  # fmt: skip
    schemas = {(f.obj.kind, f.obj.name): f.obj.schema_name for f in found if f.present}
    assert schemas[("table", "plain")] == "public"
    assert schemas[("index", "plain_note")] == "public"
    assert schemas[("view", "plain_view")] == "public"
    assert schemas[("column", "Mixed Col")] == "app"
    valid = {f.obj.name: f.valid for f in found if f.obj.kind == "index"}
    assert valid == {"plain_note": True, "odd idx": False, "never_built": None}
    assert [o.name for o in catalog.invalid(found)] == ["odd idx"]


def test_only_the_kinds_asked_for_are_queried() -> None:
    query = catalog._lookup_query(["column", "column"])
    assert "pg_attribute" in query
    assert "pg_index" not in query and "to_regtype" not in query
    assert catalog._lookup_query(["view"]) == catalog._lookup_query(["table", "sequence"])
