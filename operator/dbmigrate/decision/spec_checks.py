"""What the API server cannot refuse in a spec, refused before a run's first Job.

The CRD's CEL rules refuse most malformed specs at ``kubectl apply``. Two checks need more than
CEL has: whether a time zone exists (the zone database) and what a probe query does (PostgreSQL's
parse tree: a ``WITH ... DELETE`` or ``SELECT ... INTO`` starts like a query). They are made here,
before every step Job (``transitions.prerequisite_problem`` asks first), so a spec that would
only fail hours later, after the backup and the apply, stalls at once in Pending with a message
naming the field and how to fix it; a new generation (the fix) starts a new run.
"""

from __future__ import annotations

from dbmigrate.api.conditions import Reason
from dbmigrate.api.probesql import probe_problem
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.decision.gate_rules import InvalidMaintenanceWindow, validate_window


def spec_problem(spec: DatabaseMigrationSpec) -> tuple[Reason, str] | None:
    """(reason, message) of the first field admission could not check and that is wrong."""
    if spec.maintenance_window is not None:
        try:
            validate_window(spec.maintenance_window)
        except InvalidMaintenanceWindow as exc:
            return Reason.INVALID_MAINTENANCE_WINDOW, f"spec.{exc}; fix spec.maintenanceWindow"
    for position, probe in enumerate(spec.verification.probes):
        problem = probe_problem(probe.sql)
        if problem is not None:
            field = f"spec.verification.probes[{position}].sql"
            return Reason.INVALID_SPEC, (
                f"{field} (probe {probe.name}) is not a read-only query: {problem}. Fix the "
                "probe (a new generation starts a new run); nothing was run"
            )
    return None
