"""Generates the CRDs (DatabaseMigration, MigrationRollback) from the pydantic models: one
schema each, never hand-written.

pydantic's JSON schema is turned into a structural OpenAPI v3 schema as the API server wants it:
``$ref`` inlined, ``anyOf [X, null]`` collapsed to X, titles dropped, ``additionalProperties:
false`` dropped (unknown fields are refused by strict field validation instead), object defaults
reduced to ``{}`` so the API server applies the nested defaults itself. A field without a
description is an error: ``kubectl explain`` must document the whole API.
"""

from __future__ import annotations

from typing import Any

import yaml

from dbmigrate import API_GROUP, API_VERSION, KIND, PLURAL
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseMigrationStatus

KEPT_KEYS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Target", "type": "string", "jsonPath": ".status.targetVersion"},
    {"name": "Applied", "type": "string", "jsonPath": ".status.currentVersion"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


class SchemaError(ValueError):
    """The models cannot be expressed as a structural CRD schema."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a ``$ref`` and collapse ``anyOf [X, null]`` into X, keeping the outer keys."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"unions are not structural: {node.get('description', node)}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(options[0], defs), **rest}
    return node


def _structural(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Convert one pydantic schema node (recursively) into a structural CRD schema node."""
    node = _resolve(node, defs)
    out: dict[str, Any] = {k: v for k, v in node.items() if k in KEPT_KEYS}
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    if "properties" in out:
        out["type"] = "object"
        out["properties"] = {
            name: _structural(child, defs, f"{path}.{name}")
            for name, child in out["properties"].items()
        }
        for name, child in out["properties"].items():
            if not child.get("description"):
                raise SchemaError(f"{path}.{name} has no description")
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(out["additionalProperties"], defs, path + ".*")
    if "items" in out:
        out["items"] = _structural(out["items"], defs, path + "[]")
    if out.get("default") is None:
        out.pop("default", None)
    elif isinstance(out["default"], dict):
        out["default"] = {}
    return out


def openapi_schema(model: type[Any], path: str) -> dict[str, Any]:
    """The structural schema of one pydantic model (spec or status)."""
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    return _structural(raw, raw.get("$defs", {}), path)


ROLLBACK_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Migration", "type": "string", "jsonPath": ".spec.migration"},
    {"name": "Strategy", "type": "string", "jsonPath": ".status.plan.strategy"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Data-Loss", "type": "boolean", "jsonPath": ".status.dataLoss.lossFound"},
    {"name": "By", "type": "string", "priority": 1, "jsonPath": ".status.requestedBy"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _definition(
    kind: str,
    plural: str,
    short: str,
    description: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    """A namespaced CustomResourceDefinition of the API group with a status subresource."""
    root = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},  # the API server allows nothing more here
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["dbmigrate"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object of DatabaseMigration."""
    return _definition(
        KIND,
        PLURAL,
        "dbm",
        "DatabaseMigration migrates one PostgreSQL database safely: plan and lint, "
        "gates, backup, apply, verify, and an emergency rollback when a check fails.",
        openapi_schema(DatabaseMigrationSpec, "spec"),
        openapi_schema(DatabaseMigrationStatus, "status"),
        PRINTER_COLUMNS,
    )


def build_rollback_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object of MigrationRollback (a rollback on demand)."""
    from dbmigrate.api.rollback_request import (
        ROLLBACK_KIND,
        ROLLBACK_PLURAL,
        ROLLBACK_SHORT_NAME,
        MigrationRollbackSpec,
        MigrationRollbackStatus,
    )

    return _definition(
        ROLLBACK_KIND,
        ROLLBACK_PLURAL,
        ROLLBACK_SHORT_NAME,
        "MigrationRollback asks for the emergency rollback of a DatabaseMigration's last run, "
        "on demand: planned and checked for data loss first, then run, and kept as the record.",
        openapi_schema(MigrationRollbackSpec, "spec"),
        openapi_schema(MigrationRollbackStatus, "status"),
        ROLLBACK_PRINTER_COLUMNS,
    )


BUILDERS = {"DatabaseMigration": build_crd, "MigrationRollback": build_rollback_crd}


def render_crd_yaml(kind: str = KIND) -> str:
    """The CRD of ``kind`` as the YAML committed in ``crds/`` (stable key order, a header)."""
    header = "# Generated by `dbmigrate crd` from operator/dbmigrate/api. Do not edit by hand.\n"
    return header + yaml.safe_dump(BUILDERS[kind](), sort_keys=False, width=100)
