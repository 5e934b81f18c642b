"""Staging → production promotion: what counts as "these files already succeeded elsewhere".

A DatabaseMigration with ``spec.promotion`` waits (``WaitingForPromotion``) until every version
its plan would apply is recorded in each staging source as applied, not rolled back, with the
same checksum, and (for a staging DatabaseMigration) without a ``Regressed`` performance verdict.
The plan step checks staging databases (``requireAppliedIn``, it reaches them as it reaches the
migrated one) and reports ``status.promotion``; the operator checks staging DatabaseMigrations
(``requireSucceeded``, it reads them) into ``status.promotionMigrations``. Both sides judge with
``check_versions``, so the rule is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from dbmigrate.api.base import ApiModel

MAX_LISTED = 20  # versions named per list (a message stays readable)


class VersionMismatch(ApiModel):
    """A version staging has, but not as it would be applied here."""

    version: int = Field(description="The version.")
    expected_checksum: str = Field(description="sha256 of the file this run would apply.")
    staging_checksum: str | None = Field(
        default=None, description="sha256 recorded in staging (unset when the state differs)."
    )
    staging_status: str = Field(description="Its state in staging: applied, rolled_back, ...")


class PromotionCheck(ApiModel):
    """One staging source, judged against the versions this run would apply."""

    source: str = Field(
        description="The source: 'database <secret>' (requireAppliedIn) or "
        "'migration <namespace>/<name>' (requireSucceeded)."
    )
    passed: bool = Field(description="Whether every pending version succeeded there.")
    missing: list[int] = Field(
        default_factory=list, description="Pending versions staging has no record of."
    )
    different: list[VersionMismatch] = Field(
        default_factory=list,
        description="Pending versions staging has with another checksum, or not applied.",
    )
    message: str = Field(description="What was found, in a sentence.")


class PromotionEvidence(ApiModel):
    """The plan step's checks of the staging databases (spec.promotion.requireAppliedIn)."""

    passed: bool = Field(description="Whether every staging database passed.")
    checked_at: datetime = Field(description="When the plan step checked.")
    checks: list[PromotionCheck] = Field(
        default_factory=list, description="One check per staging database."
    )


@dataclass(frozen=True)
class StagedVersion:
    """A version as a staging source records it."""

    version: int
    status: str  # the history table's: applied, rolled_back, failed, running, pending
    checksum: str


@dataclass(frozen=True)
class WantedVersion:
    """A version this run would apply, with the checksum of its file."""

    version: int
    checksum: str


def _listed(versions: Iterable[int]) -> str:
    shown = [str(v) for v in versions]
    more = len(shown) - MAX_LISTED
    return ", ".join(shown[:MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def check_versions(
    source: str,
    wanted: Iterable[WantedVersion],
    staged: Mapping[int, StagedVersion],
    *,
    problem: str | None = None,
) -> PromotionCheck:
    """Judge one source: every wanted version applied there with the same checksum.

    ``problem`` (the source cannot be read, or its run regressed) fails the check whatever the
    versions say; the message names it first.
    """
    missing: list[int] = []
    different: list[VersionMismatch] = []
    for want in sorted(wanted, key=lambda w: w.version):
        found = staged.get(want.version)
        if found is None:
            missing.append(want.version)
        elif found.status != "applied" or found.checksum != want.checksum:
            different.append(
                VersionMismatch(
                    version=want.version,
                    expected_checksum=want.checksum,
                    staging_checksum=found.checksum,
                    staging_status=found.status,
                )
            )
    parts: list[str] = [problem] if problem else []
    if missing:
        parts.append(f"version(s) {_listed(missing)} not applied there yet")
    changed = [d.version for d in different if d.staging_checksum != d.expected_checksum]
    if changed:
        parts.append(f"version(s) {_listed(changed)} applied there from a different file")
    other = [d for d in different if d.staging_checksum == d.expected_checksum]
    if other:
        states = ", ".join(f"{d.version} ({d.staging_status})" for d in other[:MAX_LISTED])
        parts.append(f"version(s) {states} not applied there")
    passed = not parts
    message = "every pending version succeeded there" if passed else "; ".join(parts)
    return PromotionCheck(
        source=source, passed=passed, missing=missing, different=different, message=message
    )


def summary(checks: Iterable[PromotionCheck]) -> str:
    """One line naming every source that has not passed, and why."""
    return "; ".join(f"{c.source}: {c.message}" for c in checks if not c.passed)
