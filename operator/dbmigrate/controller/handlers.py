"""The Kopf handlers: thin, level-based, all calling the one reconcile of ``runtime``.

create, resume, update (spec or the approval annotation changed) and a timer call
``Reconciler.reconcile(namespace, name)``; so does every event of a Job we labelled, so a step that
finishes moves the migration on at once instead of at the next timer tick, and so does a step's
own ``status.stepExit`` (the Job controller notices a pod's end a second or more after it).
Kopf is configured for a standalone operator (no peering: with ``--leader-elect`` Kopf only starts
in the replica holding the Lease, see ``dbmigrate.controller.leader``), keeps its own
bookkeeping in
annotations (never in the status, whose subtrees belong to the operator and the step Jobs), and
logs in with the kubeconfig given to ``dbmigrate operator`` (its embedded client certificates
included) or in-cluster.

Finalizer: Kopf adds ``dbmigrate.io/finalizer`` because of the timer (it stops the timer before the
resource goes away). No cleanup runs on deletion: the Jobs, ConfigMap and RBAC objects are removed
by the garbage collector through their ownerReferences, and backups (on a PVC the operator does
not own) are never deleted.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.api.labels import LABEL_MANAGED_BY, LABEL_MIGRATION, MANAGER
from dbmigrate.api.status import TERMINAL_PHASES
from dbmigrate.api.stepnames import KEY_STEP_EXIT
from dbmigrate.controller.reconcile import Reconciler
from dbmigrate.controller.webhooks import RetryPolicy
from dbmigrate.decision.notifications import Target

log = logging.getLogger("dbmigrate.operator")

FINALIZER = f"{API_GROUP}/finalizer"
RESYNC_SECONDS = float(os.environ.get("DBMIGRATE_RESYNC_SECONDS") or 10.0)


class OperatorConfig:
    """What ``dbmigrate operator`` decided on the command line, read by the startup handler."""

    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()  # the watched namespaces; empty: cluster-wide
    notify_targets: tuple[Target, ...] = ()  # operator-wide notification targets (--notify)
    notify_policy: RetryPolicy | None = None
    reconciler: Reconciler | None = None


def reconciler() -> Reconciler:
    """The process-wide Reconciler (built at startup, after login)."""
    if OperatorConfig.reconciler is None:
        raise kopf.TemporaryError("the operator is still starting", delay=2)
    return OperatorConfig.reconciler


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Standalone, annotations for Kopf's bookkeeping, quiet Kopf-posted events.

    Namespaced (``--namespace``): no cluster-wide scanning of namespaces and CRDs, and every list
    of DatabaseMigrations is made per watched namespace, so a namespaced Role is enough."""
    settings.peering.standalone = True
    if OperatorConfig.namespaces:
        settings.scanning.disabled = True
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own Events tell the story
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    if OperatorConfig.reconciler is None:
        from dbmigrate.controller.kube import Kube, load_api_client

        kube = Kube(load_api_client(OperatorConfig.kubeconfig))
        OperatorConfig.reconciler = Reconciler(
            kube,
            namespaces=OperatorConfig.namespaces,
            notify_targets=OperatorConfig.notify_targets,
            notify_policy=OperatorConfig.notify_policy,
        )


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Credentials from ``--kubeconfig`` (client certificates honoured) or in-cluster."""
    from dbmigrate.controller.kube import load_api_client

    conf = load_api_client(OperatorConfig.kubeconfig).configuration
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


def _reconcile(namespace: str | None, name: str | None) -> None:
    if not namespace or not name:
        return
    reconciler().reconcile(namespace, name)


@kopf.on.create(API_GROUP, API_VERSION, PLURAL)
def on_create(namespace: str | None, name: str, **_: Any) -> None:
    _reconcile(namespace, name)


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL)
def on_resume(namespace: str | None, name: str, **_: Any) -> None:
    _reconcile(namespace, name)


@kopf.on.update(API_GROUP, API_VERSION, PLURAL)
def on_update(namespace: str | None, name: str, **_: Any) -> None:
    _reconcile(namespace, name)


def _active(status: kopf.Status, meta: kopf.Meta, body: kopf.Body, **_: Any) -> bool:
    """The timer runs only while there is something to watch over."""
    if meta.get("deletionTimestamp"):
        return False
    finished = status.get("phase") in TERMINAL_PHASES
    current = status.get("observedGeneration") == meta.get("generation")
    return not (finished and current)


@kopf.timer(
    API_GROUP,
    API_VERSION,
    PLURAL,
    interval=RESYNC_SECONDS,
    initial_delay=RESYNC_SECONDS / 2,
    when=_active,
)
def on_timer(namespace: str | None, name: str, **_: Any) -> None:
    _reconcile(namespace, name)


def _step_exit_pending(status: kopf.Status, **_: Any) -> bool:
    """A step said it ended (status.stepExit) and its Job is still Running in status.jobs."""
    ended = status.get(KEY_STEP_EXIT) or {}
    if ended.get("exitCode") != EXIT_OK:
        return False
    records = status.get("jobs") or []
    return any(r.get("name") == ended.get("job") and r.get("outcome") == "Running" for r in records)


@kopf.on.event(API_GROUP, API_VERSION, PLURAL, when=_step_exit_pending)
def on_step_exit(namespace: str | None, name: str, **_: Any) -> None:
    """A step's pod ended with 0: go on now, not when the Job controller gets to the Job."""
    _reconcile(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER})
def on_job_event(namespace: str | None, labels: kopf.Labels, meta: kopf.Meta, **_: Any) -> None:
    """A step Job changed: reconcile its owner now (the ownerReference names it)."""
    owners = [
        ref["name"]
        for ref in meta.get("ownerReferences", [])
        if ref.get("kind") == "DatabaseMigration"
        and ref.get("apiVersion", "").startswith(API_GROUP)
    ]
    if not owners or not labels.get(LABEL_MIGRATION):
        return
    _reconcile(namespace, owners[0])
