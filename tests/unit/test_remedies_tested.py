"""Every remedy docs/conditions.md gives is done by a test: the next step a person is told to take
must work. Each row of a table with a "what to do" column (a reason, a rollout reason, an Event)
names the test that produces that state for real and then does the row's remedy (or, for
"nothing", shows that it goes on by itself). This test fails when the docs gain a row without
one, or when a named test is gone or does not mention the reason it is named for.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "conditions.md"

# (section of docs/conditions.md, reason) -> the tests that do its remedy, as pytest node ids.
# The section is the nearest heading above the table, cut before " (" (a reason may appear in two
# tables: RollbackFailed of a DatabaseMigration and of a MigrationRollback).
_C = "tests/cluster/"
FAILURES = (
    _C + "test_remedies_of_failures.py::test_each_failure_says_why_and_its_documented_remedy_works"
)
REMEDIES = _C + "test_operator_remedies.py::test_each_end_state_says_why_and_its_remedy_works"
LATER = _C + "test_remedies_after_the_run.py::test_each_later_state_is_left_the_way_the_docs_say"
PODSTART = _C + "test_real_kubelet_podstart.py::"
UNSTARTABLE = PODSTART + (
    "test_unschedulable_and_unpullable_step_pods_are_reported_and_a_fixed_spec_replaces_the_run"
)
UNBUILDABLE = PODSTART + (
    "test_a_step_pod_the_kubelet_cannot_build_is_named_and_starts_once_its_cause_is_fixed"
)
GATES = _C + "test_operator_gates.py::"
APPROVAL = GATES + "test_manual_approval_refuses_a_stale_hash_then_runs"
PROMOTION = _C + "test_operator_promotion.py::"
FLOW = _C + "test_operator_flow.py::test_sample_migrates_001_to_005"
WATCH = _C + "test_performance_watch.py::test_watch_finds_005_faster_and_rolls_back_a_regression"
ON_DEMAND = _C + "test_rollback_on_demand.py::test_pause_then_rollback_on_demand"
ROLLOUT = _C + (
    "test_operator_rollout.py::test_a_rollout_in_waves_stops_at_its_failure_budget_and_late_secrets_join"
)
HEALING = _C + "test_operator_healing.py::"
RETRY = HEALING + "test_the_retry_annotation_reruns_a_failed_run_of_the_same_generation"

GATE = "Waiting at a gate"
MISSING = "A prerequisite is missing"
POD = "A step pod cannot start"
BEFORE = "The run failed before any change"
AFTER = "A step that changed the database failed"
WELL = "A step went well"
PERF = "The performance watch"
ASKED = "Rolled back on demand"
PAUSE = "Paused and resumed"
REQUEST = "A MigrationRollback's own conditions"
FLEET = "DatabaseMigrationRollout"
EVENTS = "Events"

REMEDY_TESTS: dict[tuple[str, str], tuple[str, ...]] = {
    (GATE, "WaitingForApproval"): (APPROVAL,),
    (GATE, "ApprovalRefused"): (APPROVAL, REMEDIES),
    (GATE, "WaitingForWindow"): (GATES + "test_maintenance_window_closed_then_open",),
    (GATE, "WaitingForLock"): (GATES + "test_two_resources_on_one_database_are_serialised",),
    (GATE, "WaitingForPromotion"): (
        PROMOTION + "test_promotion_refuses_a_changed_file_and_starts_once_staging_has_it",
    ),
    (MISSING, "SecretNotFound"): (FAILURES,),
    (MISSING, "SecretKeyMissing"): (REMEDIES,),
    (MISSING, "ConfigMapNotFound"): (REMEDIES,),
    (MISSING, "BackupVolumeNotFound"): (REMEDIES,),
    (MISSING, "InvalidMaintenanceWindow"): (REMEDIES,),
    (MISSING, "InvalidSpec"): (FAILURES,),
    (MISSING, "InvalidResource"): (FAILURES,),
    (MISSING, "ApiError"): (FAILURES,),
    (POD, "StepPodUnschedulable"): (UNSTARTABLE,),
    (POD, "StepImagePullFailed"): (UNSTARTABLE,),
    (POD, "StepPodNotStarting"): (UNBUILDABLE,),
    (BEFORE, "DriftDetected"): (REMEDIES,),
    (BEFORE, "LintFailed"): (REMEDIES,),
    (BEFORE, "PreflightFailed"): (FAILURES,),
    (BEFORE, "PlanFailed"): (REMEDIES,),
    (BEFORE, "BackupFailed"): (FAILURES,),
    (AFTER, "StepNotReported"): (FAILURES,),
    (AFTER, "ApplyFailed"): (FAILURES,),
    (AFTER, "VerificationFailed"): (REMEDIES,),
    (AFTER, "RollbackImpossible"): (FAILURES,),
    (AFTER, "RollbackFailed"): (FAILURES,),
    (WELL, "BackupVerified"): (FLOW,),
    (WELL, "BackupDisabled"): (REMEDIES,),
    (WELL, "Applied"): (FLOW,),
    (WELL, "Verified"): (FLOW,),
    (WELL, "DropCreatedObjects"): (REMEDIES,),
    (WELL, "RestoreBackup"): (ON_DEMAND,),
    (PERF, "WatchStarted"): (WATCH,),
    (PERF, "NoRegression"): (WATCH,),
    (PERF, "Regressed"): (LATER,),
    (PERF, "Inconclusive"): (LATER,),
    (PERF, "Unavailable"): (LATER,),
    (PERF, "PerformanceRegressed"): (LATER,),
    (ASKED, "RollbackRequested"): (ON_DEMAND,),
    (PAUSE, "PauseAnnotation"): (ON_DEMAND,),
    (PAUSE, "OperatorPaused"): (LATER,),
    (PAUSE, "Resumed"): (LATER, ON_DEMAND),
    (REQUEST, "RollbackPlanning"): (ON_DEMAND,),
    (REQUEST, "RollbackPlanned"): (ON_DEMAND,),
    (REQUEST, "ConfirmationRequired"): (ON_DEMAND,),
    (REQUEST, "RollbackRefused"): (ON_DEMAND,),
    (REQUEST, "RollbackRunning"): (ON_DEMAND,),
    (REQUEST, "RollbackSucceeded"): (ON_DEMAND,),
    (REQUEST, "RollbackFailed"): (LATER,),
    (FLEET, "WaveProgressing"): (ROLLOUT,),
    (FLEET, "WaitingForAnalysis"): (LATER,),
    (FLEET, "Soaking"): (ROLLOUT,),
    (FLEET, "WaitingForPromote"): (LATER,),
    (FLEET, "FailureBudgetExceeded"): (LATER, ROLLOUT),
    (FLEET, "RolloutComplete"): (LATER, ROLLOUT),
    (EVENTS, "RetryRequested"): (RETRY,),
    (EVENTS, "AutomaticRetry"): (
        HEALING + "test_a_wrong_password_fixed_in_the_secret_heals_without_a_spec_change",
    ),
    (EVENTS, "RetryIgnored"): (RETRY,),
    (EVENTS, "WorkloadNotFound"): (LATER,),
    (EVENTS, "WorkloadScaledDown"): (REMEDIES,),
    (EVENTS, "WorkloadScaledUp"): (REMEDIES,),
    (EVENTS, "NotificationFailed"): (LATER,),
    (EVENTS, "WaveStarted"): (ROLLOUT,),
    (EVENTS, "WaveCompleted"): (ROLLOUT,),
    (EVENTS, "WaveRollbackRequested"): (ROLLOUT,),
}

_HEADING = re.compile(r"^#{2,4} (.+)$")
_ROW = re.compile(r"^\| `([A-Za-z]+)` \|")


def documented_remedies(text: str) -> list[tuple[str, str]]:
    """(section, reason) of each row in a table whose header has a "what to do" column."""
    rows: list[tuple[str, str]] = []
    section, remedies = "", False
    for line in text.splitlines():
        if heading := _HEADING.match(line):
            section, remedies = heading.group(1).split(" (")[0].strip(), False
        elif line.startswith("| ") and "what to do" in line:
            remedies = True
        elif not line.startswith("|"):  # the table ended
            remedies = False
        elif remedies and (row := _ROW.match(line)):
            rows.append((section, row.group(1)))
    return rows


def _test_source(node_id: str) -> str:
    """The source of the test function ``node_id`` names, and of the test helpers it imports."""
    file, _, name = node_id.partition("::")
    path = ROOT / file
    assert path.is_file(), f"{node_id}: no file {file}"
    module = ast.parse(path.read_text())
    functions = [
        node
        for node in module.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
    ]
    assert functions, f"{node_id}: {file} defines no function {name}"
    sources = [ast.get_source_segment(path.read_text(), functions[0]) or ""]
    for node in module.body:  # module-level helpers of the file and the tier's helper modules
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Assign):
            sources.append(ast.get_source_segment(path.read_text(), node) or "")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            helper = ROOT / (node.module or "").replace(".", "/")
            sources.append(helper.with_suffix(".py").read_text())
    return "\n".join(sources)


def test_every_documented_remedy_names_a_test() -> None:
    documented = documented_remedies(DOCS.read_text())
    assert len(documented) > 40, "the parser found too few rows: did the tables change shape?"
    missing = [row for row in documented if row not in REMEDY_TESTS]
    assert not missing, f"rows of docs/conditions.md with no test doing their remedy: {missing}"
    stale = [row for row in REMEDY_TESTS if row not in documented]
    assert not stale, f"REMEDY_TESTS names rows docs/conditions.md no longer has: {stale}"


@pytest.mark.parametrize("row", sorted(REMEDY_TESTS), ids=lambda r: f"{r[1]}")
def test_each_named_test_exists_and_mentions_its_reason(row: tuple[str, str]) -> None:
    for node_id in REMEDY_TESTS[row]:
        assert row[1] in _test_source(node_id), f"{node_id} never mentions {row[1]}"


def test_the_parser_reads_only_tables_with_a_remedy_column() -> None:
    text = "\n".join(
        [
            "### Gates",
            "| reason | phase | set when | what to do |",
            "|---|---|---|---|",
            "| `WaitingForLock` | WaitingForLock | another run | nothing |",
            "",
            "### The phase as a reason",
            "| reason | meaning |",
            "|---|---|",
            "| `Pending` | started |",
        ]
    )
    assert documented_remedies(text) == [("Gates", "WaitingForLock")]
