"""``dbmigrate operator``: the Kopf operator.

``dbmigrate operator`` runs the Kopf handlers of ``dbmigrate.controller.handlers`` standalone,
either for a list of namespaces or for all of them, logged in with ``--kubeconfig`` or in-cluster.
Its arguments become one immutable ``OperatorSettings`` (``dbmigrate.controller.settings``), the
only way configuration reaches the handlers. It accepts the arguments the Helm chart's Deployment
passes: ``--namespace``/``--all-namespaces``, ``--liveness``, ``--metrics-port`` (``/metrics``
and ``/healthz``; 0 for none), ``--log-format text|json`` (redacting handler of
``dbmigrate.logging_setup``), ``--resync-seconds``, ``--verbose``, ``--job-image`` (default: env
``DBMIGRATE_IMAGE``, which the chart sets), and the operator-wide notification targets: ``--notify``
(repeatable; the URL comes from an environment variable, which the chart fills from a Secret),
``--notify-attempts`` and ``--notify-timeout``. With ``--leader-elect`` it first waits until it
holds the Lease (``dbmigrate.controller.leader``; ``--lease-*``), answers ``/healthz`` on the
liveness port meanwhile, renews it while Kopf runs, exits at once (code 1) if it loses it, and
releases it on SIGTERM after Kopf has stopped.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from dbmigrate.api.exitcodes import EXIT_OK, EXIT_USAGE
from dbmigrate.api.labels import PAUSED_ENV

if TYPE_CHECKING:
    from dbmigrate.controller.leader import LeaseConfig
    from dbmigrate.controller.settings import OperatorSettings
    from dbmigrate.decision.notifications import Target


def register(subparsers: Any) -> None:
    """Add ``operator``."""
    op = subparsers.add_parser(
        "operator",
        help="run the DatabaseMigration operator (Kopf, standalone)",
        description="Watch DatabaseMigrations and drive them through their Jobs.",
    )
    scope = op.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    op.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    op.add_argument(
        "--resync-seconds",
        type=float,
        default=10.0,
        help="how often an unfinished migration is looked at without any event (default 10)",
    )
    op.add_argument(
        "--job-image",
        default=os.environ.get("DBMIGRATE_IMAGE"),
        metavar="IMAGE",
        help="image of the step Jobs unless a resource's spec.jobs.image says otherwise "
        "(default: $DBMIGRATE_IMAGE, else this version's published image)",
    )
    op.add_argument(
        "--liveness", metavar="URL", help="Kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    op.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve Prometheus /metrics (and /healthz) on this port (default 0: no server)",
    )
    op.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="TARGET",
        help="an operator-wide webhook notified about every DatabaseMigration, as "
        "name=N,url-env=VAR[,format=json|slack][,events=Failed+RolledBack+...]; the URL is read "
        "from the environment variable VAR (repeatable; a resource's spec.notifications adds to "
        "these)",
    )
    op.add_argument(
        "--notify-attempts",
        type=int,
        default=4,
        metavar="N",
        help="POSTs per notification at most, with exponential backoff (default 4)",
    )
    op.add_argument(
        "--notify-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time limit of each POST (default 5)",
    )
    _log_format_arg(op)
    op.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    op.add_argument(
        "--paused",
        action="store_true",
        default=bool(os.environ.get(PAUSED_ENV)),
        help="start no new step of any migration or rollback request, for incident work (a "
        f"running step finishes; default: ${PAUSED_ENV} set)",
    )
    _leader_args(op)
    op.set_defaults(func=operator_command)


def _leader_args(op: argparse.ArgumentParser) -> None:
    from dbmigrate.controller.leader import DEFAULT_LEASE_NAME

    op.add_argument(
        "--leader-elect",
        action="store_true",
        help="run as one of several replicas: reconcile only while holding a Lease",
    )
    op.add_argument(
        "--lease-name", default=DEFAULT_LEASE_NAME, help="name of the Lease (default %(default)s)"
    )
    op.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else the first --namespace)",
    )
    op.add_argument(
        "--lease-identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="holderIdentity written in the Lease (default: $POD_NAME, else host-pid)",
    )
    op.add_argument(
        "--lease-duration",
        type=int,
        default=15,
        metavar="SECONDS",
        help="leaseDurationSeconds: how long a silent leader keeps the Lease (default 15)",
    )
    op.add_argument(
        "--lease-renew",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often the leader renews the Lease (default 5)",
    )


def _log_format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text or one JSON object each (default text); secrets are redacted",
    )


def operator_command(args: argparse.Namespace) -> int:
    """Run Kopf standalone with our handlers until SIGINT/SIGTERM."""
    from dbmigrate.logging_setup import configure_logging

    configure_logging(args.log_format, "DEBUG" if args.verbose else "INFO")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # liveness probes, every 10 s
    settings = operator_settings(args)
    if settings is None:
        return EXIT_USAGE
    from dbmigrate.controller import handlers
    from dbmigrate.controller.metrics import start_metrics_server

    if settings.metrics_port:
        start_metrics_server(settings.metrics_port)
    if settings.lease is None:
        handlers.run(settings)
        return EXIT_OK
    from dbmigrate.controller.leader import run_as_leader

    return run_as_leader(
        settings.lease, settings.kubeconfig, settings.liveness, lambda: handlers.run(settings)
    )


def operator_settings(args: argparse.Namespace) -> OperatorSettings | None:
    """The settings of ``dbmigrate operator`` from its arguments, or None (with a message on
    stderr) when one is wrong."""
    from dbmigrate.controller.settings import DEFAULT_IMAGE, OperatorSettings
    from dbmigrate.controller.webhooks import RetryPolicy

    if args.kubeconfig and not os.path.exists(args.kubeconfig):
        print(f"--kubeconfig {args.kubeconfig}: no such file", file=sys.stderr)
        return None
    if not 0 <= args.metrics_port <= 65535:
        print(f"--metrics-port {args.metrics_port}: not a port number", file=sys.stderr)
        return None
    if not args.resync_seconds > 0:
        print(f"--resync-seconds {args.resync_seconds}: choose more than 0", file=sys.stderr)
        return None
    targets = _notify_targets(args)
    if targets is None:
        return None
    lease = _lease(args)
    if args.leader_elect and lease is None:
        return None
    return OperatorSettings(
        kubeconfig=args.kubeconfig,
        namespaces=() if args.all_namespaces else tuple(args.namespace),
        resync_seconds=args.resync_seconds,
        job_image=args.job_image or DEFAULT_IMAGE,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
        notify_targets=targets,
        notify_policy=RetryPolicy(attempts=args.notify_attempts, timeout=args.notify_timeout),
        lease=lease,
        paused=args.paused,
    )


def _lease(args: argparse.Namespace) -> LeaseConfig | None:
    """The Lease of ``--leader-elect`` (None without it, or with a message when wrong)."""
    if not args.leader_elect:
        return None
    from dbmigrate.controller.leader import LeaseConfig

    namespace = args.lease_namespace or (args.namespace or [None])[0]
    if not namespace:
        print("--leader-elect: give --lease-namespace (or set POD_NAMESPACE)", file=sys.stderr)
        return None
    if not 0 < args.lease_renew < args.lease_duration * 2 / 3:
        print(
            f"--lease-renew {args.lease_renew}: choose more than 0 and less than two thirds of "
            f"--lease-duration {args.lease_duration}",
            file=sys.stderr,
        )
        return None
    return LeaseConfig(
        namespace=namespace,
        name=args.lease_name,
        identity=args.lease_identity,
        duration=args.lease_duration,
        renew_every=args.lease_renew,
        retry_every=min(2.0, args.lease_renew),
    )


def _notify_targets(args: argparse.Namespace) -> tuple[Target, ...] | None:
    """The ``--notify`` targets, or None (with a message on stderr) when one is wrong."""
    from dbmigrate.decision.notifications import parse_operator_target

    if not 1 <= args.notify_attempts <= 10:
        print(f"--notify-attempts {args.notify_attempts}: choose 1 to 10", file=sys.stderr)
        return None
    if not 0 < args.notify_timeout <= 60:
        print(f"--notify-timeout {args.notify_timeout}: choose (0, 60] seconds", file=sys.stderr)
        return None
    targets: list[Target] = []
    for text in args.notify:
        try:
            target = parse_operator_target(text)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return None
        if target.url_env is not None and not os.environ.get(target.url_env):
            print(
                f"--notify {target.name}: the environment variable {target.url_env} that should "
                "hold its URL is not set",
                file=sys.stderr,
            )
            return None
        if any(t.name == target.name for t in targets):
            print(f"--notify: the name {target.name} is given twice", file=sys.stderr)
            return None
        targets.append(target)
    return tuple(targets)
