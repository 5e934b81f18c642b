"""What ``dbmigrate operator`` was told, as one immutable value handed to the handlers.

The command line (``dbmigrate.cli.operator``) builds one ``OperatorSettings`` from its arguments,
reading the environment variables the Helm chart sets (``DBMIGRATE_IMAGE``, ``POD_NAME``, ...)
there and only there, and passes it to ``dbmigrate.controller.handlers.run``. Nothing in the
controller reads the environment or module-level state for its configuration: a value set on the
command line is the value the handlers use (the timer's interval included, which Kopf fixes when
a handler is registered), and a test builds exactly the settings it means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dbmigrate import __version__
from dbmigrate.controller.leader import LeaseConfig
from dbmigrate.controller.webhooks import RetryPolicy
from dbmigrate.decision.notifications import Target

DEFAULT_IMAGE = f"ghcr.io/dbmigrate/dbmigrate:{__version__}"
DEFAULT_RESYNC_SECONDS = 10.0


@dataclass(frozen=True)
class OperatorSettings:
    """One operator process's configuration; see the flags of ``dbmigrate operator``."""

    kubeconfig: str | None = None  # None: in-cluster, then $KUBECONFIG
    namespaces: tuple[str, ...] = ()  # the watched namespaces; empty: cluster-wide
    resync_seconds: float = DEFAULT_RESYNC_SECONDS  # the timer of an unfinished migration
    job_image: str = DEFAULT_IMAGE  # the step Jobs' image unless spec.jobs.image says otherwise
    liveness: str | None = None  # Kopf's liveness endpoint URL
    metrics_port: int = 0  # /metrics and /healthz; 0: no server
    notify_targets: tuple[Target, ...] = ()  # operator-wide notification targets (--notify)
    notify_policy: RetryPolicy = field(default_factory=RetryPolicy)
    lease: LeaseConfig | None = None  # --leader-elect: reconcile only while holding this Lease
    paused: bool = False  # --paused: start no new step anywhere (``decision.pause``)

    def __post_init__(self) -> None:
        if not self.resync_seconds > 0:
            raise ValueError(f"resync_seconds must be more than 0, not {self.resync_seconds}")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port {self.metrics_port} is not a port number")
        if not self.job_image:
            raise ValueError("job_image must not be empty")

    @property
    def clusterwide(self) -> bool:
        """True when every namespace is watched (no ``--namespace``)."""
        return not self.namespaces
