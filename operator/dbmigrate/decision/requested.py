"""A rollback on demand, as the migration itself sees it: the spec it rolls back with, how it
ends, and which status keys a new run clears.

When a MigrationRollback starts (``on_demand``), the operator moves the migration from its
terminal phase to RollingBack and records the request in ``status.rollbackRequest`` and
``status.requestedRollback`` (strategy, workloads, reason). From there the migration's own
emergency rollback (``recovery``) runs unchanged, with the request's strategy and workloads in
place of spec.rollback (``with_requested_rollback``, applied where the observation is made, so
the rollback Job, the scale-down and the wait for the pods all use them), and ends RolledBack with
the reason ``RollbackRequested`` naming the request (``requested_cause``). It stays there: a
terminal phase of the current generation is never run again by itself; a new generation (or an
explicit retry) starts a new run, which clears these keys.
"""

from __future__ import annotations

from dataclasses import replace

from dbmigrate.api.conditions import Reason
from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.decision.model import Observed

REQUEST_KEYS = ("rollback_request", "requested_rollback", "rollback_check")


def with_requested_rollback(observed: Observed) -> Observed:
    """``observed`` with spec.rollback replaced by what a running request asked for."""
    asked = observed.status.requested_rollback
    if asked is None or observed.status.phase != "RollingBack":
        return observed
    rollback = observed.spec.rollback.model_copy(
        update={"strategy": asked.strategy, "scale_down": list(asked.scale_down)}
    )
    spec = observed.spec.model_copy(update={"rollback": rollback})
    return replace(observed, spec=spec)


def requested_cause(status: DatabaseMigrationStatus) -> tuple[Reason, str] | None:
    """(RollbackRequested, who asked and why) for a rollback on demand, else None."""
    asked = status.requested_rollback
    if status.rollback_request is None or asked is None:
        return None
    who = f" by {asked.requested_by}" if asked.requested_by else ""
    why = f": {asked.reason}" if asked.reason else ""
    return Reason.ROLLBACK_REQUESTED, (
        f"rolled back on demand, as MigrationRollback {status.rollback_request} asked{who}{why}"
    )
