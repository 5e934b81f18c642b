"""The Kopf handlers: thin, level-based, all calling the one reconcile of ``reconcile``.

DatabaseMigrationRollouts have handlers of their own (``rollout_handlers``), registered here too.

create, resume, update (spec or the approval annotation changed) and a timer call
``Reconciler.reconcile(namespace, name)``; so does every event of a Job we labelled, so a step that
finishes moves the migration on at once instead of at the next timer tick, and so does a step's
own ``status.stepExit`` (the Job controller notices a pod's end a second or more after it).

The handlers are registered by ``register(registry, settings)`` on a registry of their own, with
the ``OperatorSettings`` that ``dbmigrate operator`` built (the timer's interval is one of them:
Kopf fixes it at registration), and ``run(settings)`` hands that registry to ``kopf.run``. Nothing
is registered on import, and no configuration is read from the environment here.

Kopf is configured for a standalone operator (no peering: with ``--leader-elect`` Kopf only starts
in the replica holding the Lease, see ``dbmigrate.controller.leader``), keeps its own
bookkeeping in annotations (never in the status, whose subtrees belong to the operator and the step
Jobs), and logs in with the kubeconfig given to ``dbmigrate operator`` (its embedded client
certificates included) or in-cluster.

Finalizer: Kopf adds ``dbmigrate.io/finalizer`` because of the timer (it stops the timer before the
resource goes away). No cleanup runs on deletion: the Jobs, ConfigMap and RBAC objects are removed
by the garbage collector through their ownerReferences, and backups (on a PVC the operator does
not own) are never deleted.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.api.labels import (
    FINALIZER,
    KOPF_ANNOTATION_PREFIX,
    LABEL_DATABASE,
    LABEL_MANAGED_BY,
    LABEL_MIGRATION,
    LABEL_ROLLBACK_REQUEST,
    MANAGER,
    RETRY_ANNOTATION,
    ROLLBACK_ANNOTATION,
)
from dbmigrate.api.rollback_request import ROLLBACK_KIND, ROLLBACK_PLURAL
from dbmigrate.api.status import TERMINAL_PHASES
from dbmigrate.api.stepnames import KEY_STEP_EXIT
from dbmigrate.controller import rollout_handlers
from dbmigrate.controller.reconcile import Reconciler
from dbmigrate.controller.rollback_requests import RequestReconciler
from dbmigrate.controller.settings import OperatorSettings

log = logging.getLogger("dbmigrate.operator")

RESOURCE = (API_GROUP, API_VERSION, PLURAL)
REQUESTS = (API_GROUP, API_VERSION, ROLLBACK_PLURAL)


def run(settings: OperatorSettings) -> None:
    """Run Kopf standalone with our handlers, configured by ``settings``, until it is stopped."""
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    kopf.run(
        registry=registry,
        settings=kopf_settings(settings),
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness,
    )


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """Standalone, annotations for Kopf's bookkeeping, quiet Kopf-posted events.

    Namespaced (``--namespace``): no cluster-wide scanning of namespaces and CRDs, and every list
    of DatabaseMigrations is made per watched namespace, so a namespaced Role is enough."""
    kopf_conf = kopf.OperatorSettings()
    kopf_conf.peering.standalone = True
    if not settings.clusterwide:
        kopf_conf.scanning.disabled = True
    kopf_conf.persistence.finalizer = FINALIZER
    kopf_conf.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=KOPF_ANNOTATION_PREFIX
    )
    kopf_conf.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    kopf_conf.posting.level = logging.WARNING  # our own Events tell the story
    kopf_conf.execution.max_workers = 16
    kopf_conf.watching.server_timeout = 300
    kopf_conf.watching.client_timeout = 330
    kopf_conf.networking.request_timeout = 60
    return kopf_conf


class Handlers:
    """The handlers of one operator: its settings, and the Reconciler built at startup."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self._reconciler: Reconciler | None = None
        self._requests: RequestReconciler | None = None
        self.rollouts = rollout_handlers.RolloutHandlers()

    def startup(self, **_: Any) -> None:
        """Build the Reconciler (after login: its client uses the same credentials)."""
        if self._reconciler is not None:
            return
        from dbmigrate.controller.kube import Kube, load_api_client

        kube = Kube(load_api_client(self.settings.kubeconfig))
        self._reconciler = Reconciler(
            kube,
            namespaces=self.settings.namespaces,
            image=self.settings.job_image,
            notify_targets=self.settings.notify_targets,
            notify_policy=self.settings.notify_policy,
            paused=self.settings.paused,
        )
        self.rollouts.startup(kube, self._reconciler.wake)
        self._requests = RequestReconciler(
            kube, self._reconciler, image=self.settings.job_image, paused=self.settings.paused
        )

    def login(self, **_: Any) -> kopf.ConnectionInfo:
        """Credentials from ``--kubeconfig`` (client certificates honoured) or in-cluster."""
        return connection_info(self.settings.kubeconfig)

    def reconcile(self, namespace: str | None, name: str | None, **_: Any) -> None:
        """Reconcile the named DatabaseMigration (every resource handler ends here)."""
        if not namespace or not name:
            return
        if self._reconciler is None:
            raise kopf.TemporaryError("the operator is still starting", delay=2)
        self._reconciler.reconcile(namespace, name)

    def reconcile_request(self, namespace: str | None, name: str | None, **_: Any) -> None:
        """Reconcile the named MigrationRollback (a rollback on demand)."""
        if not namespace or not name:
            return
        if self._requests is None:
            raise kopf.TemporaryError("the operator is still starting", delay=2)
        self._requests.reconcile(namespace, name)

    def on_rollback_annotation(self, namespace: str | None, name: str | None, **_: Any) -> None:
        """A DatabaseMigration carries dbmigrate.io/rollback: make the request it asks for."""
        if not namespace or not name:
            return
        if self._requests is None:
            raise kopf.TemporaryError("the operator is still starting", delay=2)
        self._requests.on_annotation(namespace, name)

    def on_check_job_event(self, namespace: str | None, meta: kopf.Meta, **_: Any) -> None:
        """A rollback check Job changed: reconcile the request that owns it."""
        owners = [
            ref["name"]
            for ref in meta.get("ownerReferences", [])
            if ref.get("kind") == ROLLBACK_KIND
        ]
        if owners:
            self.reconcile_request(namespace, owners[0])

    def on_job_event(
        self, namespace: str | None, labels: kopf.Labels, meta: kopf.Meta, **_: Any
    ) -> None:
        """A step Job changed: reconcile its owner now (the ownerReference names it)."""
        owners = [
            ref["name"]
            for ref in meta.get("ownerReferences", [])
            if ref.get("kind") == "DatabaseMigration"
            and ref.get("apiVersion", "").startswith(API_GROUP)
        ]
        if not owners or not labels.get(LABEL_MIGRATION):
            return
        self.reconcile(namespace, owners[0])


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> Handlers:
    """Register the operator's handlers, configured by ``settings``, on ``registry``.

    The ids are the handlers' historic function names: Kopf keys its bookkeeping annotations by
    them, so a resource handled by an older operator is picked up where it was left."""
    handlers = Handlers(settings)
    kopf.on.startup(id="configure", registry=registry)(handlers.startup)
    kopf.on.login(id="login", registry=registry)(handlers.login)
    for on, handler_id in ((kopf.on.create, "on_create"), (kopf.on.resume, "on_resume")):
        on(*RESOURCE, id=handler_id, registry=registry)(handlers.reconcile)
    kopf.on.update(*RESOURCE, id="on_update", when=_not_only_database_label, registry=registry)(
        handlers.reconcile
    )
    kopf.timer(
        *RESOURCE,
        id="on_timer",
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds / 2,
        when=_active,
        registry=registry,
    )(handlers.reconcile)
    # a step said it ended with 0: go on now, not when the Job controller gets to the Job
    kopf.on.event(*RESOURCE, id="on_step_exit", when=_step_exit_pending, registry=registry)(
        handlers.reconcile
    )
    kopf.on.event(
        "batch",
        "v1",
        "jobs",
        id="on_job_event",
        labels={LABEL_MANAGED_BY: MANAGER},
        registry=registry,
    )(handlers.on_job_event)
    _register_requests(registry, handlers)
    rollout_handlers.register(registry, settings, handlers.rollouts)
    return handlers


