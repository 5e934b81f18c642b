"""The pure half of leader election: who may write the Lease when, and what they write."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dbmigrate.cli.main import main
from dbmigrate.controller.kube import ApiError, Kube, Obj
from dbmigrate.controller.leader import (
    LeaderElector,
    LeaseConfig,
    LeaseRecord,
    Observation,
    may_take,
    micro_time,
    next_spec,
    observe,
    record_of,
    released_spec,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
HELD = LeaseRecord("pod-a", 15, "2026-01-02T03:00:00.000000Z", "2026-01-02T03:04:00.000000Z", 3)


def test_no_lease_free_lease_or_own_lease_may_be_written() -> None:
    assert may_take(None, "pod-b", 0.0)
    assert may_take(Observation(LeaseRecord("", 1), 100.0), "pod-b", 100.0)
    assert may_take(Observation(HELD, 100.0), "pod-a", 100.0)


def test_someone_elses_lease_expires_a_full_duration_after_we_first_saw_it() -> None:
    seen = Observation(HELD, 100.0)
    assert not may_take(seen, "pod-b", 100.0)
    assert not may_take(seen, "pod-b", 114.99)
    assert may_take(seen, "pod-b", 115.0)


def test_expiry_ignores_the_wall_clock_of_the_record() -> None:
    """A renewTime far in the past (a node's clock behind) does not make the lease look expired:
    only the local time since the record was first seen counts."""
    stale_looking = LeaseRecord("pod-a", 15, renew_time="1999-01-01T00:00:00.000000Z")
    assert not may_take(Observation(stale_looking, 50.0), "pod-b", 51.0)


def test_an_unchanged_record_keeps_its_first_seen_time_a_renewal_restarts_it() -> None:
    first = observe(None, HELD, 10.0)
    assert observe(first, HELD, 20.0).seen_at == 10.0
    renewed = LeaseRecord(HELD.holder, 15, HELD.acquire_time, "2026-01-02T03:04:05.000000Z", 3)
    again = observe(first, renewed, 20.0)
    assert again.seen_at == 20.0
    assert not may_take(again, "pod-b", 26.0)  # the renewal reset the countdown
    assert may_take(again, "pod-b", 35.0)


def test_taking_counts_a_transition_and_sets_both_times() -> None:
    spec = next_spec(HELD, "pod-b", 15, T0)
    assert spec == {
        "holderIdentity": "pod-b",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-02T03:04:05.678901Z",
        "renewTime": "2026-01-02T03:04:05.678901Z",
        "leaseTransitions": 4,
    }


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    spec = next_spec(HELD, "pod-a", 15, T0)
    assert spec["acquireTime"] == HELD.acquire_time
    assert spec["renewTime"] == "2026-01-02T03:04:05.678901Z"
    assert spec["leaseTransitions"] == 3


def test_the_first_holder_starts_at_zero_transitions() -> None:
    assert next_spec(None, "pod-a", 20, T0)["leaseTransitions"] == 0
    assert next_spec(None, "pod-a", 20, T0)["leaseDurationSeconds"] == 20


def test_release_empties_the_holder_and_shortens_the_duration() -> None:
    spec = released_spec(HELD, T0 + timedelta(seconds=1))
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 3
    assert may_take(Observation(record_of({"spec": spec}), 0.0), "pod-b", 0.0)


def test_record_of_reads_a_served_lease_and_tolerates_missing_fields() -> None:
    lease = {"spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}}
    assert record_of(lease) == LeaseRecord("pod-a", 15)
    assert record_of({}) == LeaseRecord("", 0)


def test_micro_time_is_utc_with_microseconds() -> None:
    assert micro_time(T0) == "2026-01-02T03:04:05.678901Z"
    assert micro_time(T0.astimezone(timezone(timedelta(hours=2)))) == micro_time(T0)


def test_the_leader_gives_up_before_a_follower_may_take_the_lease() -> None:
    config = LeaseConfig("ns", "lease", "pod-a", duration=15, renew_every=5)
    assert config.renew_every < config.renew_deadline < config.duration


class _Unreachable(Kube):
    """An API server that cannot be reached: every request fails as the real client's do."""

    def __init__(self) -> None:
        self.calls = 0

    def request(self, *args: Any, **kwargs: Any) -> Obj:
        self.calls += 1
        raise ApiError(0, "Unreachable", "cannot reach the API server")


class _HeldBy(Kube):
    """An API server whose Lease another replica holds (answers GET only)."""

    def __init__(self, holder: str) -> None:
        self.lease = {
            "metadata": {"resourceVersion": "7"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
        }

    def request(self, method: str, *args: Any, **kwargs: Any) -> Obj:
        assert method == "GET", "the elector must not write a Lease it may not take"
        return self.lease


def test_failed_renewals_give_up_at_the_renew_deadline_not_before() -> None:
    now = [100.0]
    elector = LeaderElector(_Unreachable(), LeaseConfig("ns", "l", "me"), clock=lambda: now[0])
    elector.last_renewed = 100.0
    now[0] = 109.9
    assert elector._renew_once() == ""
    now[0] = 110.0
    assert elector._renew_once() == "the lease could not be renewed for 10s"


def test_keep_retries_failed_renewals_then_reports_the_loss() -> None:
    kube = _Unreachable()
    elector = LeaderElector(kube, LeaseConfig("ns", "l", "me", duration=3, renew_every=0.05))
    elector.last_renewed = time.monotonic()
    lost: list[str] = []
    began = time.monotonic()
    elector.keep(threading.Event(), lost.append)
    assert [r.split(" for ")[0] for r in lost] == ["the lease could not be renewed"]
    assert 2.0 <= time.monotonic() - began < 3.0  # the renew deadline, before the duration
    assert kube.calls >= 10  # retried all along, not once per deadline


def test_keep_stops_quietly_when_asked() -> None:
    stop = threading.Event()
    stop.set()
    lost: list[str] = []
    LeaderElector(_Unreachable(), LeaseConfig("ns", "l", "me")).keep(stop, lost.append)
    assert lost == []


def test_a_lease_taken_by_another_replica_is_lost_at_once() -> None:
    elector = LeaderElector(_HeldBy("pod-b"), LeaseConfig("ns", "l", "me"), clock=lambda: 5.0)
    elector.last_renewed = 4.0
    assert elector._renew_once() == "the lease was taken by pod-b"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--all-namespaces", "--leader-elect"], "give --lease-namespace"),
        (["-n", "apps", "--leader-elect", "--lease-renew", "10"], "--lease-renew 10.0"),
        (["-n", "apps", "--leader-elect", "--lease-renew", "0"], "--lease-renew 0.0"),
    ],
)
def test_operator_refuses_wrong_lease_flags(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert main(["operator", *argv]) == 2  # before any API call or Kopf
    assert complaint in capsys.readouterr().err
