"""The one reconcile: observe the cluster, ask the pure ``decide``, carry the Decision out.

Every Kopf handler (create, resume, update, timer, Job events) ends here. ``Reconciler.reconcile``
reads the resource fresh, gathers an ``Observed`` (its Jobs by label and owner, the pods of the
unfinished ones (``steppods``) and what a failed one's pod said when it ended (``failedpods``),
whether the Secret and its keys exist and its resourceVersion, whether the ConfigMap and the
backup PersistentVolumeClaim exist, which other migration holds the same database), calls
``decide`` and carries out the Decision in the order ``decision.model`` documents: status patch,
scaling, supporting objects and the step Job (AlreadyExists is success), Events, deletions, and a
requeue. The notifications a transition makes due (``notifications``) are recorded in that
same status patch, and their Pending deliveries are handed to the ``Notifier`` last, which sends
them in the background: a webhook never holds or fails a reconcile. A delivery's result is written
back under the resource's lock (so a reconcile never overwrites it with an older list), with a
Warning Event and a metric when it failed.

One resource is reconciled by one thread at a time; a restart simply reconciles again, because
Job names are deterministic and the database's history table is the truth of what ran.

What may heal (API server unavailable, throttling) raises ``kopf.TemporaryError``; what will not
(a spec that no longer parses, a forbidden call) is written as ``Stalled`` with a reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, get_args

import kopf
from pydantic import ValidationError

from dbmigrate.api import conditions as cond
from dbmigrate.api.conditions import EventReason, Reason
from dbmigrate.api.labels import LABEL_DATABASE
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import TERMINAL_PHASES, ConditionReason, DatabaseMigrationStatus, Phase
from dbmigrate.api.stepnames import STEPS
from dbmigrate.controller import metrics
from dbmigrate.controller.actuator import DecisionApplier
from dbmigrate.controller.events import EventRecorder
from dbmigrate.controller.failedpods import with_pod_reports
from dbmigrate.controller.kube import ApiError, Kube, Obj
from dbmigrate.controller.requeue import Requeuer
from dbmigrate.controller.settings import DEFAULT_IMAGE
from dbmigrate.controller.steppods import observe_unfinished_step_pods
from dbmigrate.controller.webhooks import Delivery, Notifier, RetryPolicy
from dbmigrate.decision import gate_rules as gates
from dbmigrate.decision import lock_scope
from dbmigrate.decision import notifications as notify
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import (
    Observed,
    SecretObservation,
    StagingMigration,
    StepPods,
    index_jobs,
    observe_job,
    settle_with_step_exit,
)
from dbmigrate.decision.pinning import needs_run_spec, pinned, read_run_spec
from dbmigrate.decision.promotion import needs_staging_migrations
from dbmigrate.decision.recovery import needs_workload_pods
from dbmigrate.decision.requested import with_requested_rollback
from dbmigrate.specs.commands import mounts_backups
from dbmigrate.specs.jobs import required_secret_keys, secret_ref_keys
from dbmigrate.specs.naming import job_selector, run_spec_config_map_name

log = logging.getLogger("dbmigrate.operator")

RECORD_ATTEMPTS = 3  # writes of a delivery's result into the status


class Reconciler:
    """Reconciles DatabaseMigrations; thread-safe, one resource at a time per key."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespaces: Sequence[str] = (),
        image: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notify_targets: Sequence[notify.Target] = (),
        notify_policy: RetryPolicy | None = None,
        paused: bool = False,
    ) -> None:
        self.kube = kube
        self.paused = paused  # the operator-wide pause (``decision.pause``)
        self.namespaces = tuple(namespaces)  # empty: all namespaces
        self.clock = clock
        self.notify_targets = tuple(notify_targets)  # operator-wide (``--notify``)
        self.notify_policy = notify_policy or RetryPolicy()
        self._notifier: Notifier | None = None
        self.events = EventRecorder(kube)
        self.applier = DecisionApplier(kube, self.events, image or DEFAULT_IMAGE)
        self.requeuer = Requeuer(self._requeued)
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._lock_gate = threading.Lock()

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks[(namespace, name)]

    def resource_lock(self, namespace: str, name: str) -> threading.Lock:
        """The lock one reconcile of the resource holds (a rollback on demand starts under it)."""
        return self._lock(namespace, name)

    def lock_gate(self) -> threading.Lock:
        """The mutex under which a run reads who holds its database and writes that it does (a
        rollback on demand that starts takes it too, after the resource's own lock)."""
        return self._lock_gate

    def wake(self, namespace: str, name: str, delay: float = 0.0) -> None:
        """Reconcile the resource ``delay`` seconds from now on the requeuer's thread (a rollout
        wakes the child it just created, without waiting for Kopf's queue)."""
        self.requeuer.schedule(namespace, name, delay)

    def _requeued(self, namespace: str, name: str) -> None:
        try:
            self.reconcile(namespace, name)
        except kopf.TemporaryError as exc:
            self.requeuer.schedule(namespace, name, exc.delay or 5.0)

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring one resource a step further; raises kopf.TemporaryError for what may heal."""
        with self._lock(namespace, name):
            try:
                self._reconcile(namespace, name)
            except ApiError as exc:
                if exc.transient:
                    raise kopf.TemporaryError(f"API server: {exc}", delay=5) from exc
                if exc.status == 404 and self._live(namespace, name) is None:
                    log.info("%s/%s was deleted while it was reconciled", namespace, name)
                    return
                log.error("reconcile of %s/%s failed: %s", namespace, name, exc)
                self._stall(
                    namespace, name, Reason.API_ERROR, f"the operator's API call failed: {exc}"
                )

    def _live(self, namespace: str, name: str) -> Obj | None:
        """The resource, or None when it is gone or being deleted (a 404 then is no error)."""
        resource = self.kube.get("DatabaseMigration", namespace, name)
        if resource is None or resource["metadata"].get("deletionTimestamp"):
            return None
        return resource

    def _reconcile(self, namespace: str, name: str) -> None:
        resource = self._live(namespace, name)
        if resource is None:
            metrics.forget_resource(namespace, name)
            return
        try:
            observed = self.observe(resource)
        except ValidationError as exc:
            self._stall(namespace, name, Reason.INVALID_RESOURCE, _validation_message(exc))
            return
        self.label_database(resource, observed.status)
        with self._lock_gate if gates.needs_lock_check(observed.status) else nullcontext():
            # the other migrations are read, and this one's status written, under one mutex:
            # two resources of one database never both read "nobody holds it" before either
            # has written that it does; the Job and Events follow outside it
            observed = replace(observed, lock_holder=self._lock_holder(observed))
            targets = notify.targets_for(observed.spec, self.notify_targets)
            decision = notify.with_notifications(
                observed.status, decide(observed), targets, observed.now
            )
            self.applier.write_status(observed, decision)
        self.applier.act(resource, observed, decision)
        metrics.observe_status(namespace, name, decision.status)
        if decision.requeue_after is not None:
            self.requeuer.schedule(namespace, name, decision.requeue_after)
        self._send_pending(namespace, name, decision.status, targets)

    # --- notifications -----------------------------------------------------------------------

    def _send_pending(
        self,
        namespace: str,
        name: str,
        status: DatabaseMigrationStatus,
        targets: Sequence[notify.Target],
    ) -> None:
        """Hand every Pending delivery to the notifier (it skips those already under way)."""
        due = notify.pending(status)
        if not due:
            return
        by_key = {(t.source, t.name): t for t in targets}
        for key, record in due:
            target = by_key.get((key.source, key.target))
            fmt: notify.Format = target.format if target is not None else "json"
            body = notify.build_payload(record, fmt, namespace, name)
            self.notifier().submit(Delivery(namespace, name, key, target, body))

    def notifier(self) -> Notifier:
        """The notifier, started on first use (its loop thread lives as long as the process)."""
        with self._guard:
            if self._notifier is None:
                self._notifier = Notifier(
                    self.kube.secret_value, self._delivered, self.notify_policy
                )
            return self._notifier

    def _delivered(self, delivery: Delivery, result: notify.DeliveryResult) -> None:
        """Record a delivery's result in the status (under the resource's lock, so no reconcile
        writes an older list over it); a failure also gets a Warning Event and the metric."""
        namespace, name, key = delivery.namespace, delivery.name, delivery.key
        outcome = "delivered" if result.delivered else "failed"
        metrics.observe_notification(namespace, name, key.target, key.event, outcome)
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                resource = self._record_delivery(delivery, result)
                break
            except ApiError as exc:
                if not exc.transient or attempt == RECORD_ATTEMPTS:
                    raise  # logged by the notifier; the delivery stays Pending (sent again)
                time.sleep(attempt)
        if resource is not None and not result.delivered:
            message = (
                f"notification {key.event} to target {key.target} ({key.source.lower()}) failed "
                f"after {result.attempts} attempt(s): {result.error}; the migration goes on"
            )
            self.events.emit(resource, "Warning", EventReason.NOTIFICATION_FAILED, message)

    def _record_delivery(self, delivery: Delivery, result: notify.DeliveryResult) -> Obj | None:
        """Mark the delivery in status.notifications; the resource, or None when it is gone."""
        namespace, name = delivery.namespace, delivery.name
        with self._lock(namespace, name):
            resource = self._live(namespace, name)
            if resource is None:
                return None
            status = DatabaseMigrationStatus.model_validate(resource.get("status") or {})
            records = notify.record_result(status.notifications, delivery.key, result, self.clock())
            if records is not None:
                wire = [r.to_wire() for r in records]
                self.kube.patch_status(namespace, name, {"notifications": wire})
            return resource

    # --- observing ---------------------------------------------------------------------------

    def observe(self, resource: Obj) -> Observed:
        """Everything decide() reads about this resource, from the API server (Secret values are
        never read); the lock holder is added by the reconcile, under the gate's mutex. While a
        run goes on under a newer generation it decides with the run's kept spec (``pinning``),
        so the Secret, ConfigMap and workloads observed are the ones that spec names."""
        meta = resource["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        generation = int(meta.get("generation") or 1)
        spec = DatabaseMigrationSpec.model_validate(resource.get("spec") or {})
        status = DatabaseMigrationStatus.model_validate(resource.get("status") or {})
        owned = self._owned_jobs(namespace, name, meta["uid"])
        jobs = settle_with_step_exit(self._jobs(owned), status.step_exit)
        observed = with_requested_rollback(
            pinned(
                Observed(
                    name=name,
                    namespace=namespace,
                    uid=meta["uid"],
                    generation=generation,
                    spec=spec,
                    status=status,
                    now=self.clock(),
                    annotations=dict(meta.get("annotations") or {}),
                    jobs=jobs,
                    run_spec=self._run_spec(namespace, name, generation, status),
                    step_pods=self._step_pods(namespace, name, status, owned, jobs),
                    operator_paused=self.paused,
                )
            )
        )
        spec = observed.spec
        return replace(
            observed,
            jobs=self._with_pod_reports(namespace, observed),
            secret=self._secret(namespace, spec),
            config_map_ok=self._config_map_ok(namespace, spec),
            backup_volume_ok=self._backup_volume_ok(namespace, spec),
            workload_pods=self._workload_pods(namespace, spec, status),
            staging_migrations=self._staging_migrations(spec, status),
            staging_secrets=self._staging_secrets(namespace, spec, status),
        )

    def _staging_secrets(
        self, namespace: str, spec: DatabaseMigrationSpec, status: DatabaseMigrationStatus
    ) -> dict[str, SecretObservation]:
        """The Secrets of spec.promotion.requireAppliedIn (key names only), before the backup."""
        if spec.promotion is None or status.phase in TERMINAL_PHASES:
            return {}
        found: dict[str, SecretObservation] = {}
        for staging in spec.promotion.require_applied_in:
            ref = staging.secret_ref
            keys = self.kube.secret_keys(namespace, ref.name)
            missing = tuple(k for k in secret_ref_keys(ref) if keys is not None and k not in keys)
            found[ref.name] = SecretObservation(exists=keys is not None, missing_keys=missing)
        return found

    def _staging_migrations(
        self, spec: DatabaseMigrationSpec, status: DatabaseMigrationStatus
    ) -> dict[str, StagingMigration | None]:
        """The DatabaseMigrations of spec.promotion.requireSucceeded (None: not found or not
        readable as one), while the promotion gate may be asked."""
        if spec.promotion is None or not needs_staging_migrations(spec, status):
            return {}
        found: dict[str, StagingMigration | None] = {}
        for ref in spec.promotion.require_succeeded:
            item = self.kube.get("DatabaseMigration", ref.namespace, ref.name)
            key = f"{ref.namespace}/{ref.name}"
            try:
                found[key] = (
                    None
                    if item is None
                    else StagingMigration(
                        generation=int(item["metadata"].get("generation") or 1),
                        status=DatabaseMigrationStatus.model_validate(item.get("status") or {}),
                    )
                )
            except ValidationError:
                found[key] = None
        return found

    def _run_spec(
        self, namespace: str, name: str, generation: int, status: DatabaseMigrationStatus
    ) -> DatabaseMigrationSpec | None:
        if not needs_run_spec(generation, status):
            return None
        kept = self.kube.get("ConfigMap", namespace, run_spec_config_map_name(name))
        spec = read_run_spec(kept, status.observed_generation)
        if spec is None:
            log.warning(
                "%s/%s: no spec was kept for the run of generation %s; its remaining steps use "
                "generation %s",
                namespace,
                name,
                status.observed_generation,
                generation,
            )
        return spec

    def _workload_pods(
        self, namespace: str, spec: DatabaseMigrationSpec, status: DatabaseMigrationStatus
    ) -> dict[str, tuple[str, ...]]:
        if not needs_workload_pods(spec, status):
            return {}
        return {
            f"{w.kind}/{w.name}": self.kube.pods_left(w.kind, namespace, w.name)
            for w in spec.rollback.scale_down
        }

    def _step_pods(
        self,
        namespace: str,
        name: str,
        status: DatabaseMigrationStatus,
        owned: list[Obj],
        jobs: dict[Any, Any],
    ) -> dict[str, StepPods]:
        """What the unfinished step Jobs' pods say (``steppods``); none once the run has ended,
        where decide looks at no Job."""
        if status.phase in TERMINAL_PHASES:
            return {}
        return observe_unfinished_step_pods(self.kube, namespace, name, owned, jobs.values())

    def _owned_jobs(self, namespace: str, name: str, uid: str) -> list[Obj]:
        return [
            job
            for job in self.kube.list("Job", namespace, job_selector(name))
            if any(ref.get("uid") == uid for ref in job["metadata"].get("ownerReferences", []))
        ]

    def _jobs(self, owned: list[Obj]) -> dict[Any, Any]:
        observations = [o for o in (observe_job(job) for job in owned) if o is not None]
        return dict(index_jobs(observations))

    def _with_pod_reports(self, namespace: str, observed: Observed) -> dict[Any, Any]:
        """The Jobs, a failed one with what its pod said (``failedpods``); unchanged once the
        run has ended (then decide looks at no Job)."""
        if observed.status.phase in TERMINAL_PHASES:
            return dict(observed.jobs)
        return dict(with_pod_reports(self.kube, namespace, observed.jobs))

    def _secret(self, namespace: str, spec: DatabaseMigrationSpec) -> SecretObservation:
        found = self.kube.secret_keys_and_version(namespace, spec.database.secret_ref.name)
        if found is None:
            return SecretObservation(exists=False)
        keys, version = found
        missing = tuple(k for k in required_secret_keys(spec) if k not in keys)
        return SecretObservation(exists=True, missing_keys=missing, version=version)

    def _config_map_ok(self, namespace: str, spec: DatabaseMigrationSpec) -> bool | None:
        if spec.source.config_map is None:
            return None
        return self.kube.get("ConfigMap", namespace, spec.source.config_map.name) is not None

    def _backup_volume_ok(self, namespace: str, spec: DatabaseMigrationSpec) -> bool | None:
        """Whether spec.backup.pvcName exists (None when no step mounts it)."""
        claim = spec.backup.pvc_name
        if claim is None or not any(mounts_backups(step, spec) for step in STEPS):
            return None
        return self.kube.get("PersistentVolumeClaim", namespace, claim) is not None

    def _lock_holder(self, observed: Observed) -> str | None:
        """The migration this one must wait for (``gates.lock_holder``); the others are read
        only where the gate may be crossed (``gates.needs_lock_check``), and only those that
        may share its database (``lock_scope.lock_selectors``)."""
        namespace, name, status = observed.namespace, observed.name, observed.status
        me = gates.lock_candidate(namespace, name, status)
        if me is None or not gates.needs_lock_check(status):
            return None
        others, unlabelled = [], set()
        for item in self.database_peers(status):
            meta = item["metadata"]
            if (meta["namespace"], meta["name"]) == (namespace, name):
                continue
            try:
                other_status = DatabaseMigrationStatus.model_validate(item.get("status") or {})
            except ValidationError:
                continue  # a resource we cannot read does not hold anything we know of
            candidate = gates.lock_candidate(meta["namespace"], meta["name"], other_status)
            if candidate is not None:
                others.append(candidate)
                if LABEL_DATABASE not in (meta.get("labels") or {}):
                    unlabelled.add(candidate.ref)
        holder = gates.lock_holder(me, others)
        if holder in unlabelled:
            log.info("%s/%s waits for %s, found among the unlabelled", namespace, name, holder)
        return holder

    def label_database(self, resource: Obj, status: DatabaseMigrationStatus) -> None:
        """Give the resource the database label its status asks for (``lock_scope``), before
        any status is written: a failed patch raises, so nothing holds or waits unlabelled."""
        meta = resource["metadata"]
        fix = lock_scope.label_fix(meta.get("labels") or {}, status)
        if fix is not None:
            self.kube.patch_metadata(
                "DatabaseMigration", meta["namespace"], meta["name"], {"labels": fix}
            )

    def database_peers(self, status: DatabaseMigrationStatus) -> list[Obj]:
        """Every DatabaseMigration the operator serves that may share the database of
        ``status``: the unlabelled and those labelled alike (``lock_scope.lock_selectors``)."""
        found: dict[str, Obj] = {}
        for selector in lock_scope.lock_selectors(status):
            for item in self._migrations(selector):
                found[item["metadata"]["uid"]] = item  # the later read wins
        return list(found.values())

    def _migrations(self, selector: str) -> list[Obj]:
        if not self.namespaces:
            return self.kube.list("DatabaseMigration", None, selector)
        return [
            i for ns in self.namespaces for i in self.kube.list("DatabaseMigration", ns, selector)
        ]

    # --- stalling ----------------------------------------------------------------------------

    def _stall(self, namespace: str, name: str, reason: Reason, message: str) -> None:
        """Write Stalled=True, Ready=False (the cause) and Reconciling=False (the phase), and the
        message, when decide() cannot even be asked."""
        resource = self.kube.get("DatabaseMigration", namespace, name)
        if resource is None:
            return
        raw = (resource.get("status") or {}).get("conditions") or []
        try:
            current = [cond.Condition.model_validate(c) for c in raw]
        except ValidationError:
            current = []
        now, generation = self.clock(), resource["metadata"].get("generation")
        previous = cond.find_condition(current, cond.STALLED)
        if previous and (previous.status, previous.reason, previous.message) == (
            "True",
            reason,
            message,
        ):
            return  # already said; do not repeat the Event on every resync
        updated = cond.set_condition(
            current, cond.STALLED, "True", reason, message, now=now, generation=generation
        )
        updated = cond.set_condition(
            updated, cond.READY, "False", reason, message, now=now, generation=generation
        )
        phase = (resource.get("status") or {}).get("phase")
        phases: tuple[Phase, ...] = get_args(Phase)
        working: ConditionReason = next((p for p in phases if p == phase), reason)
        updated = cond.set_condition(
            updated, cond.RECONCILING, "False", working, "", now=now, generation=generation
        )
        wire = [c.to_wire() for c in updated]
        try:  # the message too: the one of the last decision may name a Job that never came
            self.kube.patch_status(namespace, name, {"conditions": wire, "message": message})
        except ApiError as exc:
            log.error("could not mark %s/%s Stalled (%s): %s", namespace, name, reason, exc)
            return
        self.events.emit(resource, "Warning", reason, message)


def _validation_message(exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
    )
    return f"the resource does not match the operator's API model ({problems}); fix the spec"
