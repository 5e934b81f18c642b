"""Prometheus metrics of the operator, and the HTTP server behind ``/metrics`` and ``/healthz``.

The reconcile calls the ``observe_*`` functions (or ``observe_status`` once per reconcile, which
derives everything from the status model) and starts the server with ``start_metrics_server``.
Metrics live in their own registry, so the module can be imported many times in tests without
"duplicated timeseries" errors. Labels carry namespace and name, never spec or secret values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dbmigrate.api.status import Phase

if TYPE_CHECKING:
    from dbmigrate.api.status import DatabaseMigrationStatus

PHASES: tuple[str, ...] = get_args(Phase)
LINT_SEVERITIES = ("error", "warning", "info")
# Steps range from a second (a no-op plan) to hours (an index build on a large table).
STEP_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
Key = tuple[str, str]


class _BackupAgeCollector(Collector):
    """``dbmigrate_backup_age_seconds``: computed at scrape time from each backup's finish."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.finished: dict[Key, float] = {}
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "dbmigrate_backup_age_seconds",
            "Seconds since the latest verified backup of each resource finished.",
            labels=["namespace", "name"],
        )
        now = self.clock()
        for (namespace, name), finished in sorted(self.finished.items()):
            family.add_metric([namespace, name], max(0.0, now - finished))
        yield family


