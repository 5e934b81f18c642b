"""The reconcile of a DatabaseMigrationRollout: observe, ask ``decide_rollout``, carry it out.

One reconcile makes a bounded number of API calls whatever the number of targets: the rollout
itself, one list of its target Secrets by label selector (metadata only: names and labels, never
their data; paged, each item reduced at once to what the decision needs, so memory grows with the
targets' names, not their objects), the status patch, and then only the children the decision starts
(at most each wave's ``maxParallel``) and the rollback annotations. Its children come from the
operator's watch (``rollout_children.ChildIndex``), listed whole only on the rollout's first
reconcile in this process and every ``RESYNC_SECONDS`` after. Its targets are listed again only when
``TARGETS_REFRESH_SECONDS`` have passed or the targets' spec changed: children that change once a
second reconcile the rollout about once a second, and a new tenant's Secret can wait ten seconds. A
child's change does not reconcile the rollout at once: it schedules one reconcile a second later
(``CHILD_DEBOUNCE``), so a wave of children finishing together costs one reconcile, not one each.

Every Event of a decision (a wave started or ended, the rollout completed or stopped, a rollback
asked for) is also sent to each of ``spec.notifications`` (``notify``), after the status patch that
records the transition, off the reconcile's thread, in the order the Events were posted (one outbox
per rollout, drained by one sender at a time: a wave's end never arrives after the rollout's
completion), with the bounded retries of
``webhooks.post_with_retries``; a delivery that fails is logged and posted as a Warning Event
``NotificationFailed`` (it is not sent again: a rollout's notifications are at most once).

A child to start that exists already (its template changed) is brought to the current template with
a JSON patch replacing its spec, labels and annotations; the child's own reconcile then starts its
new run. Each child created or brought to the template is handed to the DatabaseMigration
reconciler's requeuer at once (``wake_child``), so its first reconcile (its plan Job) does not wait
behind Kopf's queue of the previous wave's events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from dbmigrate.api.conditions import EventReason
from dbmigrate.api.labels import ROLLBACK_ANNOTATION
from dbmigrate.api.rollout import (
    ROLLOUT_KIND,
    DatabaseMigrationRolloutSpec,
    DatabaseMigrationRolloutStatus,
    RolloutNotificationTarget,
    TargetSecrets,
)
from dbmigrate.controller.events import EventRecorder
from dbmigrate.controller.kube import JSON_PATCH, ApiError, Kube, Obj, path_of
from dbmigrate.controller.requeue import Requeuer
from dbmigrate.controller.rollout_children import ChildIndex
from dbmigrate.controller.webhooks import RetryPolicy, post_with_retries
from dbmigrate.decision.rollout import (
    Child,
    RolloutDecision,
    RolloutEvent,
    RolloutObserved,
    decide_rollout,
    watch_enabled,
)
from dbmigrate.decision.waves import Target
from dbmigrate.specs.rollout import build_child, children_selector, template_hash, template_patch

log = logging.getLogger("dbmigrate.operator")

CHILD_DEBOUNCE = 1.0
TARGETS_REFRESH_SECONDS = 10.0
PAGE = 250
ChildWaker = Callable[[str, str, float], None]  # schedule(namespace, name, delay) of a reconcile
Notification = tuple[Obj, RolloutNotificationTarget, Any]  # the rollout, the target, the body
ListedTargets = tuple[TargetSecrets, float, tuple[Target, ...]]  # spec.targets, when, the targets


def secret_selector(targets: TargetSecrets) -> str | None:
    """The label selector of the target Secrets (None: no selector, only names)."""
    if targets.selector is None:
        return None
    return ",".join(f"{key}={value}" for key, value in sorted(targets.selector.items()))


class RolloutReconciler:
    """Reconciles DatabaseMigrationRollouts, one at a time per resource."""

    def __init__(
        self,
        kube: Kube,
        *,
        children: ChildIndex | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        wake_child: ChildWaker | None = None,
    ) -> None:
        self.kube = kube
        self.index = children if children is not None else ChildIndex()
        self.monotonic = monotonic
        self._targets_seen: dict[tuple[str, str], ListedTargets] = {}
        self.clock = clock
        self.wake_child = wake_child
        self.events = EventRecorder(kube)
        self.requeuer = Requeuer(self._requeued)
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self.policy = RetryPolicy()
        self._senders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rollout-notify")
        self._outbox: dict[tuple[str, str], deque[Notification]] = {}  # per rollout, in order

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks[(namespace, name)]

    def _requeued(self, namespace: str, name: str) -> None:
        try:
            self.reconcile(namespace, name)
        except kopf.TemporaryError as exc:
            self.requeuer.schedule(namespace, name, exc.delay or 5.0)
        except ApiError as exc:
            log.error("reconcile of rollout %s/%s failed: %s", namespace, name, exc)
            self.requeuer.schedule(namespace, name, 10.0)

    def child_changed(self, namespace: str, rollout: str) -> None:
        """A child changed: look at its rollout shortly (many changes, one reconcile)."""
        self.requeuer.schedule(namespace, rollout, CHILD_DEBOUNCE)

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring one rollout a step further; kopf.TemporaryError for what may heal."""
        with self._lock(namespace, name):
            try:
                self._reconcile(namespace, name)
            except ApiError as exc:
                if exc.transient:
                    raise kopf.TemporaryError(f"API server: {exc}", delay=5) from exc
                raise

    def _reconcile(self, namespace: str, name: str) -> None:
        resource = self.kube.get(ROLLOUT_KIND, namespace, name)
        if resource is None or resource["metadata"].get("deletionTimestamp"):
            self.index.forget((namespace, name))
            self._targets_seen.pop((namespace, name), None)
            return
        try:
            observed = self.observe(resource)
        except ValidationError as exc:
            log.error("rollout %s/%s does not match the API model: %s", namespace, name, exc)
            return
        decision = decide_rollout(observed)
        self.carry_out(resource, observed, decision)

    def observe(self, resource: Obj) -> RolloutObserved:
        """The rollout, its targets (one list call) and its children (from the index)."""
        meta = resource["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        spec = DatabaseMigrationRolloutSpec.model_validate(resource.get("spec") or {})
        status = DatabaseMigrationRolloutStatus.model_validate(resource.get("status") or {})
        return RolloutObserved(
            name=name,
            namespace=namespace,
            generation=int(meta.get("generation") or 1),
            spec=spec,
            status=status,
            template_hash=template_hash(spec),
            now=self.clock(),
            annotations=dict(meta.get("annotations") or {}),
            targets=self._targets(namespace, name, spec.targets),
            children=self._children(namespace, name, meta["uid"]),
            watch=watch_enabled(spec.template.to_wire()),
        )

    def _targets(self, namespace: str, name: str, targets: TargetSecrets) -> tuple[Target, ...]:
        """The rollout's targets: listed again when the last list is older than
        ``TARGETS_REFRESH_SECONDS`` or ``spec.targets`` changed."""
        seen = self._targets_seen.get((namespace, name))
        now = self.monotonic()
        if seen is not None and seen[0] == targets and now - seen[1] < TARGETS_REFRESH_SECONDS:
            return seen[2]
        found = {target: Target(target) for target in targets.names}
        selector = secret_selector(targets)
        if selector is not None:
            for item in self.kube.list_pages(
                "Secret", namespace, selector, limit=PAGE, metadata_only=True
            ):
                meta = item.get("metadata") or {}
                found[meta["name"]] = Target(meta["name"], dict(meta.get("labels") or {}))
        listed = tuple(found.values())
        self._targets_seen[(namespace, name)] = (targets, now, listed)
        return listed

    def _children(self, namespace: str, name: str, uid: str) -> tuple[Child, ...]:
        key = (namespace, name)
        if self.index.needs_list(key):
            self.index.replace(
                key,
                self.kube.list_pages(
                    "DatabaseMigration", namespace, children_selector(name), limit=PAGE
                ),
            )
        return self.index.children(key, uid)

    def carry_out(
        self, resource: Obj, observed: RolloutObserved, decision: RolloutDecision
    ) -> None:
        """Status first, then the children, the rollback annotations, Events and a requeue."""
        namespace, name = observed.namespace, observed.name
        if decision.status != observed.status:
            wire = decision.status.model_dump(mode="json", by_alias=True)
            self.kube.patch_status(namespace, name, wire, kind=ROLLOUT_KIND)
        uid = resource["metadata"]["uid"]
        for start in decision.start:
            child = build_child(name, namespace, uid, start.target, start.wave, observed.spec)
            created = self.kube.create_object(child)
            self.index.seen(created if created is not None else self._bring_to_template(child))
            if self.wake_child is not None:  # its first reconcile now, not behind Kopf's queue
                self.wake_child(namespace, child["metadata"]["name"], 0.0)
        for target in decision.rollback:
            token = decision.status.rollback_token or ""
            annotations = {ROLLBACK_ANNOTATION: token}
            try:
                self.index.seen(
                    self.kube.patch_metadata(
                        "DatabaseMigration", namespace, target, {"annotations": annotations}
                    )
                )
            except ApiError as exc:
                if exc.status != 404:
                    raise
        for event in decision.events:
            self.events.emit(resource, event.type, event.reason, event.message)
            for hook in observed.spec.notifications:
                body = notification_body(observed, decision, event, hook)
                self._enqueue((namespace, name), (resource, hook, body))
        if decision.requeue_after is not None:
            self.requeuer.schedule(namespace, name, decision.requeue_after)

    def _enqueue(self, key: tuple[str, str], notification: Notification) -> None:
        """Queue a notification behind the rollout's earlier ones; start a sender for the
        rollout's outbox unless one is draining it."""
        with self._guard:
            queue = self._outbox.get(key)
            self._outbox.setdefault(key, deque()).append(notification)
        if queue is None:  # no sender on this outbox: it was empty and absent
            self._senders.submit(self._drain, key)

    def _drain(self, key: tuple[str, str]) -> None:
        """Send a rollout's notifications one after the other until its outbox is empty."""
        while True:
            with self._guard:
                queue = self._outbox[key]
                if not queue:
                    del self._outbox[key]
                    return
                notification = queue.popleft()
            self._send(*notification)

    def _send(self, resource: Obj, target: RolloutNotificationTarget, body: Any) -> None:
        """One notification to one target (on a sender thread; never raises)."""
        meta = resource["metadata"]
        error: str | None
        try:
            ref = target.secret_ref
            url = self.kube.secret_value(meta["namespace"], ref.name, ref.key)
            if not url or not url.strip().startswith(("http://", "https://")):
                error = f"Secret {ref.name} has no http(s) URL under key {ref.key}"
            else:
                result = asyncio.run(post_with_retries(url.strip(), body, self.policy))
                error = None if result.delivered else result.error
        except Exception as exc:  # a sender thread must survive anything; the rollout goes on
            error = f"could not be sent ({type(exc).__name__})"
        if error is None:
            return
        message = f"notification to target {target.name} failed: {error}; the rollout goes on"
        log.warning("rollout %s/%s: %s", meta["namespace"], meta["name"], message)
        self.events.emit(resource, "Warning", EventReason.NOTIFICATION_FAILED, message)

    def _bring_to_template(self, child: Obj) -> Obj:
        """Replace an existing child's spec with the current one, set its labels and annotations
        (its database label stays: the operator keeps it in step with the child's status); the
        child as the API server answered."""
        meta = child["metadata"]
        ops = template_patch(child, self._annotations(meta["namespace"], meta["name"]))
        patched = self.kube.request(
            "PATCH", path_of("DatabaseMigration", meta["namespace"], meta["name"]), ops,
            content_type=JSON_PATCH,
        )  # fmt: skip
        log.info("brought %s/%s to the rollout's current template", meta["namespace"], meta["name"])
        return patched

    def _annotations(self, namespace: str, name: str) -> dict[str, str]:
        current = self.kube.get("DatabaseMigration", namespace, name) or {}
        return dict((current.get("metadata") or {}).get("annotations") or {})


def notification_body(
    observed: RolloutObserved,
    decision: RolloutDecision,
    event: RolloutEvent,
    target: RolloutNotificationTarget,
) -> Any:
    """The JSON a target receives about ``event`` (or a Slack message)."""
    where = f"{observed.namespace}/{observed.name}"
    if target.format == "slack":
        return {"text": f"dbmigrate rollout {where}: {event.message}"}
    return {
        "kind": ROLLOUT_KIND,
        "namespace": observed.namespace,
        "name": observed.name,
        "generation": observed.generation,
        "event": str(event.reason),
        "wave": event.wave,
        "message": event.message,
        "phase": decision.status.phase,
        "totals": decision.status.totals.to_wire(),
    }
