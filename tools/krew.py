"""The krew release of ``kubectl dbmigrate``: a byte-for-byte reproducible archive and its manifest.

krew installs a plugin from an archive named by URL and checked by its sha256, both in the
manifest (``plugins/krew/dbmigrate.yaml``). The archive holds only the launcher
``plugins/krew/kubectl-dbmigrate`` (it runs the plugin of the installed dbmigrate package), built
with fixed times, owners and modes so that the same tree always gives the same sha256: the
manifest's hash can be checked against a fresh build (``tests/unit/test_krew.py``) and a release
uploads exactly what was hashed.

    python tools/krew.py archive DIR   # write DIR/kubectl-dbmigrate-v<version>.tar.gz
    python tools/krew.py manifest      # set the manifest's version, URL and sha256
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "plugins" / "krew" / "kubectl-dbmigrate"
MANIFEST = ROOT / "plugins" / "krew" / "dbmigrate.yaml"
RELEASES = "https://github.com/dbmigrate/dbmigrate/releases/download"


def version() -> str:
    """The package's version, from pyproject.toml."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def archive_name(ver: str) -> str:
    return f"kubectl-dbmigrate-v{ver}.tar.gz"


def archive_bytes() -> bytes:
    """The tar.gz of the launcher, the same bytes for the same launcher."""
    data = LAUNCHER.read_bytes()
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("kubectl-dbmigrate")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(tar_buffer.getvalue())
    return out.getvalue()


def sha256() -> str:
    return hashlib.sha256(archive_bytes()).hexdigest()


def update_manifest() -> None:
    """Write the version, the archive's URL and its sha256 into the manifest."""
    ver = version()
    text = MANIFEST.read_text()
    text = re.sub(r"(?m)^(  version: )v\S+$", rf"\g<1>v{ver}", text)
    text = re.sub(r"(?m)^(\s+uri: ).*$", rf"\g<1>{RELEASES}/v{ver}/{archive_name(ver)}", text)
    text = re.sub(r"(?m)^(\s+sha256: ).*$", rf"\g<1>{sha256()}", text)
    MANIFEST.write_text(text)


def main(argv: list[str]) -> int:
    if argv[:1] == ["archive"] and len(argv) == 2:
        target = Path(argv[1]) / archive_name(version())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive_bytes())
        print(f"{target}  sha256 {sha256()}")
        return 0
    if argv == ["manifest"]:
        update_manifest()
        print(f"{MANIFEST.relative_to(ROOT)}: v{version()} sha256 {sha256()}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