class OperatorMetrics:
    """All metrics of one operator process, in one registry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self.clock = clock
        self._lock = threading.Lock()
        self._phases: dict[Key, str] = {}
        self._seen_jobs: set[tuple[str, str, str]] = set()
        self._seen_rollbacks: set[tuple[str, str, str]] = set()
        self._heartbeat: float | None = None
        labels = ["namespace", "name"]
        self.migrations = Gauge(
            "dbmigrate_migrations",
            "DatabaseMigration resources by phase.",
            ["phase"],
            registry=self.registry,
        )
        for phase in PHASES:
            self.migrations.labels(phase).set(0)
        self.step_duration = Histogram(
            "dbmigrate_step_duration_seconds",
            "Duration of each step Job, from creation to completion.",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "dbmigrate_last_success_timestamp_seconds",
            "Unix time of the last run that reached Succeeded, per resource.",
            labels,
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "dbmigrate_rollbacks",
            "Emergency rollbacks that finished, by outcome (verified or not).",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.backup_size = Gauge(
            "dbmigrate_backup_size_bytes",
            "Size of the latest verified backup, per resource.",
            labels,
            registry=self.registry,
        )
        self.backup_finished = Gauge(
            "dbmigrate_backup_completed_timestamp_seconds",
            "Unix time the latest verified backup finished, per resource.",
            labels,
            registry=self.registry,
        )
        self._backup_age = _BackupAgeCollector(clock)
        self.registry.register(self._backup_age)
        self.notifications = Counter(
            "dbmigrate_notifications",
            "Webhook notifications that finished, by target, event and outcome.",
            [*labels, "target", "event", "outcome"],
            registry=self.registry,
        )
        self.lint_findings = Gauge(
            "dbmigrate_lint_findings",
            "Unsuppressed lint findings of the latest plan, by severity, per resource.",
            [*labels, "severity"],
            registry=self.registry,
        )

    def observe_phase(self, namespace: str, name: str, phase: str) -> None:
        """Record the resource's current phase (the phase gauge counts resources per phase)."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        with self._lock:
            self._phases[(namespace, name)] = phase
            self._refresh_phases()

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted resource."""
        key = (namespace, name)
        with self._lock:
            self._phases.pop(key, None)
            self._refresh_phases()
            self._backup_age.finished.pop(key, None)
        for gauge in (self.last_success, self.backup_size, self.backup_finished):
            _remove(gauge, namespace, name)
        for severity in LINT_SEVERITIES:
            _remove(self.lint_findings, namespace, name, severity)

    def _refresh_phases(self) -> None:
        counts = dict.fromkeys(PHASES, 0)
        for phase in self._phases.values():
            counts[phase] += 1
        for phase, count in counts.items():
            self.migrations.labels(phase).set(count)

    def observe_step_duration(self, step: str, outcome: str, seconds: float) -> None:
        """One finished step Job: its duration and outcome (Succeeded or Failed)."""
        self.step_duration.labels(step, outcome).observe(max(0.0, seconds))

    def observe_success(self, namespace: str, name: str, when: datetime) -> None:
        """The resource reached Succeeded at ``when``."""
        self.last_success.labels(namespace, name).set(when.timestamp())

    def observe_rollback(self, namespace: str, name: str, verified: bool) -> None:
        """An emergency rollback finished; ``verified`` says whether the database is back."""
        self.rollbacks.labels(namespace, name, "verified" if verified else "unverified").inc()

    def observe_backup(
        self, namespace: str, name: str, size_bytes: int, finished: datetime
    ) -> None:
        """The latest verified backup of the resource: size and finish time (age at scrape)."""
        self.backup_size.labels(namespace, name).set(size_bytes)
        self.backup_finished.labels(namespace, name).set(finished.timestamp())
        with self._lock:
            self._backup_age.finished[(namespace, name)] = finished.timestamp()

    def observe_lint(self, namespace: str, name: str, counts: Mapping[str, int]) -> None:
        """Unsuppressed findings of the latest plan, by severity (missing severities are 0)."""
        for severity in LINT_SEVERITIES:
            self.lint_findings.labels(namespace, name, severity).set(counts.get(severity, 0))

    def observe_notification(
        self, namespace: str, name: str, target: str, event: str, outcome: str
    ) -> None:
        """A notification finished: ``outcome`` delivered, or failed (after its retries)."""
        self.notifications.labels(namespace, name, target, event, outcome).inc()

    def observe_status(self, namespace: str, name: str, status: DatabaseMigrationStatus) -> None:
        """Derive every metric from a status; safe to call on each reconcile (deduplicated)."""
        self.observe_phase(namespace, name, status.phase)
        for job in status.jobs:
            if job.outcome == "Running" or job.finished_at is None:
                continue
            if self._first_time(self._seen_jobs, (namespace, name, job.name)):
                seconds = (job.finished_at - job.created_at).total_seconds()
                self.observe_step_duration(job.step, job.outcome, seconds)
        if status.phase == "Succeeded" and status.finished_at is not None:
            self.observe_success(namespace, name, status.finished_at)
        if status.backup is not None and status.backup.verified:
            backup = status.backup
            self.observe_backup(namespace, name, backup.size_bytes, backup.finished_at)
        if status.lint is not None:
            counts: dict[str, int] = {}
            for finding in status.lint.findings:
                if not finding.suppressed:
                    counts[finding.severity] = counts.get(finding.severity, 0) + 1
            self.observe_lint(namespace, name, counts)
        rollback = status.rollback
        if rollback is not None and status.phase in ("RolledBack", "Failed"):
            marker = (namespace, name, status.run_id or str(rollback.started_at))
            if self._first_time(self._seen_rollbacks, marker):
                self.observe_rollback(namespace, name, rollback.verified)

    def _first_time(self, seen: set[tuple[str, str, str]], item: tuple[str, str, str]) -> bool:
        with self._lock:
            if item in seen:
                return False
            seen.add(item)
            return True

    def heartbeat(self) -> None:
        """Called regularly by the operator's event loop; ``/healthz`` fails when it stops."""
        self._heartbeat = time.monotonic()

    def healthy(self, max_silence: float) -> bool:
        """Alive until the first heartbeat; afterwards, a heartbeat within ``max_silence``."""
        beat = self._heartbeat
        return beat is None or time.monotonic() - beat <= max_silence

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


def _remove(metric: Gauge, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        return  # the series was never set: nothing to remove


METRICS = OperatorMetrics()
observe_phase = METRICS.observe_phase
observe_step_duration = METRICS.observe_step_duration
observe_success = METRICS.observe_success
observe_rollback = METRICS.observe_rollback
observe_backup = METRICS.observe_backup
observe_lint = METRICS.observe_lint
observe_notification = METRICS.observe_notification
observe_status = METRICS.observe_status
forget_resource = METRICS.forget
heartbeat = METRICS.heartbeat


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a background thread; ``stop()`` shuts it down."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = server.server_address[1]

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(metrics: OperatorMetrics, max_silence: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            elif path == "/healthz":
                ok = metrics.healthy(max_silence)
                body = b"ok\n" if ok else b"event loop silent: no heartbeat\n"
                self._send(200 if ok else 503, "text/plain; charset=utf-8", body)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would flood the operator's log

    return Handler


def start_metrics_server(
    port: int,
    host: str = "0.0.0.0",
    *,
    metrics: OperatorMetrics = METRICS,
    max_silence: float = 120.0,
) -> MetricsServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` (port 0 picks a free one)."""
    server = ThreadingHTTPServer((host, port), _handler(metrics, max_silence))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
