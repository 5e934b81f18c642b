"""A run keeps the spec it started with: kept at its plan Job, read back while a newer generation
waits, used only while that run goes on."""

from __future__ import annotations

from dataclasses import replace

from dbmigrate.api.status import DatabaseMigrationStatus
from dbmigrate.decision.decide import decide
from dbmigrate.decision.model import Observed
from dbmigrate.decision.pinning import (
    build_run_spec_config_map,
    needs_run_spec,
    pinned,
    read_run_spec,
)
from tests.unit.controller_samples import make_spec
from tests.unit.test_decide import obs

OLD = make_spec()
NEW = make_spec(database={"secretRef": {"name": "other-db", "hostKey": "host"}})


def _kept(generation: int = 1) -> dict[str, object]:
    config_map = build_run_spec_config_map("orders", "apps", "uid-1", generation, OLD)
    assert config_map is not None
    return config_map


def test_the_kept_spec_reads_back_for_its_generation_only() -> None:
    assert read_run_spec(_kept(), 1) == OLD
    assert read_run_spec(_kept(), 2) is None
    assert read_run_spec(None, 1) is None
    assert read_run_spec({"data": {"generation": "1", "spec.json": "{not json"}}, 1) is None
    assert read_run_spec(_kept(), None) is None


def test_a_spec_too_large_for_a_config_map_is_not_kept() -> None:
    inline = [{"name": f"{n:03d}_big.sql", "sql": "SELECT 1;" + " " * 200_000} for n in range(6)]
    big = make_spec(source={"inline": inline})
    assert build_run_spec_config_map("orders", "apps", "uid-1", 1, big) is None


def test_the_kept_spec_is_read_only_while_an_older_run_goes_on() -> None:
    running = DatabaseMigrationStatus(phase="Migrating", observed_generation=1)
    assert needs_run_spec(2, running)
    assert not needs_run_spec(1, running)  # the current spec is the run's
    done = running.model_copy(update={"phase": "Succeeded"})
    assert not needs_run_spec(2, done)
    assert not needs_run_spec(1, DatabaseMigrationStatus())


def _changed_mid_run(phase: str, **jobs: str) -> Observed:
    observed = obs(phase, jobs=jobs or None, generation=2, run_gen=1)
    return replace(observed, spec=NEW, run_spec=OLD)


def test_a_run_under_way_decides_with_its_own_spec() -> None:
    migrating = _changed_mid_run("Migrating", apply="Running")
    assert pinned(migrating).spec == OLD
    decision = decide(pinned(migrating))
    assert decision.status.observed_generation == 1  # still the old run


def test_a_new_run_starts_with_the_current_spec() -> None:
    finished = _changed_mid_run("Succeeded")
    assert pinned(finished) is finished and pinned(finished).spec == NEW
    assert decide(finished).status.observed_generation == 2
    waiting = _changed_mid_run("WaitingForApproval")  # nothing changed yet: gives way
    assert pinned(waiting).spec == NEW
