"""``dbmigrate wait --resource NS/NAME``: judge a DatabaseMigration's status, for clusters where
the application's pods cannot read the database's history table.

The status carries the kstatus conditions the operator writes (see ``outcome.py``): Ready=True
once the migration succeeded, Stalled=True when a person must act, and the phase. ``judge_resource``
is the pure decision over the object the API server returned (a regression the performance
watch found after Succeeded does not hold the application back: its schema is in place, and
Ready=False there tells GitOps, not the init container; see docs/conditions.md);
``ResourceReader`` fetches it with the operator's own REST access (``kube.py``: a kubeconfig,
or the pod's service account in a cluster), so the init container needs only ``get`` on
databasemigrations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dbmigrate.api.conditions import READY, STALLED
from dbmigrate.engine.after.readiness import Verdict

FAILED_PHASES = ("Failed", "RolledBack")


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


def _why(condition: Mapping[str, Any] | None) -> str:
    if condition is None:
        return ""
    reason = condition.get("reason") or ""
    message = condition.get("message") or ""
    return f"{reason}: {message}" if reason and message else str(reason or message)


def _version(text: object) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def judge_resource(obj: Mapping[str, Any] | None, name: str, version: int | None = None) -> Verdict:
    """The verdict on a DatabaseMigration (None: it does not exist yet). Ready=True counts only
    once the operator has observed the current generation (so a spec just changed is not taken
    for the old run's success) and, with ``version``, once the applied version reached it."""
    if obj is None:
        return Verdict("waiting", f"{name} does not exist yet")
    status: Mapping[str, Any] = obj.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed != generation:
        return Verdict(
            "waiting",
            f"{name}: the operator has not acted on generation {generation} yet "
            f"(observed {observed if observed is not None else 'none'}, phase {phase})",
        )
    stalled = _condition(status, STALLED)
    if phase in FAILED_PHASES:
        why = _why(stalled) or str(status.get("message") or "")
        return Verdict("failed", f"{name} is {phase}: {why}".rstrip(": "))
    stalled_now = stalled is not None and stalled.get("status") == "True"
    regressed = stalled_now and phase == "Succeeded"  # only the performance watch does this
    if stalled_now and not regressed:
        return Verdict("failed", f"{name} is stalled ({_why(stalled)}); a person must act")
    ready = _condition(status, READY)
    current = _version(status.get("currentVersion"))
    if regressed or (ready is not None and ready.get("status") == "True"):
        if version is not None and (current is None or current < version):
            return Verdict(
                "waiting",
                f"{name} is Ready at version {current if current is not None else 'none'}; "
                f"waiting for version {version}",
            )
        if regressed:
            return Verdict(
                "ready",
                f"{name} is applied (phase {phase}, version {current}) and the application may "
                f"start, but its performance watch found a regression ({_why(stalled)})",
            )
        return Verdict("ready", f"{name} is Ready (phase {phase}, version {current})")
    why = _why(ready)
    return Verdict("waiting", f"{name} is {phase}" + (f" ({why})" if why else ""))


class ResourceReader:
    """Reads one DatabaseMigration through the API server (kubeconfig or in-cluster)."""

    def __init__(self, namespace: str, name: str, kubeconfig: str | None = None) -> None:
        from dbmigrate.controller.kube import Kube, load_api_client

        self.namespace = namespace
        self.name = name
        self._kube = Kube(load_api_client(kubeconfig), timeout=15.0)

    def read(self) -> dict[str, Any] | None:
        """The object, or None when it does not exist; ``ApiError`` when the call fails."""
        return self._kube.get("DatabaseMigration", self.namespace, self.name)
