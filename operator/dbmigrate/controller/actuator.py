"""Carrying out a Decision against the API server, in the order restart safety needs.

1. the status patch (operator-owned fields only, through ``/status``, merge patch), skipped when
   nothing changed; 2. scaling: each workload's replicas are recorded in the status *before* it is
   scaled to zero, and marked restored only after they were set back; an Event tells each (with
   the replicas), once: after the record that the scaling was asked for; 3. the step's service
   account, Role, RoleBinding and inline ConfigMap, then the Job (AlreadyExists is success: the
   name is deterministic); 4. Events, only once the status recording the transition is written;
   5. Job deletions. A crash between any two steps is repaired by the next reconcile.
"""

from __future__ import annotations

import logging

from dbmigrate.api.conditions import EventReason
from dbmigrate.api.status import DatabaseMigrationStatus, ScaledWorkload
from dbmigrate.api.stepnames import STEP_PLAN
from dbmigrate.controller.events import EventRecorder
from dbmigrate.controller.kube import ApiError, Kube, Obj, path_of
from dbmigrate.decision.model import Decision, Observed, status_patch
from dbmigrate.decision.pinning import build_run_spec_config_map
from dbmigrate.specs import supporting as objects
from dbmigrate.specs.jobs import build_step_job

log = logging.getLogger("dbmigrate.operator")


