"""Conditions in Kubernetes style, and the one helper that sets them.

``Ready``, ``Reconciling`` and ``Stalled`` follow kstatus, so Flux, Argo CD and
``kubectl wait --for=condition=Ready`` judge health without custom code. A condition's
``lastTransitionTime`` changes only when its status flips.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
BACKED_UP = "BackedUp"
MIGRATED = "Migrated"
VERIFIED = "Verified"
ROLLED_BACK = "RolledBack"

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
    type_: str,
    status: ConditionStatus,
    reason: str,
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


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == type_), None)
