"""The rollout's children index: a reconcile reads its children from the operator's watch and its
own writes, lists them only on the first reconcile (and after ``RESYNC_SECONDS``), never starts
more than ``maxParallel`` because the watch lags, and keeps the newest of each object."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from dbmigrate.api.rollout import ROLLOUT_KIND, DatabaseMigrationRolloutSpec
from dbmigrate.controller.rollout_children import RESYNC_SECONDS, ChildIndex, newer
from dbmigrate.controller.rollouts import TARGETS_REFRESH_SECONDS, RolloutReconciler
from dbmigrate.specs.rollout import build_child

pytestmark = pytest.mark.unit

UID = "5a5a5a5a-0000-4000-8000-000000000000"
SPEC = {
    "template": {"source": {"configMap": {"name": "files"}}, "backup": {"enabled": False}},
    "targets": {"selector": {"fleet": "yes"}, "uriKey": "uri"},
    "waves": [{"name": "all", "maxParallel": 2}],
}


def _rollout() -> dict[str, Any]:
    return {
        "apiVersion": "dbmigrate.io/v1alpha1", "kind": ROLLOUT_KIND,
        "metadata": {"name": "fleet", "namespace": "apps", "uid": UID, "generation": 1},
        "spec": copy.deepcopy(SPEC),
    }  # fmt: skip


class FakeKube:
    """An API server of one rollout, its target Secrets and its children; records the calls."""

    def __init__(self, targets: int) -> None:
        self.versions = itertools.count(100)
        self.rollout = _rollout()
        self.secrets = [
            {"metadata": {"name": f"t{i}", "labels": {"fleet": "yes"}}} for i in range(targets)
        ]
        self.children: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(f"get {kind}")
        return copy.deepcopy(self.rollout) if kind == ROLLOUT_KIND else self.children.get(name)

    def list_pages(
        self, kind: str, namespace: str, selector: str | None, **_: Any
    ) -> Iterator[Any]:
        self.calls.append(f"list {kind}")
        yield from copy.deepcopy(self.secrets if kind == "Secret" else list(self.children.values()))

    def create_object(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append("create")
        name = obj["metadata"]["name"]
        if name in self.children:
            return None
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(next(self.versions))
        stored["metadata"]["generation"] = 1
        self.children[name] = stored
        return copy.deepcopy(stored)

    def patch_status(self, namespace: str, name: str, status: Any, kind: str = "") -> None:
        self.calls.append("patch status")
        self.rollout["status"] = status

    def finish(self, name: str) -> dict[str, Any]:
        """A child's run ended Succeeded; the object as the watch would deliver it."""
        child = self.children[name]
        child["status"] = {"phase": "Succeeded", "observedGeneration": 1}
        child["metadata"]["resourceVersion"] = str(next(self.versions))
        return copy.deepcopy(child)


class FakeEvents:
    def emit(self, *args: Any) -> None:
        pass


def _reconciler(kube: FakeKube, index: ChildIndex, clock: list[float]) -> RolloutReconciler:
    reconciler = RolloutReconciler(kube, children=index, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    reconciler.events = FakeEvents()  # type: ignore[assignment]
    reconciler.requeuer.schedule = lambda *args: None  # type: ignore[method-assign]
    return reconciler


def test_a_rollout_lists_its_children_once_and_then_reads_them_from_the_watch() -> None:
    kube, clock = FakeKube(targets=5), [0.0]
    index = ChildIndex(clock=lambda: clock[0])
    reconciler = _reconciler(kube, index, clock)
    reconciler.reconcile("apps", "fleet")
    assert kube.calls.count("list DatabaseMigration") == 1
    assert len(kube.children) == 2  # maxParallel

    kube.calls.clear()
    reconciler.reconcile("apps", "fleet")  # the watch has delivered nothing yet
    assert "list DatabaseMigration" not in kube.calls
    assert len(kube.children) == 2, "a lagging watch must not let it start more than maxParallel"

    for name in list(kube.children):
        index.seen(kube.finish(name))  # the watch brings the two ends
    reconciler.reconcile("apps", "fleet")
    assert "list DatabaseMigration" not in kube.calls
    assert len(kube.children) == 4

    clock[0] += RESYNC_SECONDS
    kube.calls.clear()
    reconciler.reconcile("apps", "fleet")
    assert kube.calls.count("list DatabaseMigration") == 1, "a full list every RESYNC_SECONDS"


def test_the_targets_are_listed_again_after_the_refresh_or_when_their_spec_changes() -> None:
    kube, clock = FakeKube(targets=3), [0.0]
    reconciler = _reconciler(kube, ChildIndex(clock=lambda: clock[0]), clock)
    reconciler.reconcile("apps", "fleet")
    reconciler.reconcile("apps", "fleet")
    assert kube.calls.count("list Secret") == 1
    clock[0] += TARGETS_REFRESH_SECONDS
    reconciler.reconcile("apps", "fleet")
    assert kube.calls.count("list Secret") == 2
    kube.rollout["spec"]["targets"]["selector"] = {"fleet": "no"}
    reconciler.reconcile("apps", "fleet")
    assert kube.calls.count("list Secret") == 3


def _child_object(version: str, phase: str | None = None) -> dict[str, Any]:
    spec = DatabaseMigrationRolloutSpec.model_validate(SPEC)
    child = build_child("fleet", "apps", UID, "t1", "all", spec)
    child["metadata"].update(resourceVersion=version, generation=1)
    if phase:
        child["status"] = {"phase": phase, "observedGeneration": 1}
    return child


def test_the_newest_object_wins_and_a_deleted_child_stays_deleted_until_a_list() -> None:
    index = ChildIndex()
    key = index.seen(_child_object("7", "Succeeded"))
    assert key == ("apps", "fleet")
    index.seen(_child_object("5"))  # an older event arriving late
    assert [c.state for c in index.children(key, UID)] == ["succeeded"]
    index.seen(_child_object("9"), deleted=True)
    index.replace(key, [_child_object("8", "Succeeded")])  # a list begun before the deletion
    assert index.children(key, UID) == ()
    assert index.children(key, "another-uid") == ()
    index.replace(key, [_child_object("12", "Failed")])
    assert [c.state for c in index.children(key, UID)] == ["failed"]


def test_an_object_that_is_no_rollouts_child_is_not_kept() -> None:
    index = ChildIndex()
    assert index.seen({"metadata": {"name": "x", "namespace": "apps"}}) is None


def test_resource_versions_compare_as_numbers() -> None:
    assert newer("10", "9") and not newer("9", "10") and not newer("9", "9")
    assert newer("b", "a")
