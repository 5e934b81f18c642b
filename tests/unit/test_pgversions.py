"""The PostgreSQL version pins, cache layout, download checks and matrix report (no network)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from testbed import pgmatrix, pgversions
from testbed.proc import TestbedError


def test_every_supported_major_is_pinned_with_client_programs_not_older() -> None:
    assert pgversions.SUPPORTED_MAJORS == (13, 14, 15, 16, 17, 18)
    assert set(pgversions.RELEASES) == set(pgversions.SUPPORTED_MAJORS)
    for major, rel in pgversions.RELEASES.items():
        assert rel.major == major and rel.server.version.startswith(f"{major}.")
        # dbmigrate refuses a pg_dump older than the server
        assert rel.client_major >= major
        assert len(rel.server.sha256) == 64 and len(rel.client.sha256) == 64
    # only 13 lacks client programs of its own major (see the module's doc)
    assert [m for m, r in pgversions.RELEASES.items() if r.client_major != m] == [13]


@pytest.mark.parametrize("value", ["12", "19", "fifteen", "15.2"])
def test_an_unsupported_or_malformed_major_is_refused(value: str) -> None:
    with pytest.raises(TestbedError, match="supported: 13, 14, 15, 16, 17, 18"):
        pgversions.release_for(value)


def test_cache_root_honours_its_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(pgversions.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pgversions.cache_root() == tmp_path / "xdg" / "dbmigrate-testbed"
    monkeypatch.setenv(pgversions.CACHE_ENV, str(tmp_path / "mine"))
    assert pgversions.cache_root() == tmp_path / "mine"


def test_a_download_with_another_digest_is_refused() -> None:
    data = b"jar bytes"
    good = pgversions.Package("15.19.0", hashlib.sha256(data).hexdigest())
    pgversions.check_digest(data, good, "x")
    with pytest.raises(TestbedError, match="expected"):
        pgversions.check_digest(data + b"!", good, "x")


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o700
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_unpacking_strips_the_top_folder_and_leaves_all_readable(tmp_path: Path) -> None:
    data = _tarball({"pg-1/bin/pg_dump": b"#!/bin/sh\n", "pg-1/lib/libpq.so.5": b"lib"})
    target = tmp_path / "cache" / "postgres-client-1"
    pgversions._unpack_into(target, data, "r:gz", strip=1)
    assert (target / "bin" / "pg_dump").read_bytes() == b"#!/bin/sh\n"
    mode = (target / "lib" / "libpq.so.5").stat().st_mode
    assert mode & 0o444 == 0o444
    assert (target / "bin").stat().st_mode & 0o555 == 0o555
    assert [p.name for p in target.parent.iterdir()] == ["postgres-client-1"]  # no staging left


def test_unpacking_an_unexpected_layout_leaves_nothing(tmp_path: Path) -> None:
    data = _tarball({"a/bin/x": b"", "b/bin/y": b""})
    target = tmp_path / "cache" / "postgres-client-1"
    with pytest.raises(TestbedError, match="unexpected layout"):
        pgversions._unpack_into(target, data, "r:gz", strip=1)
    assert not list(target.parent.iterdir())


def test_junit_counts_add_errors_to_failures(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="10" failures="2"'
        ' errors="1" skipped="3"></testsuite></testsuites>'
    )
    assert pgmatrix.junit_counts(report) == (4, 3, 3)


def test_summary_line_names_the_versions_and_the_verdict() -> None:
    ok = pgmatrix.Outcome(13, 200, 0, 1, 61.2, 0)
    assert ok.line() == (
        "PostgreSQL 13 (server 13.23.0, client programs 14.23.0): 200 passed, 0 failed, "
        "1 skipped in 61 s: ok"
    )
    bad = pgmatrix.Outcome(18, 199, 1, 1, 60, 1)
    assert not bad.ok and bad.line().endswith(": FAILED")


def test_client_programs_older_than_the_server_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from testbed import postgres

    monkeypatch.delenv(pgversions.MAJOR_ENV, raising=False)
    monkeypatch.setenv(pgversions.CLIENT_MAJOR_ENV, "18")
    assert postgres.test_client_bin() is None  # no major asked for: nothing changes
    monkeypatch.setenv(pgversions.MAJOR_ENV, "16")
    monkeypatch.setenv(pgversions.CLIENT_MAJOR_ENV, "14")
    with pytest.raises(TestbedError, match="older than the server"):
        postgres.test_client_bin()
    monkeypatch.setenv(pgversions.CLIENT_MAJOR_ENV, "12")
    with pytest.raises(TestbedError, match="not a supported major"):
        postgres.test_client_bin()
