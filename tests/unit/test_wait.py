"""`dbmigrate wait`: the verdicts on history rows and on a DatabaseMigration, and the backoff."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from dbmigrate.cli import wait as wait_cmds
from dbmigrate.cli.resource_state import judge_resource
from dbmigrate.cli.wait import Backoff, wait_for
from dbmigrate.engine.after.readiness import Verdict, Wanted, judge
from dbmigrate.engine.history import HistoryRow
from dbmigrate.engine.sources import load_mapping


def row(version: int, status: str = "applied", checksum: str = "c", **extra: Any) -> HistoryRow:
    return HistoryRow(
        version=version, name=f"v{version}", checksum=checksum, status=status, **extra
    )


# --- the database's history -----------------------------------------------------------------


def test_up_to_n_is_ready_once_n_or_later_is_applied() -> None:
    wanted = Wanted(up_to=3)
    assert judge([], wanted).state == "waiting"
    assert judge([row(1), row(2)], wanted).message == "highest applied 2; still to apply: 3"
    running = judge(
        [row(1), row(2), row(3, "running", statements_done=1, statements_total=4)], wanted
    )
    assert running == Verdict(
        "waiting", "highest applied 2; 3 running (1/4 statements); still to apply: 3"
    )
    assert judge([row(1), row(2), row(3)], wanted).state == "ready"
    assert judge([row(1), row(4)], wanted).state == "ready", "gaps in the numbering"
    assert judge([row(1), row(3), row(4, "failed")], wanted).state == "ready", "4 is not needed"


def test_a_rolled_back_or_failed_needed_version_fails() -> None:
    rolled = judge([row(1), row(2, "rolled_back", rolled_back_by="run-9")], Wanted(up_to=2))
    assert rolled.state == "failed"
    assert "version 2 (v2) was rolled back by run-9" in rolled.message
    failed = judge(
        [row(1), row(2, "failed", statements_done=2, statements_total=5, error="boom")],
        Wanted(up_to=3),
    )
    assert failed == Verdict("failed", "version 2 (v2) failed after 2/5 statements: boom")


def test_a_folder_wants_each_of_its_versions_with_its_checksum() -> None:
    folder = load_mapping(
        {"001_a.sql": "SELECT 1;", "002_b.sql": "SELECT 2;", "004_d.sql": "SELECT 4;"}
    )
    sums = {m.version: m.checksum for m in folder}
    wanted = Wanted.from_set(folder)
    assert wanted.up_to == 4 and [v for v, _ in wanted.versions] == [1, 2, 4]
    assert wanted.describe() == "versions 1, 2, 4 applied and not rolled back"
    rows = [row(1, checksum=sums[1]), row(2, checksum=sums[2])]
    assert judge(rows, wanted).message == "highest applied 2; still to apply: 4"
    assert judge([*rows, row(4, checksum=sums[4])], wanted).state == "ready"
    drift = judge([*rows, row(4, checksum="0" * 64)], wanted)
    assert drift.state == "failed" and "the mounted file has" in drift.message
    assert Wanted.from_set(folder, 2).versions == ((1, sums[1]), (2, sums[2]))
    assert judge([*rows, row(4, "rolled_back")], Wanted.from_set(folder, 2)).state == "ready"


# --- the DatabaseMigration's status ---------------------------------------------------------


def dbm(
    phase: str, generation: int = 2, observed: int | None = 2, **conditions: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": observed,
        "currentVersion": "5",
        "conditions": [
            {"type": kind, "status": value[0], "reason": value[1], "message": value[2]}
            for kind, value in conditions.items()
        ],
    }
    return {"metadata": {"generation": generation}, "status": status}


def test_resource_ready_waiting_and_failed() -> None:
    name = "databasemigration apps/analytics"
    assert judge_resource(None, name).state == "waiting"
    assert judge_resource({"metadata": {"generation": 1}}, name).state == "waiting"
    ready = dbm("Succeeded", Ready=("True", "Succeeded", "done"), Stalled=("False", "", ""))
    assert judge_resource(ready, name) == Verdict(
        "ready", f"{name} is Ready (phase Succeeded, version 5)"
    )
    assert judge_resource(ready, name, 5).state == "ready"
    assert (
        judge_resource(ready, name, 6).message
        == f"{name} is Ready at version 5; waiting for version 6"
    )
    stale = dbm("Succeeded", observed=1, Ready=("True", "Succeeded", "done"))
    assert "has not acted on generation 2 yet" in judge_resource(stale, name).message
    migrating = dbm("Migrating", Ready=("False", "Migrating", "applying 004"))
    assert judge_resource(migrating, name) == Verdict(
        "waiting", f"{name} is Migrating (Migrating: applying 004)"
    )
    approval = dbm("WaitingForApproval", Ready=("False", "WaitingForApproval", "approve it"))
    assert judge_resource(approval, name).state == "waiting"


@pytest.mark.parametrize(
    ("phase", "stalled", "expected"),
    [
        ("Failed", ("True", "LintFailed", "DM201 in 004"), "is Failed: LintFailed: DM201 in 004"),
        ("RolledBack", ("True", "ApplyFailed", "lock timeout"), "is RolledBack: ApplyFailed"),
        ("Pending", ("True", "SecretMissing", "no Secret db"), "is stalled (SecretMissing"),
    ],
)
def test_resource_failures(phase: str, stalled: tuple[str, str, str], expected: str) -> None:
    verdict = judge_resource(dbm(phase, Stalled=stalled), "dbm")
    assert verdict.state == "failed" and expected in verdict.message


def test_resource_during_and_after_the_performance_watch() -> None:
    """The watch never holds the application back: Ready=True while it watches; a Regressed
    verdict (phase Succeeded, Stalled=True) still lets the init container go on, saying so; a
    rollback after it fails the wait, as any rolled-back run."""
    watching = dbm("Succeeded", Ready=("True", "Succeeded", "watching for 15m"))
    assert judge_resource(watching, "dbm", 5).state == "ready"
    regressed = dbm(
        "Succeeded",
        Ready=("False", "Regressed", "queries got slower"),
        Stalled=("True", "Regressed", "queries got slower"),
    )
    verdict = judge_resource(regressed, "dbm", 5)
    assert verdict.state == "ready"
    assert "performance watch found a regression (Regressed: queries got slower)" in (
        verdict.message
    )
    assert judge_resource(regressed, "dbm", 6).state == "waiting"
    rolled_back = dbm("RolledBack", Stalled=("True", "PerformanceRegressed", "slower: SELECT"))
    failed = judge_resource(rolled_back, "dbm", 5)
    assert failed.state == "failed" and "PerformanceRegressed: slower: SELECT" in failed.message


# --- the loop -----------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_doubles_to_the_cap_and_stops_at_the_timeout() -> None:
    fake, said = FakeTime(), list[str]()
    verdict, timed_out = wait_for(
        lambda: Verdict("waiting", "still"), Backoff(20, 1, 4), said.append, fake.clock, fake.sleep
    )
    assert timed_out and verdict.message == "still"
    assert fake.sleeps == [1, 2, 4, 4, 4, 4, 1]
    assert said == ["[   0.0s] waiting: still"], "a message is said once, not every check"


def test_the_loop_ends_on_ready_or_failed_and_says_each_change() -> None:
    fake, said = FakeTime(), list[str]()
    answers = iter(
        [
            Verdict("waiting", "a"),
            Verdict("waiting", "a"),
            Verdict("waiting", "b"),
            Verdict("ready", "ok"),
        ]
    )
    verdict, timed_out = wait_for(
        lambda: next(answers), Backoff(0, 1, 8), said.append, fake.clock, fake.sleep
    )
    assert (verdict.state, timed_out) == ("ready", False)
    assert said == ["[   0.0s] waiting: a", "[   3.0s] waiting: b", "[   7.0s] ready: ok"]
    failed, timed_out = wait_for(
        lambda: Verdict("failed", "gone"), Backoff(5, 1, 8), said.append, fake.clock, fake.sleep
    )
    assert (failed.state, timed_out) == ("failed", False)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dbmigrate")
    wait_cmds.register(parser.add_subparsers())
    args = parser.parse_args(["wait", *argv])
    return int(args.func(args))


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    url = ["--database-url", "postgresql://u:pw@127.0.0.1:1/db"]
    assert run(url) == 2
    assert "say what to wait for" in capsys.readouterr().err
    assert run([*url, "--version", "0"]) == 2
    assert run([*url, "--migrations", str(tmp_path / "missing")]) == 2
    assert run(["--resource", "no-slash"]) == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err
    assert run(["--database-url", "host=x port", "--version", "1"]) == 2
    err = capsys.readouterr().err
    assert "not a PostgreSQL URL" in err and "host=x" not in err