def _register_requests(registry: kopf.OperatorRegistry, handlers: Handlers) -> None:
    """Rollbacks on demand: the MigrationRollback's own events, its check Job's, and the
    dbmigrate.io/rollback annotation on a DatabaseMigration."""
    for on, handler_id in (
        (kopf.on.create, "on_request_create"),
        (kopf.on.resume, "on_request_resume"),
        (kopf.on.update, "on_request_update"),
    ):
        on(*REQUESTS, id=handler_id, registry=registry)(handlers.reconcile_request)
    kopf.on.event(
        "batch",
        "v1",
        "jobs",
        id="on_check_job_event",
        labels={LABEL_ROLLBACK_REQUEST: kopf.PRESENT},
        registry=registry,
    )(handlers.on_check_job_event)
    kopf.on.event(
        *RESOURCE,
        id="on_rollback_annotation",
        annotations={ROLLBACK_ANNOTATION: kopf.PRESENT},
        registry=registry,
    )(handlers.on_rollback_annotation)


def connection_info(kubeconfig: str | None) -> kopf.ConnectionInfo:
    """Kopf's credentials from ``kubeconfig`` (client certificates honoured) or in-cluster."""
    from dbmigrate.controller.kube import load_api_client

    conf = load_api_client(kubeconfig).configuration
    header: str = conf.get_api_key_with_prefix("BearerToken") or ""
    scheme, _sep, token = header.partition(" ") if " " in header else ("", "", header)
    return kopf.ConnectionInfo(
        server=conf.host,
        ca_path=conf.ssl_ca_cert,
        insecure=not conf.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=conf.cert_file,
        private_key_path=conf.key_file,
    )


