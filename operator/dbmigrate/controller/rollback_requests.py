"""The I/O around ``decision.on_demand``: rollbacks on demand (MigrationRollback) and the
``dbmigrate.io/rollback`` annotation that asks for one.

``RequestReconciler.reconcile(namespace, name)`` reads the request, the migration it names, its
rollback check Job, the replicas of the workloads it would scale and the other migrations of the
same database, asks ``decide_request``, and carries the decision out: the check Job
(``specs.rollback_check``), then, to start the rollback, the migration's status patch (phase
RollingBack with ``rollbackRequest`` and ``requestedRollback``) followed by a reconcile of the
migration, which runs its own emergency rollback from there; then the request's status, its
Events, and a later look while it is not done.

The annotation alias (``on_annotation``): a DatabaseMigration annotated ``dbmigrate.io/rollback:
TOKEN`` with a token not yet in ``status.lastHandledRollback`` gets a MigrationRollback
``<name>-rollback-<hash of the token>`` (the default strategy and workloads, ``requestedBy`` the
annotation), and the token is echoed to ``status.lastHandledRollback`` once the request exists
(Flux's pattern: a client compares the two to know it was handled).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from dbmigrate import API_GROUP, API_VERSION
from dbmigrate.api.labels import LABEL_ROLLBACK_REQUEST, ROLLBACK_ANNOTATION
from dbmigrate.api.rollback_request import (
    REQUEST_DONE,
    ROLLBACK_KIND,
    MigrationRollbackSpec,
    MigrationRollbackStatus,
)
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.controller.events import EventRecorder
from dbmigrate.controller.kube import ApiError, Kube, Obj
from dbmigrate.controller.reconcile import Reconciler
from dbmigrate.controller.requeue import Requeuer
from dbmigrate.decision.model import job_outcome
from dbmigrate.decision.on_demand import (
    RUNNING_PHASES,
    CheckJob,
    MigrationView,
    RequestDecision,
    RequestObserved,
    decide_request,
    strategy_of,
    workloads_of,
)
from dbmigrate.specs.naming import label_value
from dbmigrate.specs.rollback_check import build_check_job, check_job_name

log = logging.getLogger("dbmigrate.operator")


class RequestReconciler:
    """Reconciles MigrationRollbacks (one at a time per request) beside the migrations'."""

    def __init__(
        self,
        kube: Kube,
        migrations: Reconciler,
        *,
        image: str,
        paused: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.migrations = migrations
        self.image = image
        self.paused = paused
        self.clock = clock
        self.events = EventRecorder(kube)
        self.requeuer = Requeuer(self._requeued)
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def _requeued(self, namespace: str, name: str) -> None:
        try:
            self.reconcile(namespace, name)
        except kopf.TemporaryError as exc:
            self.requeuer.schedule(namespace, name, exc.delay or 5.0)

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring one request a step further; kopf.TemporaryError for what may heal."""
        with self._guard:
            lock = self._locks[(namespace, name)]
        with lock:
            try:
                self._reconcile(namespace, name)
            except ApiError as exc:
                if exc.transient:
                    raise kopf.TemporaryError(f"API server: {exc}", delay=5) from exc
                log.error("reconcile of MigrationRollback %s/%s failed: %s", namespace, name, exc)

    def _reconcile(self, namespace: str, name: str) -> None:
        request = self.kube.get(ROLLBACK_KIND, namespace, name)
        if request is None or request["metadata"].get("deletionTimestamp"):
            return
        try:
            observed = self.observe(request)
        except ValidationError as exc:
            log.error(
                "MigrationRollback %s/%s does not match the API model: %s", namespace, name, exc
            )
            return
        if observed is None:
            return
        decision = decide_request(observed)
        self.act(request, observed, decision)

    def observe(self, request: Obj) -> RequestObserved | None:
        """What decide_request reads (None when the request has ended: nothing to read)."""
        meta = request["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        spec = MigrationRollbackSpec.model_validate(request.get("spec") or {})
        status = MigrationRollbackStatus.model_validate(request.get("status") or {})
        if status.phase in REQUEST_DONE:
            return None
        raw = self.kube.get("DatabaseMigration", namespace, spec.migration)
        migration = _migration_view(raw) if raw is not None else None
        replicas: dict[str, int | None] = {}
        if migration is not None:
            for ref in workloads_of(spec, migration.spec):
                replicas[f"{ref.kind}/{ref.name}"] = self.kube.replicas(
                    ref.kind, namespace, ref.name
                )
        check = None
        selector = f"{LABEL_ROLLBACK_REQUEST}={label_value(name)}"  # the operator may list Jobs
        for job in self.kube.list("Job", namespace, selector):
            if job["metadata"]["name"] == check_job_name(name):
                state, message, _ = job_outcome(job)
                check = CheckJob(name=job["metadata"]["name"], state=state, message=message)
        managed = meta.get("managedFields") or []
        return RequestObserved(
            name=name,
            namespace=namespace,
            generation=int(meta.get("generation") or 1),
            spec=spec,
            status=status,
            created_at=_timestamp(meta.get("creationTimestamp")) or self.clock(),
            now=self.clock(),
            creator=managed[0].get("manager") if managed else None,
            annotations=dict(meta.get("annotations") or {}),
            migration=migration,
            check_job=check,
            replicas=replicas,
            busy=self._busy(namespace, migration),
            operator_paused=self.paused,
        )

    def _busy(self, namespace: str, migration: MigrationView | None) -> tuple[str, ...]:
        """Other migrations of the same database whose run is under way."""
        if migration is None or migration.status.database is None:
            return ()
        key = migration.status.database.key
        busy = []
        for item in self.migrations.database_peers(migration.status):
            meta = item["metadata"]
            if (meta["namespace"], meta["name"]) == (namespace, migration.name):
                continue
            try:
                other = DatabaseMigrationStatus.model_validate(item.get("status") or {})
            except ValidationError:
                continue
            same = other.database is not None and other.database.key == key
            if same and other.phase in RUNNING_PHASES:
                busy.append(f"{meta['namespace']}/{meta['name']} ({other.phase})")
        return tuple(sorted(busy))

    def act(self, request: Obj, observed: RequestObserved, decision: RequestDecision) -> None:
        """Check Job, the migration's rollback, the request's status, Events, requeue."""
        namespace, name = observed.namespace, observed.name
        migration = observed.migration
        if decision.create_check_job and migration is not None:
            job = build_check_job(
                request=name,
                request_uid=request["metadata"]["uid"],
                namespace=namespace,
                migration=migration.name,
                strategy=strategy_of(observed.spec, migration.spec),
                spec=migration.spec,
                status=migration.status,
                image=migration.spec.jobs.image or self.image,
            )
            if self.kube.create(job):
                log.info("created Job %s/%s (rollback check)", namespace, job["metadata"]["name"])
        starting = decision.start_rollback is not None and migration is not None
        if starting and not self._start(namespace, observed.spec.migration, name, decision):
            return  # the migration moved meanwhile: the next look decides again
        if decision.status != observed.status:
            wire = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
            self.kube.patch_status_of(ROLLBACK_KIND, namespace, name, wire)
        for event in decision.events:
            self.events.emit(request, event.type, event.reason, event.message)
        if decision.start_rollback is not None and migration is not None:
            self.migrations.reconcile(namespace, migration.name)
        if decision.requeue_after is not None:
            self.requeuer.schedule(namespace, name, decision.requeue_after)

    def _start(
        self, namespace: str, migration: str, request: str, decision: RequestDecision
    ) -> bool:
        """Move the migration to RollingBack for the request, under the migration's own lock (no
        reconcile of it writes in between) and the lock gate's mutex (no other run of its
        database starts in between), if it is still as it was decided on: Succeeded, and no
        other run of its database under way."""
        assert decision.start_rollback is not None
        lock, gate = (
            self.migrations.resource_lock(namespace, migration),
            self.migrations.lock_gate(),
        )
        with lock, gate:
            fresh = self.kube.get("DatabaseMigration", namespace, migration)
            view = _migration_view(fresh) if fresh is not None else None
            if fresh is None or view is None or not self._still_startable(namespace, view):
                self.requeuer.schedule(namespace, request, 1.0)  # the next look decides again
                return False
            status = view.status
            self.migrations.label_database(fresh, status)  # RollingBack holds the database
            patch = {
                "phase": "RollingBack",
                "rollbackRequest": request,
                "requestedRollback": decision.start_rollback.to_wire(),
                "message": f"rolling back on demand for MigrationRollback {request}",
            }
            self.kube.patch_status(namespace, migration, patch)
        return True

    def _still_startable(self, namespace: str, view: MigrationView) -> bool:
        """Succeeded, and no other run of its database under way: as the decision found it."""
        return view.status.phase == "Succeeded" and not self._busy(namespace, view)

    # --- the annotation alias -------------------------------------------------------------

    def on_annotation(self, namespace: str, name: str) -> None:
        """Create the request a new ``dbmigrate.io/rollback`` token asks for, echo the token."""
        resource = self.kube.get("DatabaseMigration", namespace, name)
        if resource is None:
            return
        token = (resource["metadata"].get("annotations") or {}).get(ROLLBACK_ANNOTATION, "")
        handled = (resource.get("status") or {}).get("lastHandledRollback")
        if not token.strip() or token == handled:
            return
        request = annotation_request_name(name, token)
        body: dict[str, Any] = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": ROLLBACK_KIND,
            "metadata": {"name": request, "namespace": namespace},
            "spec": {
                "migration": name,
                "reason": f"asked by the annotation {ROLLBACK_ANNOTATION}={token}",
                "requestedBy": f"annotation {ROLLBACK_ANNOTATION}",
            },
        }
        self.kube.create(body)
        self.kube.patch_status(namespace, name, {"lastHandledRollback": token})
        log.info("%s/%s: %s=%s asked for MigrationRollback %s", namespace, name,
                 ROLLBACK_ANNOTATION, token, request)  # fmt: skip
        self.reconcile(namespace, request)


def annotation_request_name(migration: str, token: str) -> str:
    """The request an annotation token makes: ``<migration>-rollback-<8 hex of the token>``."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:8]
    return f"{migration[:200]}-rollback-{digest}"


def _migration_view(resource: Obj) -> MigrationView:
    meta = resource["metadata"]
    return MigrationView(
        name=meta["name"],
        generation=int(meta.get("generation") or 1),
        spec=DatabaseMigrationSpec.model_validate(resource.get("spec") or {}),
        status=DatabaseMigrationStatus.model_validate(resource.get("status") or {}),
        annotations=dict(meta.get("annotations") or {}),
    )


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
