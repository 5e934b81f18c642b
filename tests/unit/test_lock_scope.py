"""The lock gate's scope: the database label, its fix, and the selectors that find every holder."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dbmigrate.api.labels import LABEL_DATABASE
from dbmigrate.api.status import DatabaseIdentity, DatabaseMigrationStatus
from dbmigrate.decision.gate_rules import lock_candidate, lock_holder
from dbmigrate.decision.lock_scope import UNPLANNED, database_label, label_fix, lock_selectors

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def status(phase: str, database: str | None = "shop", *, started: int = 0) -> Any:
    identity = None
    if database is not None:
        identity = DatabaseIdentity(system_identifier="7301234567890123456", database=database)
    return DatabaseMigrationStatus(
        phase=phase, database=identity, started_at=T0 + timedelta(seconds=started)
    )


def matches(selector: str, labels: Mapping[str, str]) -> bool:
    """The two selector forms lock_selectors uses, as the API server reads them."""
    if selector.startswith("!"):
        return selector[1:] not in labels
    key, _, value = selector.partition("=")
    return labels.get(key) == value


def listed(me: Any, cluster: dict[str, tuple[dict[str, str], Any]]) -> list[str]:
    """Names the gate's lists return, in the order it lists them (each name once)."""
    found: dict[str, None] = {}
    for selector in lock_selectors(me):
        for name, (labels, _) in cluster.items():
            if matches(selector, labels):
                found[name] = None
    return list(found)


def holder_through_labels(me: Any, cluster: dict[str, tuple[dict[str, str], Any]]) -> str | None:
    mine = lock_candidate("ns", "me", me)
    assert mine is not None
    others = [
        c
        for name in listed(me, cluster)
        if (c := lock_candidate("ns", name, cluster[name][1])) is not None
    ]
    return lock_holder(mine, others)


def test_the_label_is_a_digest_of_the_key_and_a_valid_label_value() -> None:
    shop, other = database_label(status("Planning")), database_label(status("Planning", "crm"))
    assert shop != other and shop != UNPLANNED
    assert shop == database_label(status("Succeeded"))  # the phase does not matter
    long_name = status("Planning", "d" * 63 + "é")
    for value in (shop, other, UNPLANNED, database_label(long_name)):
        assert LABEL_VALUE.match(value), value


def test_without_a_database_the_label_says_unplanned() -> None:
    assert database_label(status("Pending", None)) == UNPLANNED


def test_the_fix_sets_a_missing_or_stale_label_and_nothing_when_right() -> None:
    planned = status("Planning")
    right = {LABEL_DATABASE: database_label(planned)}
    assert label_fix(right, planned) is None
    assert label_fix({}, planned) == right
    assert label_fix({LABEL_DATABASE: UNPLANNED}, planned) == right
    moved = status("Planning", "crm")  # the spec's database changed, a new plan saw another one
    assert label_fix(right, moved) == {LABEL_DATABASE: database_label(moved)}
    assert label_fix({"other": "x"}, status("Pending", None)) == {LABEL_DATABASE: UNPLANNED}


def test_the_unlabelled_are_listed_before_the_labelled() -> None:
    first, second = lock_selectors(status("WaitingForLock"))
    assert first == f"!{LABEL_DATABASE}"
    assert second == f"{LABEL_DATABASE}={database_label(status('WaitingForLock'))}"


def test_a_labelled_holder_of_the_same_database_is_found() -> None:
    me = status("Planning", started=10)
    holder = status("Migrating", started=5)
    cluster = {"holder": ({LABEL_DATABASE: database_label(holder)}, holder)}
    assert holder_through_labels(me, cluster) == "ns/holder"


def test_an_unlabelled_holder_from_before_the_label_is_found() -> None:
    me = status("Planning", started=10)
    legacy = status("BackingUp", started=5)
    assert holder_through_labels(me, {"legacy": ({}, legacy)}) == "ns/legacy"


def test_an_earlier_waiter_is_found_and_other_databases_are_not_read() -> None:
    me = status("WaitingForLock", started=10)
    waiter = status("WaitingForLock", started=5)
    crm = status("Migrating", "crm", started=1)
    finished = [status("Succeeded", f"tenant{i}") for i in range(50)]
    cluster: dict[str, tuple[dict[str, str], Any]] = {
        "waiter": ({LABEL_DATABASE: database_label(waiter)}, waiter),
        "crm": ({LABEL_DATABASE: database_label(crm)}, crm),
        **{f"t{i}": ({LABEL_DATABASE: database_label(s)}, s) for i, s in enumerate(finished)},
    }
    assert listed(me, cluster) == ["waiter"]
    assert holder_through_labels(me, cluster) == "ns/waiter"


def test_no_holder_when_the_others_of_the_database_have_ended() -> None:
    me = status("Planning", started=10)
    done = status("Succeeded", started=1)
    unplanned = status("Pending", None)
    cluster = {
        "done": ({LABEL_DATABASE: database_label(done)}, done),
        "new": ({LABEL_DATABASE: UNPLANNED}, unplanned),
    }
    assert listed(me, cluster) == ["done"]
    assert holder_through_labels(me, cluster) is None
