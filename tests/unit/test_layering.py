"""The package rules of ARCHITECTURE.md, checked on the source: who may import whom.

Every ``import`` and ``from ... import`` of a ``dbmigrate`` module counts, at any depth (a
function-level import is still a dependency), and so does a string naming a ``dbmigrate`` module
(``importlib.import_module("dbmigrate....")``), so a rule cannot be broken by hiding the import.
The checker is also run on made-up sources that break each kind of rule, so it is known to fail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SOURCE = Path(__file__).resolve().parents[2] / "operator" / "dbmigrate"

# The packages and what each may import besides itself. ``dbmigrate`` (the root: version and API
# group) and ``logging_setup`` (the redacting log handler) are leaves anyone may import.
ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "engine": {"api"},
    "specs": {"api"},
    "decision": {"api", "specs"},
    "controller": {"api", "specs", "decision"},
    "runner": {"api", "engine"},
    "cli": {"api", "engine", "specs", "decision", "controller", "runner"},
    # the kubectl plugin: a second command at the top, beside cli, whose pure pieces it reuses
    # (the resource judgement of ``wait``, the SARIF renderer, the output redaction)
    "kubectl": {"api", "engine", "specs", "runner", "cli"},
}
TOPS = {"cli", "kubectl"}  # commands: imported by nothing but the plugin over the cli
LEAVES = {"", "logging_setup"}
_MODULE_STRING = re.compile(r"^dbmigrate(\.[a-z_]+)+$")


def package_of(module: str) -> str:
    """``dbmigrate.engine.lint.rules`` -> ``engine``; the root and its leaf modules -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(source: str, module: str) -> Iterator[str]:
    """Every dbmigrate module ``source`` (the text of ``module``) imports or names in a string."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("dbmigrate"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            if base.startswith("dbmigrate"):
                yield base
                yield from (f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and _MODULE_STRING.match(str(node.value)):
            yield str(node.value)


def violations(sources: dict[str, str], known: set[str]) -> list[str]:
    """The broken rules among ``sources`` (module name -> text); ``known`` are the real modules,
    so ``from dbmigrate.api import labels`` counts as importing ``dbmigrate.api.labels``."""
    found = []
    for module, text in sorted(sources.items()):
        here = package_of(module)
        bad: dict[str, set[str]] = {}
        for target in set(imported_modules(text, module)):
            if target not in known and target.rsplit(".", 1)[0] in known:
                continue  # ``from dbmigrate.x import name``: the name is not a module
            there = package_of(target)
            if there not in LEAVES and there != here and there not in ALLOWED.get(here, set()):
                bad.setdefault(there, set()).add(target)
        for there, targets in sorted(bad.items()):
            names = ", ".join(sorted(targets))
            who = "a leaf" if here in LEAVES else here
            found.append(f"{module} ({who}) must not import the {there} package: {names}")
    return found


def real_sources() -> dict[str, str]:
    """Every module of the package, by its dotted name."""
    sources = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[name] = path.read_text(encoding="utf-8")
    return sources


def test_every_package_is_in_the_rules() -> None:
    packages = {p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED), "add the new package to ALLOWED and to ARCHITECTURE.md"


def test_the_package_rules_hold() -> None:
    sources = real_sources()
    assert violations(sources, set(sources)) == []


def test_nothing_imports_the_cli() -> None:
    assert all("cli" not in allowed for package, allowed in ALLOWED.items() if package not in TOPS)


def test_nothing_imports_the_kubectl_plugin() -> None:
    assert all("kubectl" not in allowed for allowed in ALLOWED.values())
    assert "controller" not in ALLOWED["kubectl"]  # a person's terminal never loads Kopf


def test_the_rules_have_no_cycle() -> None:
    """A depth-first walk of ALLOWED finds no package that reaches itself."""

    def reaches(start: str, seen: tuple[str, ...]) -> None:
        for nxt in ALLOWED[start]:
            assert nxt not in seen, f"cycle: {' -> '.join((*seen, nxt))}"
            reaches(nxt, (*seen, nxt))

    for package in ALLOWED:
        reaches(package, (package,))


@pytest.mark.parametrize(
    ("module", "text", "broken"),
    [
        ("dbmigrate.engine.apply", "from dbmigrate.controller import kube\n", "controller"),
        ("dbmigrate.api.spec", "import dbmigrate.engine.sources\n", "engine"),
        ("dbmigrate.runner.apply", "def f():\n    from dbmigrate.specs import jobs\n", "specs"),
        ("dbmigrate.decision.decide", "from dbmigrate.cli.main import main\n", "cli"),
        (
            "dbmigrate.runner.reporting",
            "import importlib\nimportlib.import_module('dbmigrate.controller.kube')\n",
            "controller",
        ),
        ("dbmigrate.logging_setup", "from dbmigrate.engine import errors\n", "engine"),
        ("dbmigrate.specs.jobs", "from ..controller import kube\n", "controller"),
        ("dbmigrate.kubectl.status", "from dbmigrate.controller import kube\n", "controller"),
        ("dbmigrate.cli.wait", "from dbmigrate.kubectl.client import Client\n", "kubectl"),
    ],
)
def test_the_checker_finds_a_broken_rule(module: str, text: str, broken: str) -> None:
    known = set(real_sources())
    found = violations({module: text}, known)
    assert len(found) == 1 and f"the {broken} package" in found[0], found


def test_module_names_in_a_package_differ_by_more_than_a_suffix() -> None:
    """``gates`` and ``gating``, ``jobs`` and ``step_jobs`` read alike: no name in a package
    may be another's name plus a suffix."""
    clashes = []
    for folder in [SOURCE, *(p for p in SOURCE.rglob("*") if (p / "__init__.py").is_file())]:
        names = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
        names += sorted(p.name for p in folder.iterdir() if (p / "__init__.py").is_file())
        for a in names:
            for b in names:
                if a != b and b.startswith(a) and len(a) >= 4:
                    clashes.append(f"{folder.relative_to(SOURCE.parent)}: {a} / {b}")
    assert clashes == []
