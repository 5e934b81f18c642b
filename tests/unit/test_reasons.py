"""The condition contract: every condition type and reason is documented in docs/conditions.md,
and the operator's code spells none of them as a bare string.

mypy refuses a bare string where a ``Reason`` is expected (it is a StrEnum); this test also
catches a reason written as a string where the type says only ``str`` (a dict value, a
comparison), and a reason added to the contract without its documentation. Each checker is also
run on made-up input that breaks it, so it is known to fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest

from dbmigrate.api.conditions import (
    REASON_MEANINGS,
    TYPES,
    ConditionType,
    EventReason,
    Reason,
    known_reason,
)
from dbmigrate.api.evidence import RollbackRecord
from dbmigrate.api.spec import NotificationEvent, RollbackSpec
from dbmigrate.api.status import Phase
from dbmigrate.api.watch import Verdict
from dbmigrate.decision.model import JobState
from dbmigrate.decision.recovery import ROLLED_BACK_BY

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "operator" / "dbmigrate"
DOCS = ROOT / "docs" / "conditions.md"
CHECKED_PACKAGES = ("api", "decision", "controller", "specs")
CONTRACT_MODULES = {"api/conditions.py"}
# the printer columns' titles, not a condition's reason or type
SHARED_IN_FILE = {"api/crd.py": {"Applied", "Ready"}}
_ROW = re.compile(r"^\| `([A-Za-z]+)` \|", re.MULTILINE)
_TYPE_HEADING = re.compile(r"^### `([A-Za-z]+)`$", re.MULTILINE)


def contract_spellings() -> set[str]:
    """Every reason and condition type as on the wire."""
    return {*Reason, *EventReason, *get_args(ConditionType)}


def shared_spellings() -> set[str]:
    """Spellings that are also values of another contract (a phase, a notification event, a
    rollback strategy, a Job state, a watch verdict), so a string of that spelling may mean the
    other one."""
    strategy = get_args(RollbackSpec.model_fields["strategy"].annotation)
    return {
        *get_args(Phase),
        *get_args(NotificationEvent),
        *strategy,
        *get_args(JobState),
        *get_args(Verdict),
    }


def undocumented(docs: str) -> list[str]:
    """What the contract holds and the docs do not document (as a table row or a heading)."""
    rows, headings = set(_ROW.findall(docs)), set(_TYPE_HEADING.findall(docs))
    missing = [f"reason {r}" for r in (*Reason, *EventReason, *get_args(Phase)) if r not in rows]
    return missing + [f"condition type {t}" for t in get_args(ConditionType) if t not in headings]


def unknown_in_docs(docs: str) -> list[str]:
    """Reasons and types the docs document but the contract does not hold."""
    known = contract_spellings() | set(get_args(Phase))
    named = set(_ROW.findall(docs)) | set(_TYPE_HEADING.findall(docs))
    return sorted(named - known)


def bare_spellings(source: str, where: str) -> list[str]:
    """String constants in ``source`` spelling a reason or condition type (docstrings aside)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    spelled = contract_spellings() - shared_spellings()
    return [
        f"{where}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and id(node) not in docstrings
        and isinstance(node.value, str)
        and node.value in spelled
    ]


def checked_sources() -> dict[str, str]:
    """The modules whose reasons must come from the contract, by path under the package."""
    return {
        str(path.relative_to(SOURCE)): path.read_text()
        for package in CHECKED_PACKAGES
        for path in sorted((SOURCE / package).rglob("*.py"))
        if str(path.relative_to(SOURCE)) not in CONTRACT_MODULES
    }


def test_every_reason_and_type_is_documented() -> None:
    docs = DOCS.read_text()
    assert undocumented(docs) == []
    assert unknown_in_docs(docs) == []


def test_the_docs_check_fails_on_a_missing_or_an_unknown_reason() -> None:
    docs = DOCS.read_text()
    without = docs.replace("| `PlanFailed` |", "| PlanFailed |")
    assert undocumented(without) == ["reason PlanFailed"]
    no_heading = docs.replace("### `Migrated`", "### Migrated")
    assert undocumented(no_heading) == ["condition type Migrated"]
    assert unknown_in_docs(docs + "\n| `PlanExploded` | | never |\n") == ["PlanExploded"]


def test_every_reason_has_a_meaning() -> None:
    assert set(REASON_MEANINGS) == {*Reason, *EventReason}
    assert set(TYPES) == set(get_args(ConditionType))
    assert all(text.strip() for text in (*REASON_MEANINGS.values(), *TYPES.values()))


def test_no_reason_or_condition_type_is_spelled_outside_the_contract() -> None:
    found = [
        hit
        for where, text in checked_sources().items()
        for hit in bare_spellings(text, where)
        if hit.rsplit("'", 2)[-2] not in SHARED_IN_FILE.get(where, set())
    ]
    assert found == []


def test_the_source_check_fails_on_a_bare_reason() -> None:
    source = (
        '"""A made-up module."""\n'
        "def judge(ok):\n"
        '    """Says PlanFailed in its docstring, which is fine."""\n'
        '    return ("PlanFailed", "no") if not ok else ("Migrated", "yes")\n'
        'PHASES = {"Planning": "Succeeded"}  # phases are their own contract\n'
    )
    assert bare_spellings(source, "made_up.py") == [
        "made_up.py:4: 'PlanFailed'",
        "made_up.py:4: 'Migrated'",
    ]


def test_the_rolled_back_reason_exists_for_every_strategy() -> None:
    strategies = get_args(RollbackRecord.model_fields["strategy"].annotation)
    assert set(ROLLED_BACK_BY) == set(strategies)


def test_a_reason_read_back_from_a_condition() -> None:
    assert known_reason("ApplyFailed") is Reason.APPLY_FAILED
    assert known_reason("SomethingElse") is None
