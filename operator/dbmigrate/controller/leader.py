"""Leader election on a ``coordination.k8s.io/v1`` Lease, so two or more operator replicas can run
and only one of them reconciles.

Why our own loop and not Kopf's peering: peering only pauses the other operators cooperatively
(and needs its own CRD); a Lease is the standard Kubernetes lock, visible with ``kubectl get
lease``, and lets a replica that lost it stop hard (fail closed).

The decision is pure (``may_take``, ``next_spec``): expiry is judged on the local monotonic clock
from the moment this process first *saw* the current record, never from the record's own
``renewTime``, so a skew between the nodes' wall clocks cannot make a follower take a live Lease
(client-go does the same). ``LeaderElector`` does the I/O: get, then create or replace with the
read ``resourceVersion`` (a 409 means another replica wrote first: it lost this round).

``run_as_leader`` is what ``dbmigrate operator --leader-elect`` runs: it owns threads and the
process's exit. The follower blocks until it holds the Lease (serving ``/healthz`` on the liveness
port meanwhile, so the kubelet does not restart a healthy standby), then Kopf starts and a thread
renews the Lease. If the Lease is lost (taken, or not renewed within the renew deadline) the
process exits at once with code 1, without waiting for Kopf: a replica must never reconcile
without the Lease. After Kopf stops (SIGTERM), the Lease is released so a follower takes over
within its retry period.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from dbmigrate.api.exitcodes import EXIT_FAILED as LOST_EXIT_CODE
from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.controller.kube import ApiError, Kube, Obj, load_api_client, path_of

log = logging.getLogger("dbmigrate.leader")

LEASE_API_VERSION = "coordination.k8s.io/v1"
DEFAULT_LEASE_NAME = "dbmigrate-operator"  # the chart passes its release's full name instead
TOOK_LEASE = "took the lease"  # logged by a replica when it becomes the leader
RELEASED_DURATION = 1  # seconds: what a released Lease says, so any reader may take it


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that leader election reads."""

    holder: str  # "" when nobody holds it (released)
    duration: int  # leaseDurationSeconds
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Observation:
    """A record and the local monotonic time at which this process first saw it unchanged."""

    record: LeaseRecord
    seen_at: float


def record_of(lease: Obj) -> LeaseRecord:
    """The LeaseRecord of a Lease object."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """Keep the first-seen time while the record is unchanged; restart it when it changed."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def may_take(observation: Observation | None, me: str, now: float) -> bool:
    """May ``me`` write the Lease at local monotonic time ``now``? Yes when there is none, it is
    free, it is ours, or it has not changed for its whole duration since we first saw it."""
    if observation is None:
        return True
    holder = observation.record.holder
    if not holder or holder == me:
        return True
    return now >= observation.seen_at + observation.record.duration


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_spec(record: LeaseRecord | None, me: str, duration: int, wall: datetime) -> Obj:
    """The spec ``me`` writes to take or renew the Lease: a renewal keeps acquireTime and the
    transition count; taking it from someone else (or after a release) counts one transition."""
    now = micro_time(wall)
    spec: Obj = {"holderIdentity": me, "leaseDurationSeconds": duration, "renewTime": now}
    if record is not None and record.holder == me:
        spec["acquireTime"] = record.acquire_time or now
        spec["leaseTransitions"] = record.transitions
    else:
        spec["acquireTime"] = now
        spec["leaseTransitions"] = record.transitions + 1 if record is not None else 0
    return spec


def released_spec(record: LeaseRecord, wall: datetime) -> Obj:
    """The spec of a Lease its holder gives up: no holder, a one-second duration."""
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": RELEASED_DURATION,
        "acquireTime": record.acquire_time,
        "renewTime": micro_time(wall),
        "leaseTransitions": record.transitions,
    }


