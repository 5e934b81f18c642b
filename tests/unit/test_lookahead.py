"""The look-up after a step reads the next step's objects ahead, and that answer is used once,
for exactly those objects (no database: the catalog query is replaced by a recorder)."""

from __future__ import annotations

from typing import Any

import pytest

from dbmigrate.api.plan import CreatedObject
from dbmigrate.engine import catalog

TABLE = CreatedObject(kind="table", name="t")
INDEX = CreatedObject(kind="index", name="t_a", table="t")
COLUMN = CreatedObject(kind="column", name="b", table="t")


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[list[CreatedObject]]:
    asked: list[list[CreatedObject]] = []

    def lookup(conn: Any, objects: list[CreatedObject]) -> list[catalog.Found]:
        if objects:
            asked.append(list(objects))
        return [catalog.Found(obj=o, present=o.kind != "index", valid=None) for o in objects]

    monkeypatch.setattr(catalog, "lookup", lookup)
    return asked


def test_the_look_up_after_a_step_answers_the_next_before(queries: list) -> None:
    ahead = catalog.LookAhead(conn=None)  # type: ignore[arg-type]
    ahead.before([TABLE])
    after = ahead.after([TABLE], [INDEX, COLUMN])
    assert [f.obj for f in after] == [TABLE]
    before = ahead.before([INDEX, COLUMN])
    assert [(f.obj, f.present) for f in before] == [(INDEX, False), (COLUMN, True)]
    assert queries == [[TABLE], [TABLE, INDEX, COLUMN]]  # the second before cost nothing


def test_an_answer_read_ahead_is_used_once(queries: list) -> None:
    ahead = catalog.LookAhead(conn=None)  # type: ignore[arg-type]
    ahead.after([TABLE], [INDEX])
    ahead.before([INDEX])
    ahead.before([INDEX])  # a retried step looks again
    assert queries == [[TABLE, INDEX], [INDEX]]


def test_other_objects_or_a_forgotten_answer_are_looked_up(queries: list) -> None:
    ahead = catalog.LookAhead(conn=None)  # type: ignore[arg-type]
    ahead.after([TABLE], [INDEX])
    ahead.before([COLUMN])  # the step asks about something else: no stale answer
    ahead.after([TABLE], [INDEX])
    ahead.forget()
    ahead.before([INDEX])
    assert queries == [[TABLE, INDEX], [COLUMN], [TABLE, INDEX], [INDEX]]


def test_nothing_to_read_ahead_and_nothing_asked_costs_no_query(queries: list) -> None:
    ahead = catalog.LookAhead(conn=None)  # type: ignore[arg-type]
    assert ahead.after([], []) == []
    assert ahead.before([]) == []
    assert queries == []
