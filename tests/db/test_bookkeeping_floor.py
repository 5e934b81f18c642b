"""The lower-bound script of the engine-overhead benchmark really does the records' work: run by
psql on an empty database it applies 001-005 and leaves a history row per version, and it checks
every CONCURRENTLY build before and after (so the bound it gives is not too low)."""

from __future__ import annotations

from bench.bookkeeping_floor import floor_script
from bench.common import psql
from tests.db.engine_support import example_set, query


def test_the_floor_script_applies_the_example_and_records_it(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "floor.sql"
    script.write_text(floor_script(example_set()))
    psql(database_url, script)
    rows = query(database_url, "SELECT version, status FROM dbmigrate.schema_migrations ORDER BY 1")
    assert rows == [(v, "applied") for v in (1, 2, 3, 4, 5)]
    invalid = query(database_url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
    assert invalid == [(0,)]


def test_every_concurrent_build_is_checked_before_and_after() -> None:
    text = floor_script(example_set())
    builds = text.count("CREATE INDEX CONCURRENTLY") + text.count(
        "CREATE UNIQUE INDEX CONCURRENTLY"
    )
    assert builds == 7
    assert text.count("FROM pg_index") == 2 * builds
    assert "FROM pg_index" not in floor_script(example_set(), index_checks=False)
