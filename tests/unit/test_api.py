"""The API models: safe defaults, the CRD generated from them, and the condition helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, Field, ValidationError

from dbmigrate.api import crd
from dbmigrate.api.conditions import Condition, find_condition, set_condition
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.api.status import DatabaseMigrationStatus

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "dbmigrate.io_databasemigrations.yaml"
SAMPLE = ROOT / "manifests" / "samples" / "analytics-migration.yaml"
MINIMAL = {
    "database": {"secretRef": {"name": "db", "uriKey": "uri"}},
    "source": {"configMap": {"name": "migrations"}},
    "backup": {"pvcName": "backups"},
}


def test_committed_crd_matches_the_models() -> None:
    assert CRD_FILE.read_text() == crd.render_crd_yaml(), "run `make crds` and commit the result"


def test_minimal_spec_gets_safe_defaults() -> None:
    spec = DatabaseMigrationSpec.model_validate(MINIMAL)
    assert spec.backup.enabled is True
    assert spec.safety.lint_policy == "strict"
    assert spec.safety.auto_concurrently is True
    assert spec.approval.mode == "Automatic"
    assert spec.rollback.strategy == "DropCreatedObjects"
    assert spec.preflight.large_table_rows == 1_000_000


def test_sample_is_a_valid_spec() -> None:
    sample = yaml.safe_load(SAMPLE.read_text())
    spec = DatabaseMigrationSpec.model_validate(sample["spec"])
    assert spec.verification.probes[0].expect_index == "idx_page_views_timestamp_desc_path"


def test_unknown_spec_field_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        DatabaseMigrationSpec.model_validate({**MINIMAL, "bakup": {}})


def test_every_schema_field_is_described() -> None:
    def walk(node: dict, path: str) -> None:
        for name, child in node.get("properties", {}).items():
            if path == "" and name == "metadata":
                continue  # the API server refuses anything but name/generateName here
            assert child.get("description"), f"{path}.{name} has no description"
            walk(child, f"{path}.{name}")
        if "items" in node:
            walk(node["items"], path + "[]")

    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    walk(schema, "")


def test_generator_refuses_an_undescribed_field() -> None:
    class Undescribed(BaseModel):
        documented: int = Field(description="fine")
        bare: int

    with pytest.raises(crd.SchemaError, match="bare has no description"):
        crd.openapi_schema(Undescribed, "spec")


def test_generated_schema_is_structural() -> None:
    text = crd.render_crd_yaml()
    for forbidden in ("$ref", "anyOf", "title:", "additionalProperties: false"):
        assert forbidden not in text


def test_status_round_trips_through_its_wire_form() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = DatabaseMigrationStatus(
        phase="Migrating",
        observed_generation=3,
        conditions=set_condition([], "Ready", "False", "Migrating", "m", now=now, generation=3),
    )
    wire = status.to_wire()
    assert wire["observedGeneration"] == 3
    assert wire["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert DatabaseMigrationStatus.model_validate(wire) == status


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=5)
    first = set_condition([], "Ready", "False", "Planning", "a", now=t0, generation=1)
    same = set_condition(first, "Ready", "False", "Migrating", "b", now=t1, generation=1)
    flipped = set_condition(same, "Ready", "True", "Succeeded", "c", now=t1, generation=1)
    assert _ready(same).last_transition_time == t0
    assert _ready(same).reason == "Migrating"
    assert _ready(flipped).last_transition_time == t1


def _ready(conditions: list[Condition]) -> Condition:
    found = find_condition(conditions, "Ready")
    assert found is not None
    return found