class DecisionApplier:
    """Turns a Decision into API calls (see the module docstring)."""

    def __init__(self, kube: Kube, events: EventRecorder, image: str) -> None:
        self.kube = kube
        self.events = events
        self.image = image

    def carry_out(self, resource: Obj, observed: Observed, decision: Decision) -> None:
        """All of it, in order: ``write_status``, then ``act``."""
        self.write_status(observed, decision)
        self.act(resource, observed, decision)

    def write_status(self, observed: Observed, decision: Decision) -> None:
        """Step 1: the status patch (what another reconcile must see, e.g. a held lock)."""
        if decision.status != observed.status or decision.clear_step_keys:
            self.kube.patch_status(
                observed.namespace, observed.name, status_patch(decision)["status"]
            )

    def act(self, resource: Obj, observed: Observed, decision: Decision) -> None:
        """Steps 2-4: scaling, the step Job and its objects, Events, Job deletions."""
        ns = observed.namespace
        status = decision.status
        if decision.scale_down:
            status = self._scale_down(observed, decision, resource)
        if decision.scale_up:
            self._scale_up(observed, status, decision.scale_up, resource)
        if decision.create_job == STEP_PLAN:
            self._keep_run_spec(observed, status)
        if decision.create_job is not None:
            self._create_job(observed, status, decision.create_job)
        for event in decision.events:
            self.events.emit(resource, event.type, event.reason, event.message)
        for job in decision.delete_jobs:
            self._delete_job(ns, job)

    # --- scaling -----------------------------------------------------------------------------

    def _scale_down(
        self, observed: Observed, decision: Decision, resource: Obj
    ) -> DatabaseMigrationStatus:
        ns, name = observed.namespace, observed.name
        recorded = list(decision.status.scaled_workloads)
        known = {(w.kind, w.name) for w in recorded}
        missing = set()
        for ref in decision.scale_down:
            if (ref.kind, ref.name) in known:
                continue
            replicas = self.kube.replicas(ref.kind, ns, ref.name)
            if replicas is None:
                self.events.emit(
                    resource,
                    "Warning",
                    EventReason.WORKLOAD_NOT_FOUND,
                    f"{ref.kind} {ref.name} listed in spec.rollback.scaleDown does not exist; "
                    "recorded with 0 replicas",
                )
                missing.add((ref.kind, ref.name))
            recorded.append(ScaledWorkload(kind=ref.kind, name=ref.name, replicas=replicas or 0))
            known.add((ref.kind, ref.name))
        new = recorded[len(decision.status.scaled_workloads) :]
        if new:
            self._patch_workloads(ns, name, recorded)  # recorded before anything is scaled
        for ref in decision.scale_down:
            self._scale(ref.kind, ns, ref.name, 0)
        for workload in new:  # once each: the record above says it was done
            if (workload.kind, workload.name) in missing:
                continue  # WorkloadNotFound said it; nothing was scaled
            self.events.emit(
                resource,
                "Warning",
                EventReason.WORKLOAD_SCALED_DOWN,
                f"scaled {workload.kind} {workload.name} from {workload.replicas} to 0 replicas "
                "before the rollback; it is scaled back once the rollback verified the database",
            )
        return decision.status.model_copy(update={"scaled_workloads": recorded})

    def _scale_up(
        self,
        observed: Observed,
        status: DatabaseMigrationStatus,
        scale_up: tuple[ScaledWorkload, ...],
        resource: Obj,
    ) -> None:
        ns, name = observed.namespace, observed.name
        scaled = [w for w in scale_up if self._scale(w.kind, ns, w.name, w.replicas)]
        wanted = {(w.kind, w.name) for w in scale_up}
        updated = [
            w.model_copy(update={"restored": True}) if (w.kind, w.name) in wanted else w
            for w in status.scaled_workloads
        ]
        if updated != status.scaled_workloads:
            self._patch_workloads(ns, name, updated)
        for workload in scaled:  # decide lists only the ones not yet marked restored
            self.events.emit(
                resource,
                "Normal",
                EventReason.WORKLOAD_SCALED_UP,
                f"scaled {workload.kind} {workload.name} back to {workload.replicas} replicas "
                "after the rollback",
            )

    def _scale(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        """Scale a workload; False when it does not exist (logged, not an error)."""
        try:
            self.kube.scale(kind, namespace, name, replicas)
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.warning("%s %s/%s is gone; cannot scale it to %d", kind, namespace, name, replicas)
            return False
        return True

    def _patch_workloads(self, ns: str, name: str, workloads: list[ScaledWorkload]) -> None:
        self.kube.patch_status(ns, name, {"scaledWorkloads": [w.to_wire() for w in workloads]})

    # --- the step Job ------------------------------------------------------------------------

    def _keep_run_spec(self, observed: Observed, status: DatabaseMigrationStatus) -> None:
        """Keep the spec a run starts with (``pinning``), before its first Job exists."""
        generation = status.observed_generation
        if generation != observed.generation:
            return  # the spec moved on already: the observed one is not this run's
        ns, name = observed.namespace, observed.name
        kept = build_run_spec_config_map(name, ns, observed.uid, generation, observed.spec)
        if kept is None:
            log.warning("%s/%s: the spec is too large to keep for the run", ns, name)
            return
        self.kube.create_or_update(kept, ("data",))

    def _create_job(self, observed: Observed, status: DatabaseMigrationStatus, step: str) -> None:
        ns, name, uid, spec = observed.namespace, observed.name, observed.uid, observed.spec
        if spec.jobs.service_account_name is None:
            self.kube.create(objects.build_step_service_account(name, ns, uid))
        self.kube.create_or_update(objects.build_status_role(name, ns, uid), ("rules",))
        binding = objects.build_status_role_binding(name, ns, uid, spec)
        self.kube.create_or_update(binding, ("subjects",))
        if spec.source.inline:
            config_map = objects.build_inline_config_map(name, ns, uid, spec)
            self.kube.create_or_update(config_map, ("data",))
        job = build_step_job(
            name,
            ns,
            uid,
            _job_generation(status, step, observed.generation),
            step,
            spec,
            status.run_id or "",
            self.image,
            status=status,
        )
        if self.kube.create(job):
            log.info("created Job %s/%s (%s)", ns, job["metadata"]["name"], step)

    def _delete_job(self, namespace: str, job: str) -> None:
        try:
            self.kube.request(
                "DELETE",
                path_of("Job", namespace, job),
                {"propagationPolicy": "Background"},
            )
        except ApiError as exc:
            if exc.status != 404:
                raise


def _job_generation(status: DatabaseMigrationStatus, step: str, default: int) -> int:
    """The generation of the newest JobRecord of ``step`` (decide records it before creating)."""
    records = [j.generation for j in status.jobs if j.step == step]
    return max(records) if records else default
