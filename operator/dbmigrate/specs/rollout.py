"""Pure builders of what a DatabaseMigrationRollout creates: one child DatabaseMigration per target.

A child is the rollout's template with ``database`` pointing at the target's Secret (the keys the
rollout's ``targets`` name), owned by the rollout (ownerReferences: deleting the rollout deletes
its children, and their Jobs with them), labelled with the rollout and its wave (one list call by
label finds every child), and annotated with the target's Secret and the template's hash (a child
with another hash is brought to the current template when its wave comes). Names are
deterministic (``<rollout>-<secret>``, shortened with a hash when needed), so creating a child
twice is a harmless AlreadyExists.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dbmigrate import API_GROUP, API_VERSION, KIND
from dbmigrate.api.labels import (
    APP_NAME,
    DATABASE_UNPLANNED,
    LABEL_DATABASE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_ROLLOUT,
    LABEL_WAVE,
    MANAGER,
    TARGET_ANNOTATION,
    TEMPLATE_HASH_ANNOTATION,
)
from dbmigrate.api.rollout import ROLLOUT_KIND, DatabaseMigrationRolloutSpec, TargetSecrets
from dbmigrate.specs.naming import dns_label, label_value

Obj = dict[str, Any]


def template_hash(spec: DatabaseMigrationRolloutSpec) -> str:
    """sha256 (16 hex digits) of the template and the targets' Secret keys: what a child is."""
    keys = spec.targets.model_dump(mode="json", exclude={"selector", "names"})
    text = json.dumps([spec.template.to_wire(), keys], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def child_name(rollout: str, target: str) -> str:
    """The child DatabaseMigration of ``target`` (a Secret name)."""
    return dns_label(f"{rollout}-{target}")


def children_selector(rollout: str) -> str:
    """The label selector of every child of ``rollout``, for one list call."""
    return f"{LABEL_ROLLOUT}={label_value(rollout)},{LABEL_MANAGED_BY}={MANAGER}"


def secret_ref(target: str, targets: TargetSecrets) -> Obj:
    """spec.database.secretRef of a child: the target's Secret, with the rollout's keys."""
    ref: Obj = {"name": target}
    if targets.uri_key is not None:
        ref["uriKey"] = targets.uri_key
    else:
        ref.update(
            hostKey=targets.host_key,
            portKey=targets.port_key,
            dbnameKey=targets.dbname_key,
            userKey=targets.user_key,
            passwordKey=targets.password_key,
        )
    return ref


def build_child(
    rollout: str,
    namespace: str,
    uid: str,
    target: str,
    wave: str,
    spec: DatabaseMigrationRolloutSpec,
) -> Obj:
    """The child DatabaseMigration of ``target`` in ``wave``."""
    database = {"secretRef": secret_ref(target, spec.targets), "sslMode": spec.targets.ssl_mode}
    owner = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": ROLLOUT_KIND,
        "name": rollout,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {
            "name": child_name(rollout, target),
            "namespace": namespace,
            "labels": {
                LABEL_NAME: APP_NAME,
                LABEL_MANAGED_BY: MANAGER,
                LABEL_ROLLOUT: label_value(rollout),
                LABEL_WAVE: wave,
                LABEL_DATABASE: DATABASE_UNPLANNED,  # the operator's until the plan (lock_scope)
            },
            "annotations": {
                TARGET_ANNOTATION: target,
                TEMPLATE_HASH_ANNOTATION: template_hash(spec),
            },
            "ownerReferences": [owner],
        },
        "spec": {**spec.template.to_wire(), "database": database},
    }


def template_patch(child: Obj, annotations: dict[str, str]) -> list[Obj]:
    """The JSON patch bringing an existing child to ``child`` (``build_child``'s): its spec
    replaced, each of its labels and annotations set over the ``annotations`` it has. Its
    database label is left alone: the operator keeps it in step with the child's status, and a
    reset could hide a run that holds its database from the lock gate."""
    meta = child["metadata"]
    labels = [
        {"op": "add", "path": f"/metadata/labels/{key.replace('/', '~1')}", "value": value}
        for key, value in meta["labels"].items()
        if key != LABEL_DATABASE
    ]
    merged = {**annotations, **meta["annotations"]}
    return [
        {"op": "replace", "path": "/spec", "value": child["spec"]},
        *labels,
        {"op": "add", "path": "/metadata/annotations", "value": merged},
    ]
