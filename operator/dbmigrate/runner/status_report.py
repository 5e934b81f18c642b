"""A running step writes its own evidence into the resource's status, under its own key.

Each step Job runs with a namespace-scoped service account that may only patch
``databasemigrations/status``. ``StatusReporter`` sends ``{key: model}`` as a JSON merge patch to
the ``/status`` subresource, so it never touches what the operator owns (phase, conditions,
observedGeneration) nor another step's key. Fields the model leaves unset are sent as ``null``, so
a stale value of an earlier report (say, the index being built) is removed rather than kept.

Credentials: the pod's service account, or outside a Pod the kubeconfig in ``KUBECONFIG``
(``kubeapi``: the standard library's HTTPS, so a step pod does not pay for importing the
kubernetes client). Progress is throttled (at most one patch
every ``min_interval`` seconds); a final result is always sent, with retries. A failed patch is
logged, never raised: the step's own outcome must not depend on reporting. Every string of a
patch is redacted first (``logging_setup.redact_tree``): error messages may quote a URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from dbmigrate.api.base import ApiModel
from dbmigrate.logging_setup import redact_tree
from dbmigrate.runner.kubeapi import ApiCallError, ServiceAccountClient

log = logging.getLogger("dbmigrate.status")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
PROGRESS_ATTEMPTS = 2
RESULT_ATTEMPTS = 6


class PatchError(Exception):
    """A status patch failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class StatusTransport(Protocol):
    """Sends one merge patch to the resource's ``/status``; raises PatchError on failure."""

    def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None: ...


class KubernetesTransport:
    """The real transport: plain HTTPS as the pod's service account (see ``kubeapi``)."""

    def __init__(self) -> None:
        self._client = ServiceAccountClient()

    def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        try:
            self._client.patch_status(namespace, name, body)
        except ApiCallError as exc:
            transient = exc.status is None or exc.status in TRANSIENT_STATUS
            raise PatchError(_short(str(exc)), transient=transient) from exc

    def read_status(self, namespace: str, name: str) -> dict[str, Any]:
        """The resource's status (the step's Role allows get on its own resource)."""
        obj = self._client.get(namespace, name)
        status: dict[str, Any] = obj.get("status") or {}
        return status


def _short(body: object, limit: int = 300) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    return text if len(text) <= limit else text[:limit] + "..."


def _wire_with_nulls(model: ApiModel) -> dict[str, Any]:
    """camelCase JSON of the model, keeping None as null so a merge patch clears stale fields."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=False)


class StatusReporter:
    """Patches ``{key: model}`` into one DatabaseMigration's status (see the module docstring)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        transport: StatusTransport | None = None,
        min_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        retry_delay: float = 0.5,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.min_interval = min_interval
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._retry_delay = retry_delay
        self._last_progress: float | None = None
        self.sent = 0
        self.skipped = 0
        self.failures: list[str] = []

    def _get_transport(self) -> StatusTransport:
        if self._transport is None:
            self._transport = KubernetesTransport()
        return self._transport

    def progress(self, key: str, model: ApiModel) -> None:
        """Report live progress, at most once every ``min_interval`` seconds."""
        now = self._clock()
        if self._last_progress is not None and now - self._last_progress < self.min_interval:
            self.skipped += 1
            return
        self._last_progress = now
        self._send({key: model}, attempts=PROGRESS_ATTEMPTS, what="progress")

    def read_status(self) -> dict[str, Any] | None:
        """The resource's current status, or None (logged) when it cannot be read."""
        transport = self._get_transport()
        reader = getattr(transport, "read_status", None)
        if reader is None:
            return None
        try:
            status: dict[str, Any] = reader(self.namespace, self.name)
            return status
        except Exception as exc:  # the step goes on without the context it would have read
            log.warning("could not read the status of %s/%s: %s", self.namespace, self.name, exc)
            return None

    def result(self, key: str, model: ApiModel) -> None:
        """Report a step's final result; always sent, retried on transient errors."""
        self._send({key: model}, attempts=RESULT_ATTEMPTS, what="result")

    def results(self, parts: dict[str, ApiModel]) -> None:
        """Report several results of a step in one patch (one write, one watch event)."""
        self._send(parts, attempts=RESULT_ATTEMPTS, what="result")

    def _send(self, parts: dict[str, ApiModel], *, attempts: int, what: str) -> bool:
        target, key = f"{self.namespace}/{self.name}", ", ".join(parts)
        body = redact_tree({"status": {k: _wire_with_nulls(m) for k, m in parts.items()}})
        delay = self._retry_delay
        for attempt in range(1, attempts + 1):
            try:
                self._get_transport().patch_status(self.namespace, self.name, body)
                self.sent += 1
                return True
            except PatchError as exc:
                last = str(exc)
                if not exc.transient or attempt == attempts:
                    break
                log.warning(
                    "status %s %r of %s: attempt %d/%d failed (%s); retrying in %.1fs",
                    *(what, key, target, attempt, attempts, exc, delay),
                )
                self._sleep(delay)
                delay = min(delay * 2, 8.0)
            except Exception as exc:  # never let reporting crash the step
                last = f"{type(exc).__name__}: {exc}"
                break
        message = f"could not write status {what} {key!r} of {target}: {last}"
        self.failures.append(message)
        log.error("%s (the step goes on; its outcome is also in the Job's exit code)", message)
        return False
