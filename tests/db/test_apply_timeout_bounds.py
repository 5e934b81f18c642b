"""The run's lock and statement timeouts bound every statement, whatever the file SETs.

A file that starts with pg_dump's header (``SET statement_timeout = 0; SET lock_timeout = 0;``)
and then alters a table another session reads must not queue forever behind that session (and
make every writer queue behind it): ``dbmigrate apply --lock-timeout 2s`` gives up within the bound
and exits 3. A file may still lower the timeouts for its own statements.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dbmigrate.cli.main import main
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.sources import load_mapping
from tests.db.engine_support import fast, open_transaction, query

PG_DUMP_HEADER = """SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
"""
# A blocker left alone longer than this ends anyway, so a run that ignores its bound finishes
# (and fails the timing assertion) instead of hanging the test suite.
BLOCKER_SECONDS = 25.0


def _write(folder: Path, files: dict[str, str]) -> str:
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return str(folder)


@pytest.mark.parametrize("mode", ["transaction", "autocommit"])
def test_a_file_disabling_lock_timeout_still_gives_up_within_the_bound(
    database_url: str, tmp_path: Path, mode: str
) -> None:
    query(database_url, "CREATE TABLE accounts (id int PRIMARY KEY); CREATE TABLE other (id int)")
    extra = "CREATE INDEX CONCURRENTLY IF NOT EXISTS other_id ON public.other (id);\n"
    body = PG_DUMP_HEADER + (extra if mode == "autocommit" else "")
    folder = _write(
        tmp_path, {"001_dump.sql": body + "ALTER TABLE public.accounts ADD COLUMN note text;\n"}
    )
    argv = ["apply", "--database-url", database_url, "--migrations", folder]
    argv += ["--lock-timeout", "2s", "--lock-retries", "0", "--lint-policy", "off"]
    with open_transaction(database_url, "reader", "SELECT * FROM accounts") as pid:
        end_blocker = f"SELECT pg_terminate_backend({pid})"
        release = threading.Timer(BLOCKER_SECONDS, query, (database_url, end_blocker))
        release.start()
        started = time.monotonic()
        code = main(argv)
        took = time.monotonic() - started
        release.cancel()
    assert code == 3
    assert took < 15, f"the apply waited {took:.1f}s although --lock-timeout is 2s"
    columns = query(
        database_url,
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' "
        "AND column_name = 'note'",
    )
    assert columns == []


def test_a_file_may_lower_the_timeouts_but_not_raise_them(database_url: str) -> None:
    files = {
        "001_seen.sql": "CREATE TABLE seen (step int, lock text, stmt text);",
        "002_raise.sql": "SET lock_timeout = '1h'; SET statement_timeout = 0;\n"
        "INSERT INTO seen SELECT 1, current_setting('lock_timeout'),"
        " current_setting('statement_timeout');\n"
        "RESET lock_timeout;\n"
        "INSERT INTO seen SELECT 2, current_setting('lock_timeout'),"
        " current_setting('statement_timeout');\n"
        "SET lock_timeout = '100ms';\n"
        "INSERT INTO seen SELECT 3, current_setting('lock_timeout'),"
        " current_setting('statement_timeout');\n",
    }
    settings = fast(lock_timeout_ms=2000, statement_timeout_ms=30_000)
    result = apply_migrations(database_url, load_mapping(files), settings, "bounds")
    assert result.status == "succeeded", result.error
    seen = query(database_url, "SELECT step, lock, stmt FROM seen ORDER BY step")
    assert seen == [(1, "2s", "30s"), (2, "2s", "30s"), (3, "100ms", "30s")]
