"""Generates the DatabaseMigration CRD from the pydantic models: one schema, never hand-written.

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
from dbmigrate.api.conditions import PERFORMANCE_VERIFIED
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

PRINTER_COLUMNS = [
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
    {
        "name": "Performance",
        "type": "string",
        "priority": 1,
        "description": "The performance watch's verdict (spec.watch): the PerformanceVerified "
        "condition's reason, empty while it watches.",
        "jsonPath": f'.status.conditions[?(@.type=="{PERFORMANCE_VERIFIED}")].reason',
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


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object of DatabaseMigration."""
    spec = openapi_schema(DatabaseMigrationSpec, "spec")
    status = openapi_schema(DatabaseMigrationStatus, "status")
    root = {
        "type": "object",
        "description": "DatabaseMigration migrates one PostgreSQL database safely: plan and lint, "
        "gates, backup, apply, verify, and an emergency rollback when a check fails.",
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
        "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["dbm"],
                "categories": ["dbmigrate"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML committed in ``crds/`` (stable key order, a generated-file header)."""
    header = "# Generated by `dbmigrate crd` from operator/dbmigrate/api. Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
