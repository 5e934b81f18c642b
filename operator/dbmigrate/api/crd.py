"""Generates the CRDs (DatabaseMigration, DatabaseMigrationRollout) from the pydantic models: one
schema, never hand-written.

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
from dbmigrate.api.rollout import (
    ROLLOUT_KIND,
    ROLLOUT_PLURAL,
    DatabaseMigrationRolloutSpec,
    DatabaseMigrationRolloutStatus,
)
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
ROLLOUT_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Wave", "type": "string", "jsonPath": ".status.currentWaveName"},
    {"name": "Succeeded", "type": "string", "jsonPath": ".status.progress"},
    {"name": "Failed", "type": "integer", "jsonPath": ".status.totals.failed"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
CRD_FILES = {
    KIND: "crds/dbmigrate.io_databasemigrations.yaml",
    ROLLOUT_KIND: "crds/dbmigrate.io_databasemigrationrollouts.yaml",
}


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


def build_crd(kind: str = KIND) -> dict[str, Any]:
    """The CustomResourceDefinition object of DatabaseMigration (or DatabaseMigrationRollout)."""
    if kind == ROLLOUT_KIND:
        return _crd(
            ROLLOUT_KIND, ROLLOUT_PLURAL, "dbmro", DatabaseMigrationRolloutSpec,
            DatabaseMigrationRolloutStatus, ROLLOUT_PRINTER_COLUMNS,
            "DatabaseMigrationRollout rolls one migration out to many PostgreSQL databases in "
            "waves: one DatabaseMigration per target, a failure budget, soaks and promotion.",
        )  # fmt: skip
    if kind != KIND:
        raise ValueError(f"unknown kind {kind!r}; expected {KIND} or {ROLLOUT_KIND}")
    return _crd(
        KIND, PLURAL, "dbm", DatabaseMigrationSpec, DatabaseMigrationStatus, PRINTER_COLUMNS,
        "DatabaseMigration migrates one PostgreSQL database safely: plan and lint, "
        "gates, backup, apply, verify, and an emergency rollback when a check fails.",
    )  # fmt: skip


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec_model: type[Any],
    status_model: type[Any],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    spec = openapi_schema(spec_model, "spec")
    status = openapi_schema(status_model, "status")
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


def render_crd_yaml(kind: str = KIND) -> str:
    """The CRD as the YAML committed in ``crds/`` (stable key order, a generated-file header)."""
    header = "# Generated by `dbmigrate crd` from operator/dbmigrate/api. Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100)
