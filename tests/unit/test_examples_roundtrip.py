"""Every status field has a wire form that reads back to the same model."""

from __future__ import annotations

from dbmigrate.api.status import DatabaseMigrationStatus
from tests.examples import example_instance


def test_fully_populated_status_round_trips_through_json() -> None:
    status = example_instance(DatabaseMigrationStatus)
    wire = status.to_wire()
    assert DatabaseMigrationStatus.model_validate(wire) == status
    assert wire["plan"] and wire["backup"] and wire["verification"], "step keys are populated"