@dataclass(frozen=True)
class LeaseConfig:
    """Where the Lease is, who we are, and the timing (seconds)."""

    namespace: str
    name: str
    identity: str
    duration: int = 15
    renew_every: float = 5.0
    retry_every: float = 2.0

    @property
    def renew_deadline(self) -> float:
        """How long renewals may fail before the leader gives up: two thirds of the duration,
        so it stops before any follower may consider the Lease expired."""
        return self.duration * 2 / 3


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Takes, renews and releases one Lease through the API server."""

    def __init__(
        self,
        kube: Kube,
        config: LeaseConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        self.wall = wall
        self.observation: Observation | None = None
        self.last_renewed: float | None = None  # local time at which our last write started

    def _path(self, name: str | None = None) -> str:
        return path_of("Lease", self.config.namespace, name)

    def try_acquire_or_renew(self) -> bool:
        """One round: True if we hold the Lease now (raises ApiError on API failures)."""
        started = self.clock()
        lease = self.kube.get("Lease", self.config.namespace, self.config.name)
        record = record_of(lease) if lease is not None else None
        if record is not None:
            self.observation = observe(self.observation, record, started)
        if not may_take(self.observation if record else None, self.config.identity, started):
            return False
        body: Obj = {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.config.name, "namespace": self.config.namespace},
            "spec": next_spec(record, self.config.identity, self.config.duration, self.wall()),
        }
        if not self._write(lease, body):
            return False
        self.last_renewed = started
        return True

    def _write(self, current: Obj | None, body: Obj) -> bool:
        """Create, or replace at the read resourceVersion; False when another replica won."""
        try:
            if current is None:
                return self.kube.create(body)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.kube.request("PUT", self._path(self.config.name), body)
            return True
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise

    def holder(self) -> str:
        """The holder we last saw ("" if none)."""
        return self.observation.record.holder if self.observation else ""

    def acquire(self, stop: threading.Event) -> bool:
        """Block until we hold the Lease (True) or ``stop`` is set (False)."""
        announced = ""
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("%s %s/%s", TOOK_LEASE, self.config.namespace, self.config.name)
                    return True
            except ApiError as exc:
                log.warning("leader election: %s", exc)
            if self.holder() != announced:
                announced = self.holder()
                log.info("standing by: the lease is held by %s", announced or "nobody")
            stop.wait(self.config.retry_every)
        return False

    def keep(self, stop: threading.Event, on_lost: Callable[[str], None]) -> None:
        """Renew until ``stop`` is set; call ``on_lost`` once when the Lease is gone to another
        replica or could not be renewed within the renew deadline. A failed renewal is retried
        every second until then."""
        interval = self.config.renew_every
        while not stop.wait(interval):
            before = self.last_renewed
            reason = self._renew_once()
            if reason:
                on_lost(reason)
                return
            renewed = self.last_renewed != before
            interval = self.config.renew_every if renewed else min(1.0, self.config.renew_every)

    def _renew_once(self) -> str:
        """Renew; the reason we lost the Lease, or "" while we may keep going."""
        try:
            if self.try_acquire_or_renew():
                return ""
            return f"the lease was taken by {self.holder() or 'another replica'}"
        except ApiError as exc:
            log.warning("renewing the lease failed: %s", exc)
        silent = self.clock() - (self.last_renewed or 0.0)
        if silent >= self.config.renew_deadline:
            return f"the lease could not be renewed for {silent:.0f}s"
        return ""

    def release(self) -> None:
        """Give the Lease up if we hold it, so a follower takes over at once."""
        lease = self.kube.get("Lease", self.config.namespace, self.config.name)
        if lease is None or record_of(lease).holder != self.config.identity:
            return
        lease["spec"] = released_spec(record_of(lease), self.wall())
        try:
            self.kube.request("PUT", self._path(self.config.name), lease)
        except ApiError as exc:  # the follower waits for the lease to expire instead
            log.warning("releasing the lease failed: %s", exc)
            return
        log.info("released the lease %s/%s", self.config.namespace, self.config.name)


def run_as_leader(
    lease: LeaseConfig, kubeconfig: str | None, liveness: str | None, run: Callable[[], None]
) -> int:
    """Wait for ``lease``, then ``run()`` (Kopf) while renewing it; release it afterwards.

    ``kubeconfig`` is the operator's (None: in-cluster); ``liveness`` is Kopf's liveness URL,
    answered on its port while this replica stands by."""
    kube = Kube(load_api_client(kubeconfig), timeout=max(1.0, lease.renew_deadline / 3))
    elector = LeaderElector(kube, lease)
    stop = threading.Event()
    log.info("leader election as %s on lease %s/%s", lease.identity, lease.namespace, lease.name)
    with standby_health(liveness):
        elector.acquire(stop)
    keeper = threading.Thread(
        target=elector.keep, args=(stop, exit_without_lease), name="lease-renewal", daemon=True
    )
    keeper.start()
    try:
        run()
    finally:
        stop.set()
        keeper.join(timeout=lease.renew_deadline)
        elector.release()
    return EXIT_OK


def exit_without_lease(reason: str) -> None:
    """Stop the whole process now: reconciling on without the Lease could run a step twice."""
    log.critical("lost the leadership (%s): exiting so that only the leader reconciles", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(LOST_EXIT_CODE)


@contextmanager
def standby_health(liveness_url: str | None) -> Iterator[None]:
    """Answer 200 on the liveness endpoint's port while standing by (Kopf serves it later)."""
    if not liveness_url:
        yield
        return
    parts = urlsplit(liveness_url)
    server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80), _StandbyHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="standby-health", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _StandbyHandler(BaseHTTPRequestHandler):
    """200 ``standby`` on every GET: the process is alive, waiting for the Lease."""

    def do_GET(self) -> None:
        body = b"standby: waiting for the leader lease\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are not worth a log line."""
