"""ARCHITECTURE.md finds each module where it says: it names every module, and every path it
names exists. A module added, moved or renamed without the document fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "dbmigrate"
DOC = ROOT / "ARCHITECTURE.md"
_PACKAGES = "api|engine|specs|decision|controller|runner|cli|kubectl"
_PATH = re.compile(rf"`((?:{_PACKAGES})/[\w/]*?(?:\.py|/))`")
_NAME = re.compile(r"`([a-z_]+)`")


def module_names(package: Path) -> set[str]:
    """The modules and sub-packages of every package, by their short name."""
    found = set()
    for path in package.rglob("*.py"):
        if path.stem != "__init__" and path.parent != package:
            found.add(path.stem)
    for path in package.rglob("__init__.py"):
        if path.parent.parent != package.parent:
            found.add(path.parent.name)
    return found


def unnamed(doc: str, modules: set[str]) -> set[str]:
    """The modules ``doc`` never names in backticks (as ``name`` or as ``pkg/name.py``)."""
    named = set(_NAME.findall(doc)) | {Path(p).stem or Path(p).name for p in _PATH.findall(doc)}
    return modules - named


def missing_paths(doc: str, package: Path) -> list[str]:
    """The ``pkg/module.py`` paths ``doc`` names that do not exist (``<step>`` ones aside)."""
    return [p for p in _PATH.findall(doc) if not (package / p).exists()]


def test_every_module_is_named() -> None:
    modules = module_names(PACKAGE)
    assert unnamed(DOC.read_text(encoding="utf-8"), modules) == set()


def test_every_named_path_exists() -> None:
    assert missing_paths(DOC.read_text(encoding="utf-8"), PACKAGE) == []


def test_the_checks_can_fail() -> None:
    assert unnamed("`decide` and `controller/reconcile.py`", {"decide", "reconcile", "kube"}) == {
        "kube"
    }
    assert missing_paths("see `runner/nowhere.py` and `runner/plan.py`", PACKAGE) == [
        "runner/nowhere.py"
    ]
