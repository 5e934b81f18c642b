"""Which updates of a DatabaseMigration reconcile it: all but the database label the operator sets
itself right before the status it is writing (a reconcile for it would read the same state)."""

from __future__ import annotations

import kopf
import pytest

from dbmigrate.api.labels import APPROVE_ANNOTATION, LABEL_DATABASE
from dbmigrate.controller.handlers import _not_only_database_label

pytestmark = pytest.mark.unit


def _diff(*items: tuple[str, tuple[str, ...], object, object]) -> kopf.Diff:
    return kopf.Diff(
        kopf.DiffItem(kopf.DiffOperation(op), path, old, new) for op, path, old, new in items
    )


def test_the_database_label_alone_does_not_reconcile() -> None:
    assert not _not_only_database_label(
        _diff(("change", ("metadata", "labels", LABEL_DATABASE), "unplanned", "d1"))
    )
    assert not _not_only_database_label(
        _diff(("add", ("metadata", "labels"), None, {LABEL_DATABASE: "d1"}))
    )


def test_anything_else_beside_it_reconciles() -> None:
    assert _not_only_database_label(
        _diff(
            ("change", ("metadata", "labels", LABEL_DATABASE), "unplanned", "d1"),
            ("change", ("spec", "target"), 1, 2),
        )
    )
    assert _not_only_database_label(
        _diff(("add", ("metadata", "labels"), None, {LABEL_DATABASE: "d1", "team": "a"}))
    )
    assert _not_only_database_label(
        _diff(("add", ("metadata", "annotations", APPROVE_ANNOTATION), None, "abc"))
    )
    assert _not_only_database_label(_diff(("change", ("metadata", "labels", "team"), "a", "b")))
    assert _not_only_database_label(_diff())
