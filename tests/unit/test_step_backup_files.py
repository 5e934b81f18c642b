"""Backup file naming, retention choice, artefact hashing and archive listings."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbmigrate.engine.undo import archive, backup, restore

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_names_carry_identity_timestamp_and_format() -> None:
    assert backup.backup_name("ns/mig", WHEN, "custom") == "ns_mig-20260304T050607Z.dump"
    assert backup.backup_name("ns/mig", WHEN, "directory") == "ns_mig-20260304T050607Z.dir"
    local = WHEN.astimezone(tz=None)
    assert backup.backup_name("ns/mig", local, "custom").endswith("20260304T050607Z.dump")


def test_unsafe_identities_get_distinct_safe_prefixes() -> None:
    a = backup.safe_identity('ns/"odd" näme')
    b = backup.safe_identity("ns/-odd--n-me")
    assert a != b and "/" not in a and '"' not in a
    assert backup.safe_identity("../etc") != "../etc" and not backup.safe_identity(
        "..x"
    ).startswith(".")
    with pytest.raises(backup.BackupError, match="empty"):
        backup.safe_identity("  ")


def test_parse_backup_time_round_trips_and_ignores_others() -> None:
    name = backup.backup_name("ns/m", WHEN, "custom")
    assert backup.parse_backup_time("ns/m", name) == WHEN
    assert backup.parse_backup_time("ns/m", name + ".partial") is None
    assert backup.parse_backup_time("ns/m", name + ".keep") is None
    assert backup.parse_backup_time("ns/other", name) is None
    assert backup.parse_backup_time("ns/m", "ns_m-notatime.dump") is None


def test_retention_keeps_newest_and_never_protected() -> None:
    found = [(f"b{i}", WHEN + timedelta(hours=i)) for i in range(5)]
    record = backup.choose_retention(found, keep=2, protected={"b0"})
    assert record.kept == ["b4", "b3", "b0"]
    assert record.deleted == ["b2", "b1"] and record.protected == ["b0"]
    assert backup.choose_retention(found, keep=10, protected=()).deleted == []
    with pytest.raises(backup.BackupError, match="at least 1"):
        backup.choose_retention(found, keep=0, protected=())


def test_directory_hash_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, order in ((one, ("a.dat", "toc.dat")), (two, ("toc.dat", "a.dat"))):
        folder.mkdir()
        for name in order:
            (folder / name).write_bytes(name.encode())
    assert archive.sha256_of(one) == archive.sha256_of(two)
    assert archive.size_of(one) == len(b"a.dat") + len(b"toc.dat")
    (two / "a.dat").write_bytes(b"changed")
    assert archive.sha256_of(one) != archive.sha256_of(two)
    file = tmp_path / "f.dump"
    file.write_bytes(b"abc")
    assert archive.sha256_of(file) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_directory_hash_is_the_documented_digest_whatever_order_the_threads_finish(
    tmp_path: Path,
) -> None:
    sizes = {f"{n:04d}.dat.gz": (n * 7919) % 300_000 for n in range(3000, 3040)}
    (tmp_path / "toc.dat").write_bytes(b"toc")
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(name.encode() * (size // 11 + 1))
    outer = hashlib.sha256()  # sorted relative names, each with its file's sha256
    for item in sorted(tmp_path.iterdir()):
        inner = hashlib.sha256(item.read_bytes()).hexdigest()
        outer.update(f"{item.name}\0{inner}\n".encode())
    assert archive.sha256_of(tmp_path) == outer.hexdigest()


LISTING = """;
; Archive created at 2026-01-01 00:00:00 UTC
;     dbname: t
;
215; 1259 16390 TABLE public page_views postgres
216; 1259 16391 TABLE public pâge "views" ✓ postgres
3380; 0 16390 TABLE DATA public page_views postgres
3231; 1259 16400 INDEX public idx postgres
"""


def test_listing_counts() -> None:
    assert archive.count_list_entries(LISTING) == 4
    assert restore.count_table_entries(LISTING) == 2


def test_archive_format_refuses_what_is_not_a_dump(tmp_path: Path) -> None:
    with pytest.raises(restore.RestoreError, match="does not exist"):
        restore.archive_format(tmp_path / "none.dump")
    plain = tmp_path / "x.sql"
    plain.write_text("SELECT 1;")
    with pytest.raises(restore.RestoreError, match="not a pg_dump custom-format"):
        restore.archive_format(plain)
    folder = tmp_path / "d"
    folder.mkdir()
    with pytest.raises(restore.RestoreError, match=r"without toc\.dat"):
        restore.archive_format(folder)
    (folder / "toc.dat").write_bytes(b"PGDMP")
    assert restore.archive_format(folder) == "directory"
    plain.write_bytes(b"PGDMP\x01\x0e\x00")
    assert restore.archive_format(plain) == "custom"