def _active(status: kopf.Status, meta: kopf.Meta, body: kopf.Body, **_: Any) -> bool:
    """The timer runs only while there is something to watch over: a run under way, an
    automatic retry scheduled, or a retry asked for and not yet handled."""
    if meta.get("deletionTimestamp"):
        return False
    finished = status.get("phase") in TERMINAL_PHASES
    current = status.get("observedGeneration") == meta.get("generation")
    retrying = bool((status.get("retry") or {}).get("nextAttemptAt"))
    asked = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
    retry_asked = bool(asked) and asked != status.get("lastHandledRetry")
    return not (finished and current) or retrying or retry_asked


def _not_only_database_label(diff: kopf.Diff, **_: Any) -> bool:
    """An update is worth a reconcile unless all it changed is the database label, which the
    operator itself sets (``lock_scope``) right before the status it is reconciling: a
    reconcile for it would read the same state again."""
    return not diff or not all(_database_label_only(item) for item in diff)


def _database_label_only(item: kopf.DiffItem) -> bool:
    path = tuple(item.field)
    if path == ("metadata", "labels", LABEL_DATABASE):
        return True
    if path != ("metadata", "labels"):
        return False
    old, new = dict(item.old or {}), dict(item.new or {})
    old.pop(LABEL_DATABASE, None)
    new.pop(LABEL_DATABASE, None)
    return old == new


def _step_exit_pending(status: kopf.Status, **_: Any) -> bool:
    """A step said it ended (status.stepExit) and its Job is still Running in status.jobs."""
    ended = status.get(KEY_STEP_EXIT) or {}
    if ended.get("exitCode") != EXIT_OK:
        return False
    records = status.get("jobs") or []
    return any(r.get("name") == ended.get("job") and r.get("outcome") == "Running" for r in records)
