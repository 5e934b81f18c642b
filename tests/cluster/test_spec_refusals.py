"""What the API server admits but the operator refuses: the first reconcile stalls the run
with a message naming the field, before any Job (so nothing is backed up, applied or rolled
back for a spec that could never verify), and the fixed spec starts a new run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.cluster.operator_harness import (
    Cluster,
    OperatorProcess,
    cluster,
    condition,
    crd,
    operator,
    ready_database,
    sample_spec,
)

__all__ = ["cluster", "crd", "operator"]  # fixtures used by name

WINDOW = {"schedule": "0 2 * * 6", "duration": "2h", "appliesTo": "Always"}
GOOD_PROBE = {"name": "recent", "sql": "SELECT 1", "expectIndex": "idx_any"}


def _warning_naming(field: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["type"] == "Warning" and field in event["message"]


def test_unknown_time_zone_and_writing_probe_stall_before_any_job(
    cluster: Cluster, operator: OperatorProcess, database_url: str
) -> None:
    began = time.monotonic()
    ready_database(cluster, database_url, files=None)
    cluster.migration(
        "zone", sample_spec(maintenanceWindow={**WINDOW, "timeZone": "Mars/Olympus_Mons"})
    )
    purge = "WITH gone AS (DELETE FROM page_views RETURNING 1) SELECT count(*) FROM gone"
    probes = [GOOD_PROBE, {"name": "purge", "sql": purge, "expectIndex": "idx_any"}]
    cluster.migration("probe", sample_spec(verification={"probes": probes}))

    expected = {
        "zone": ("InvalidMaintenanceWindow", "spec.maintenanceWindow.timeZone 'Mars/Olympus_Mons'"),
        "probe": ("InvalidSpec", "spec.verification.probes[1].sql (probe purge)"),
    }
    for name, (reason, field) in expected.items():
        status = cluster.wait(
            name, lambda s: condition(s, "Stalled").get("status") == "True", "Stalled", 60
        )
        stalled = condition(status, "Stalled")
        assert (status["phase"], stalled["reason"]) == ("Pending", reason), status
        assert field in stalled["message"] and field in status["message"], stalled["message"]
        assert condition(status, "Ready")["reason"] == reason
        # the Event of the run's first transition carries the phase (Pending) as its reason
        cluster.wait_event(name, _warning_naming(field))
    assert "runs a DELETE" in condition(cluster.status("probe"), "Stalled")["message"]
    time.sleep(4)  # more resyncs (3 s): still no Job
    assert cluster.jobs() == [], "a step Job was created for a spec the operator refuses"

    cluster.patch("probe", {"spec": {"verification": {"probes": [GOOD_PROBE]}}})
    status = cluster.wait(
        "probe",
        lambda s: s.get("observedGeneration") == 2 and s.get("phase") != "Pending",
        "the fixed spec's run to start",
        60,
    )
    assert condition(status, "Stalled")["status"] == "False", status
    assert [j["metadata"]["name"] for j in cluster.jobs("probe")] == ["probe-plan-g2"]
    print(f"spec refusals took {time.monotonic() - began:.1f}s")
