"""Conditions in Kubernetes style, and the one helper that sets them.

``Ready``, ``Reconciling`` and ``Stalled`` follow kstatus, so Flux, Argo CD and
``kubectl wait --for=condition=Ready`` judge health without custom code; ``BackedUp``,
``Migrated``, ``Verified`` and ``RolledBack`` tell how each step that touches the database went.
The types are spelled here once (``TYPES`` says what each means; docs/conditions.md tells users
what True, False and Unknown mean for each), their reasons in ``api/reasons.py``. A condition's
``lastTransitionTime`` changes only when its status flips.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel

if TYPE_CHECKING:  # reasons.py imports status.py, which imports this module
    from dbmigrate.api.reasons import ConditionReason

ConditionType = Literal[
    "Ready", "Reconciling", "Stalled", "BackedUp", "Migrated", "Verified", "RolledBack"
]
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
BACKED_UP: Final = "BackedUp"
MIGRATED: Final = "Migrated"
VERIFIED: Final = "Verified"
ROLLED_BACK: Final = "RolledBack"

TYPES: dict[ConditionType, str] = {
    READY: "the run reached Succeeded for the current generation (kstatus Current)",
    RECONCILING: "the operator is working towards Ready, or waits for a gate to open",
    STALLED: "the operator cannot go on without a person: a missing prerequisite or a failure",
    BACKED_UP: "whether this run's backup was taken and read back (or why not)",
    MIGRATED: "whether the apply step applied the pending versions",
    VERIFIED: "whether the verify step found every index valid and every probe using it",
    ROLLED_BACK: "whether the rollback after a failed apply or verify restored a verified state",
}

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the resource's state, as in metav1.Condition."""

    type: str = Field(max_length=316, description="Type of condition in CamelCase.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
        description="Machine-readable CamelCase reason of the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this condition was set for."
    )


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: ConditionReason,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; keeps lastTransitionTime if status is unchanged."""
    previous = next((c for c in conditions if c.type == type_), None)
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=(
            previous.last_transition_time
            if previous is not None and previous.status == status
            else now
        ),
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: c.type)


def find_condition(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == type_), None)
