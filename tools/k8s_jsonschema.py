"""Writes kubeconform's JSON schemas, offline, from upstream sources the project already uses.

kubeconform normally downloads schemas from GitHub; this machine class cannot reach it. The same
facts are in the Kubernetes module the test bed builds from: ``api/openapi-spec/swagger.json`` of
``k8s.io/kubernetes`` at the test bed's version (found through ``go mod download -json``, which
reads the Go module cache or the module proxy). Each built-in kind becomes one strict schema file
(``additionalProperties: false`` wherever properties are declared) in kubeconform's naming,
``<kind>-<group>-<version>.json``; our own kind's schema comes from the CRD in crds/.

Usage: python tools/k8s_jsonschema.py OUT_DIR   (prints OUT_DIR; reuses a complete OUT_DIR)
Then:  kubeconform -strict -schema-location 'OUT_DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "crds" / "dbmigrate.io_databasemigrations.yaml"
BUILD_SCRIPT = ROOT / "testbed" / "build-controlplane.sh"
DEFS = "#/definitions/"
INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
Schema = dict[str, Any]


def kubernetes_version() -> str:
    """The test bed's Kubernetes version (K8S_VERSION in testbed/build-controlplane.sh)."""
    match = re.search(r"^K8S_VERSION=(v[0-9.]+)$", BUILD_SCRIPT.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"no K8S_VERSION=vX.Y.Z line in {BUILD_SCRIPT}")
    return match.group(1)


def swagger_path(version: str) -> Path:
    """swagger.json of k8s.io/kubernetes@version, from the Go module cache (or the proxy)."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=True,
    ).stdout
    return Path(json.loads(out)["Dir"]) / "api" / "openapi-spec" / "swagger.json"


def strict(node: Schema) -> Schema:
    """Convert one OpenAPI v2/v3 schema node into strict JSON schema (recursively).

    Walks the schema structure (properties, items, ...), never a property map as if it were a
    schema: JSONSchemaProps has properties named ``$ref`` and ``format`` itself.
    """
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        return {**INT_OR_STRING, "description": node.get("description", "")}
    if isinstance(node.get("$ref"), str) and node["$ref"].startswith(DEFS):
        return {"$ref": node["$ref"]}  # siblings of $ref are ignored by draft-04..07 anyway
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if "properties" in node:
        out["properties"] = {k: strict(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        out["items"] = strict(node["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            out[key] = [strict(option) for option in node[key]]
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFS):
            found.add(ref[len(DEFS) :])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def closure(name: str, definitions: dict[str, Schema]) -> dict[str, Schema]:
    """The definitions ``name`` reaches through $ref."""
    todo, seen = [name], {name}
    while todo:
        found: set[str] = set()
        _refs(definitions[todo.pop()], found)
        for ref in found - seen:
            seen.add(ref)
            todo.append(ref)
    return {ref: definitions[ref] for ref in sorted(seen)}


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` for one group/version/kind."""
    suffix = f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def builtin_schemas(swagger: dict[str, Any]) -> dict[str, Schema]:
    """One standalone-by-definitions strict schema per built-in kind."""
    definitions = {name: strict(schema) for name, schema in swagger["definitions"].items()}
    definitions[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    files: dict[str, Schema] = {}
    for name, raw in swagger["definitions"].items():
        for gvk in raw.get("x-kubernetes-group-version-kind", []):
            reached = closure(name, definitions)
            schema = {**definitions[name], "definitions": reached}
            files[file_name(gvk["group"], gvk["version"], gvk["kind"])] = schema
    return files


def crd_schemas(crd: dict[str, Any]) -> dict[str, Schema]:
    """Our own kind, from its CRD's openAPIV3Schema (CEL rules are the API server's to check)."""
    spec = crd["spec"]
    files = {}
    for version in spec["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["properties"]["metadata"] = {"type": "object"}
        files[file_name(spec["group"], version["name"], spec["names"]["kind"])] = schema
    return files


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    marker = out / ".complete"
    crd = yaml.safe_load(CRD.read_text())
    own = crd_schemas(crd)
    if not marker.exists():
        swagger = json.loads(swagger_path(kubernetes_version()).read_text())
        out.mkdir(parents=True, exist_ok=True)
        for name, schema in builtin_schemas(swagger).items():
            (out / name).write_text(json.dumps(schema))
        marker.write_text("built-in kinds written\n")
    for name, schema in own.items():  # always rewritten: the CRD changes with the models
        (out / name).write_text(json.dumps(schema))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
