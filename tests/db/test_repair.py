"""The remedies verify prints work when followed to the letter, and repair rebuilds indexes.

An applied version's index dropped by hand, or left INVALID, makes verify fail; apply has nothing
to do (the version is recorded). Verify's messages name the remedy: valid SQL with quoted
identifiers (run here exactly as printed) and ``dbmigrate repair``, after which verify passes.
"""

from __future__ import annotations

import re

import psycopg
import pytest

from dbmigrate.cli.main import main
from dbmigrate.engine.after import verify
from dbmigrate.engine.sources import load_directory
from tests.db.data import MIGRATIONS, migrate

DROPPED = "idx_page_views_timestamp_desc_path"
INVALID = "idx_users_email_hash"


def _verify(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        result = verify.verify(conn, list(load_directory(MIGRATIONS)), analyze=False)
    return {i.name: i.message for i in result.indexes if not i.passed}


def _break_two_indexes(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {DROPPED}")
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (INVALID,)
        )


def _printed_command(message: str) -> list[str]:
    command = re.search(r"`(dbmigrate [^`]+)`", message)
    assert command, message
    return command.group(1).replace("DIR", MIGRATIONS).split()[1:]


def test_following_the_printed_remedies_makes_verify_pass(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(database_url, MIGRATIONS)
    _break_two_indexes(database_url)
    failing = _verify(database_url)
    assert set(failing) == {DROPPED, INVALID}

    drop = re.search(r"runs (DROP INDEX CONCURRENTLY [^;]+);", failing[INVALID])
    assert drop, failing[INVALID]
    assert drop.group(1) == f'DROP INDEX CONCURRENTLY IF EXISTS "public"."{INVALID}"'
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(drop.group(1))  # the printed SQL is valid as printed

    for name in (DROPPED, INVALID):
        argv = [*_printed_command(failing[name]), "--database-url", database_url]
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"rebuilt index public.{DROPPED}" in out or "nothing to repair" in out
    assert _verify(database_url) == {}


def test_repair_rebuilds_an_invalid_index_without_help(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(database_url, MIGRATIONS)
    _break_two_indexes(database_url)
    argv = ["repair", "--migrations", MIGRATIONS, "--database-url", database_url]
    assert main([*argv, "--output", "json"]) == 0
    assert capsys.readouterr().out.count("public.idx_") == 2
    assert _verify(database_url) == {}
    assert main(argv) == 0
    assert "nothing to repair" in capsys.readouterr().out
