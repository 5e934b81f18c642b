"""``dbmigrate operator --leader-elect``: hold the Lease around Kopf, fail closed without it.

Kept apart from ``operator_cmds`` because it owns threads and the process's exit: the follower
blocks here until it holds the Lease (serving ``/healthz`` on the liveness port meanwhile, so the
kubelet does not restart a healthy standby), then Kopf starts and a thread renews the Lease. If the
Lease is lost (taken, or not renewed within the renew deadline) the process exits at once with
code 1, without waiting for Kopf: a replica must never reconcile without the Lease. After Kopf
stops (SIGTERM), the Lease is released so a follower takes over within its retry period.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from dbmigrate.controller.kube import Kube, load_api_client
from dbmigrate.controller.leader import LeaderElector, LeaseConfig

log = logging.getLogger("dbmigrate.leader")
LOST_EXIT_CODE = 1


def lease_config(args: argparse.Namespace) -> LeaseConfig:
    """The LeaseConfig of the ``--lease-*`` arguments."""
    return LeaseConfig(
        namespace=args.lease_namespace,
        name=args.lease_name,
        identity=args.lease_identity,
        duration=args.lease_duration,
        renew_every=args.lease_renew,
        retry_every=min(2.0, args.lease_renew),
    )


def run_as_leader(args: argparse.Namespace, run: Callable[[], None]) -> int:
    """Wait for the Lease, then ``run()`` (Kopf) while renewing it; release it afterwards."""
    config = lease_config(args)
    kube = Kube(load_api_client(args.kubeconfig), timeout=max(1.0, config.renew_deadline / 3))
    elector = LeaderElector(kube, config)
    stop = threading.Event()
    log.info("leader election as %s on lease %s/%s", config.identity, config.namespace, config.name)
    with standby_health(args.liveness):
        elector.acquire(stop)
    keeper = threading.Thread(
        target=elector.keep, args=(stop, exit_without_lease), name="lease-renewal", daemon=True
    )
    keeper.start()
    try:
        run()
    finally:
        stop.set()
        keeper.join(timeout=config.renew_deadline)
        elector.release()
    return 0


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
