"""Loading migration sets: folder, ConfigMap-shaped mapping, inline entries, and bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dbmigrate.engine.sources import (
    Migration,
    MigrationSourceError,
    load_directory,
    load_inline,
    load_mapping,
    parse_filename,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_worked_example_loads_in_order() -> None:
    migrations = load_directory(REPO / "database" / "migrations", allow_gaps=False)
    assert migrations.versions == [1, 2, 3, 4, 5]
    first = next(iter(migrations))
    assert first.filename == "001_initial_schema.sql"
    assert first.name == "initial_schema"
    assert first.checksum == hashlib.sha256(first.sql.encode()).hexdigest()


def test_mapping_orders_by_version_not_by_key() -> None:
    result = load_mapping({"010_b.sql": "SELECT 2;", "2_a.sql": "SELECT 1;"})
    assert result.versions == [2, 10]
    assert [m.filename for m in result] == ["2_a.sql", "010_b.sql"]


@pytest.mark.parametrize(
    "name", ["add_index.sql", "001-add.sql", "001_add.SQL", "001_.sql", "x_1.sql"]
)
def test_bad_names_are_refused_with_the_expected_shape(name: str) -> None:
    with pytest.raises(MigrationSourceError, match=r"NNN_name\.sql"):
        parse_filename(name)


def test_duplicate_versions_name_both_files() -> None:
    with pytest.raises(MigrationSourceError) as info:
        load_mapping({"001_a.sql": "SELECT 1;", "1_b.sql": "SELECT 2;"})
    assert "001_a.sql" in str(info.value)
    assert "1_b.sql" in str(info.value)


def test_gaps_only_refused_when_asked() -> None:
    files = {"001_a.sql": "SELECT 1;", "003_c.sql": "SELECT 3;"}
    assert load_mapping(files).versions == [1, 3]
    with pytest.raises(MigrationSourceError, match="gap"):
        load_mapping(files, allow_gaps=False)


def test_directory_ignores_other_files_and_refuses_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("notes")
    assert load_directory(tmp_path).versions == [1]
    with pytest.raises(MigrationSourceError, match="does not exist"):
        load_directory(tmp_path / "missing")


def test_inline_entries_take_their_position_as_default_version() -> None:
    result = load_inline(
        [{"name": "first", "sql": "SELECT 1;"}, {"name": "second", "sql": "SELECT 2;"}]
    )
    assert result.versions == [1, 2]
    assert [m.filename for m in result] == ["001_first.sql", "002_second.sql"]
    explicit = load_inline([{"version": 7, "name": "x", "sql": "SELECT 1;"}])
    assert explicit.versions == [7]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "bad name", "sql": "SELECT 1;"}, "name must be"),
        ({"name": "ok", "sql": "  "}, "sql is empty"),
        ({"name": "ok", "sql": "SELECT 1;", "version": "3"}, "version must be"),
        ({"name": "ok", "sql": "SELECT 1;", "version": -1}, "version must be"),
    ],
)
def test_inline_entries_are_validated(entry: dict[str, object], message: str) -> None:
    with pytest.raises(MigrationSourceError, match=message):
        load_inline([entry])


def test_set_helpers() -> None:
    result = load_mapping({"001_a.sql": "A", "002_b.sql": "B", "003_c.sql": "C"})
    assert [m.version for m in result.pending([1, 3])] == [2]
    assert result.up_to(2).versions == [1, 2]
    assert result.latest == 3
    with pytest.raises(MigrationSourceError, match="target version 9"):
        result.up_to(9)


def test_checksum_is_computed_unless_given() -> None:
    m = Migration(version=1, name="a", filename="001_a.sql", sql="SELECT 1;")
    assert m.checksum == hashlib.sha256(b"SELECT 1;").hexdigest()
