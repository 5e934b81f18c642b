"""The test tree collects as one session: ``make test`` runs ``pytest tests``, every tier at once.

The tiers' folders are not packages (pytest's default import mode puts each folder on
``sys.path`` and imports a test file by its bare name), so two test files with the same name in
two tiers stop the whole collection with "import file mismatch". Running one tier at a time
never shows it; this test does, in the unit tier, before any service starts.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]


def clashing_names(root: Path) -> dict[str, list[str]]:
    """The module names that more than one ``.py`` file under ``root`` would be imported as."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "__init__.py":
            continue
        by_name[path.stem].append(str(path.relative_to(root)))
    return {name: paths for name, paths in by_name.items() if len(paths) > 1 and name != "conftest"}


def test_no_two_test_modules_share_a_name() -> None:
    clashes = clashing_names(TESTS)
    assert not clashes, (
        "these files would be imported under one module name when `pytest tests` collects every "
        f"tier; rename all but one: {clashes}"
    )


def test_the_check_finds_a_clash(tmp_path: Path) -> None:
    for tier in ("unit", "cluster"):
        (tmp_path / tier).mkdir()
        (tmp_path / tier / "test_same.py").write_text("")
        (tmp_path / tier / "conftest.py").write_text("")
    assert clashing_names(tmp_path) == {"test_same": ["cluster/test_same.py", "unit/test_same.py"]}
