"""The Kopf handlers of DatabaseMigrationRollouts: thin, all calling ``RolloutReconciler``.

create, resume, update (the spec, or the ``dbmigrate.io/promote`` annotation) and a timer (the
resync interval: it also notices target Secrets created since) reconcile the rollout; an event of
one of its children (a DatabaseMigration labelled ``dbmigrate.io/rollout`` and owned by it) is kept
in the children's index (``rollout_children.ChildIndex``, which the rollout's reconcile reads
instead of listing them) and schedules a reconcile of the rollout a second later
(``RolloutReconciler.child_changed``), from Kopf's event loop, never waiting for a worker thread.
They are registered by ``handlers.register`` on the operator's one registry, with its settings.
"""

from __future__ import annotations

from typing import Any

import kopf

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.labels import LABEL_ROLLOUT
from dbmigrate.api.rollout import ROLLOUT_PLURAL
from dbmigrate.controller.kube import Kube
from dbmigrate.controller.rollout_children import ChildIndex
from dbmigrate.controller.rollouts import ChildWaker, RolloutReconciler
from dbmigrate.controller.settings import OperatorSettings

ROLLOUT_RESOURCE = (API_GROUP, API_VERSION, ROLLOUT_PLURAL)
CHILD_RESOURCE = (API_GROUP, API_VERSION, PLURAL)


class RolloutHandlers:
    """The handlers of rollouts, their children's index (fed from the first event on) and their
    reconciler (built at startup, after login)."""

    def __init__(self) -> None:
        self._reconciler: RolloutReconciler | None = None
        self.children = ChildIndex()

    def startup(self, kube: Kube, wake_child: ChildWaker | None = None) -> None:
        if self._reconciler is None:
            self._reconciler = RolloutReconciler(
                kube, children=self.children, wake_child=wake_child
            )

    def reconcile(self, namespace: str | None, name: str | None, **_: Any) -> None:
        """Reconcile the named rollout."""
        if not namespace or not name:
            return
        if self._reconciler is None:
            raise kopf.TemporaryError("the operator is still starting", delay=2)
        self._reconciler.reconcile(namespace, name)

    async def on_child_event(self, type: str | None, body: kopf.Body, **_: Any) -> None:
        """A child DatabaseMigration changed: keep it in the index, and look at its rollout
        shortly. Async, so it runs on Kopf's event loop: a sync handler waits for one of Kopf's
        worker threads, and with more children at work than workers (maxParallel 25, 16
        workers) the rollout learnt of its last child's end only once a worker was free.
        Neither keeping nor scheduling blocks."""
        key = self.children.seen(body, deleted=type == "DELETED")
        if key is not None and self._reconciler is not None:
            self._reconciler.child_changed(*key)


def register(
    registry: kopf.OperatorRegistry, settings: OperatorSettings, handlers: RolloutHandlers
) -> None:
    """Register the rollout handlers on ``registry``."""
    for on, handler_id in (
        (kopf.on.create, "rollout_on_create"),
        (kopf.on.resume, "rollout_on_resume"),
        (kopf.on.update, "rollout_on_update"),
    ):
        on(*ROLLOUT_RESOURCE, id=handler_id, registry=registry)(handlers.reconcile)
    kopf.timer(
        *ROLLOUT_RESOURCE,
        id="rollout_on_timer",
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds / 2,
        registry=registry,
    )(handlers.reconcile)
    kopf.on.event(
        *CHILD_RESOURCE,
        id="rollout_on_child_event",
        labels={LABEL_ROLLOUT: kopf.PRESENT},
        registry=registry,
    )(handlers.on_child_event)
