"""A run keeps the spec it started with, even when the resource changes under it.

A spec change while a run is under way is queued (``decide``): the run that has begun changing the
database finishes first. Its later steps must then still run with the spec it was planned and
backed up with (the same database, backup, verification and rollback), not the newer one. So when
a run's plan Job is created, the spec of that generation is kept in a ConfigMap owned by the
resource (``build_run_spec_config_map``); while a newer generation waits for the run, the reconcile
reads it back (``read_run_spec``) and decides with it (``pinned``). Without a kept spec (one too
large for a ConfigMap, or a run begun by an older operator) the current spec is used, as before.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import TERMINAL_PHASES, DatabaseMigrationStatus
from dbmigrate.decision.decide import starts_new_run
from dbmigrate.decision.model import Observed
from dbmigrate.specs.naming import run_spec_config_map_name
from dbmigrate.specs.supporting import MAX_CONFIG_MAP_BYTES, owned_metadata

SPEC_KEY = "spec.json"
GENERATION_KEY = "generation"


def build_run_spec_config_map(
    resource: str, namespace: str, uid: str, generation: int, spec: DatabaseMigrationSpec
) -> dict[str, Any] | None:
    """The ConfigMap keeping generation ``generation``'s spec; None when it would not fit."""
    text = json.dumps(spec.to_wire(), sort_keys=True)
    if len(text.encode()) > MAX_CONFIG_MAP_BYTES:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned_metadata(run_spec_config_map_name(resource), resource, namespace, uid),
        "data": {GENERATION_KEY: str(generation), SPEC_KEY: text},
    }


def needs_run_spec(generation: int, status: DatabaseMigrationStatus) -> bool:
    """Whether a run of an older generation is under way (then its kept spec is read)."""
    run = status.observed_generation
    return run is not None and run < generation and status.phase not in TERMINAL_PHASES


def read_run_spec(
    config_map: dict[str, Any] | None, generation: int | None
) -> DatabaseMigrationSpec | None:
    """The spec kept for run generation ``generation``; None if missing, of another generation
    or unreadable."""
    data = (config_map or {}).get("data") or {}
    if generation is None or data.get(GENERATION_KEY) != str(generation):
        return None
    try:
        return DatabaseMigrationSpec.model_validate(json.loads(data.get(SPEC_KEY) or "null"))
    except (ValueError, ValidationError):
        return None


def pinned(observed: Observed) -> Observed:
    """``observed`` with the run's kept spec in place of the current one while that run goes on
    (unchanged when a new run starts now, or when no spec was kept)."""
    if observed.run_spec is None or starts_new_run(observed):
        return observed
    return replace(observed, spec=observed.run_spec)
