"""Pure builders of the supporting objects a migration's Jobs need, as plain dicts.

Besides the step Jobs (``jobs.py``) the operator creates, per DatabaseMigration and in its
namespace: the ConfigMap of ``spec.source.inline`` files, a service account for the step pods
(unless ``spec.jobs.serviceAccountName`` names one), and a Role + RoleBinding that let exactly that
service account read this one resource and patch its status, nothing else. Every object is owned
by the resource (controller ownerReference), so the garbage collector removes it with the
resource; backups live on a PVC the operator never owns, so they are never deleted with it.
"""

from __future__ import annotations

from typing import Any

from dbmigrate import API_GROUP, API_VERSION, KIND, PLURAL
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.specs.naming import (
    common_labels,
    inline_config_map_name,
    status_role_name,
    step_service_account_name,
)

MAX_CONFIG_MAP_BYTES = 1_000_000  # the API server refuses ConfigMaps over 1 MiB


def owner_reference(resource: str, uid: str) -> dict[str, Any]:
    """The ownerReference pointing at the DatabaseMigration (controller, blocks its deletion)."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": resource,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_metadata(name: str, resource: str, namespace: str, uid: str) -> dict[str, Any]:
    """metadata of an object owned by the resource, with the common labels."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": common_labels(resource),
        "ownerReferences": [owner_reference(resource, uid)],
    }


def step_service_account(resource: str, spec: DatabaseMigrationSpec) -> str:
    """The service account the step pods run as: the spec's, or the one the operator creates."""
    return spec.jobs.service_account_name or step_service_account_name(resource)


def build_inline_config_map(
    resource: str, namespace: str, uid: str, spec: DatabaseMigrationSpec
) -> dict[str, Any]:
    """The ConfigMap holding ``spec.source.inline`` (key = file name), mounted at /migrations."""
    inline = spec.source.inline
    if not inline:
        raise ValueError("build_inline_config_map needs spec.source.inline")
    data = {item.name: item.sql for item in inline}
    if len(data) != len(inline):
        raise ValueError("spec.source.inline has two files with the same name; rename one")
    size = sum(len(key) + len(value.encode()) for key, value in data.items())
    if size > MAX_CONFIG_MAP_BYTES:
        raise ValueError(
            f"spec.source.inline holds {size} bytes, more than a ConfigMap can (1 MiB): "
            "put the files in a ConfigMap of their own or in the image (spec.source.image)"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned_metadata(inline_config_map_name(resource), resource, namespace, uid),
        "data": data,
    }


def build_step_service_account(resource: str, namespace: str, uid: str) -> dict[str, Any]:
    """The service account of the step pods (only when the spec does not name one)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": owned_metadata(step_service_account_name(resource), resource, namespace, uid),
        "automountServiceAccountToken": True,
    }


def build_status_role(resource: str, namespace: str, uid: str) -> dict[str, Any]:
    """A Role allowing get/patch of this resource's status and get of the resource, nothing more.

    ``resourceNames`` pins it to this one resource: a step pod cannot touch its neighbours.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": owned_metadata(status_role_name(resource), resource, namespace, uid),
        "rules": [
            {
                "apiGroups": [API_GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [resource],
                "verbs": ["get", "patch"],
            },
            {
                "apiGroups": [API_GROUP],
                "resources": [PLURAL],
                "resourceNames": [resource],
                "verbs": ["get"],
            },
        ],
    }


def build_status_role_binding(
    resource: str, namespace: str, uid: str, spec: DatabaseMigrationSpec
) -> dict[str, Any]:
    """Binds the status Role to the step pods' service account."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": owned_metadata(status_role_name(resource), resource, namespace, uid),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": status_role_name(resource),
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": step_service_account(resource, spec),
                "namespace": namespace,
            }
        ],
    }
