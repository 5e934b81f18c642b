"""Sends the webhook notifications ``notifications`` found due, off the reconcile's path.

The reconcile only hands Pending deliveries to ``Notifier.submit``, which returns at once: each
delivery is a task on the notifier's own asyncio loop (one daemon thread), so a receiver that is
down, slow or failing never holds a reconcile, a Kopf worker or the migration. A delivery reads
its URL when it starts (from the Secret key of a resource's target, or from the operator's
environment for an operator-wide one), POSTs the JSON body with a timeout per attempt, and
retries a bounded number of times with exponential backoff on what may heal (no connection, a
timeout, HTTP 408, 429 or 5xx). Its result goes to the ``on_result`` callback, which records it in
the status and, on failure, posts a Warning Event and counts it in a metric.

The URL is a credential (chat webhooks carry their token in it): it is never logged, never put in
an error message (errors are rebuilt from the exception's type and the HTTP status, never from the
client's text, which may quote the URL) and never stored anywhere but in the Secret.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import aiohttp

from dbmigrate import __version__
from dbmigrate.decision.notifications import DeliveryKey, DeliveryResult, Target
from dbmigrate.logging_setup import register_secret

log = logging.getLogger("dbmigrate.notifications")

RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = f"dbmigrate-operator/{__version__}"


class UrlUnavailable(Exception):
    """The target's URL cannot be read (its Secret, key or environment variable is missing)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``attempts`` POSTs at most, each within ``timeout`` seconds, waiting
    ``backoff`` seconds before the second and twice as long each time after, up to
    ``max_backoff``. The worst case is about attempts * timeout + the sum of the waits."""

    attempts: int = 4
    timeout: float = 5.0
    backoff: float = 1.0
    max_backoff: float = 8.0

    def waits(self) -> list[float]:
        """The waits between attempts."""
        return [min(self.backoff * 2**i, self.max_backoff) for i in range(self.attempts - 1)]


async def post_with_retries(
    url: str,
    body: Any,
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DeliveryResult:
    """POST ``body`` as JSON to ``url`` until a 2xx, a permanent refusal or the last attempt."""
    waits = policy.waits()
    error = "not attempted"
    headers = {"User-Agent": USER_AGENT}
    timeout = aiohttp.ClientTimeout(total=policy.timeout)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        for attempt in range(1, policy.attempts + 1):
            retry = True
            try:
                async with session.post(url, json=body, allow_redirects=False) as response:
                    if 200 <= response.status < 300:
                        return DeliveryResult(True, attempt)
                    error = f"the receiver answered HTTP {response.status}"
                    retry = response.status in RETRIED_STATUSES
            except TimeoutError:
                error = f"no answer within {policy.timeout:g}s"
            except aiohttp.ClientConnectionError as exc:
                error = f"cannot connect ({_cause(exc)})"
            except aiohttp.ClientError as exc:
                error = f"HTTP client error ({type(exc).__name__})"
            if not retry or attempt == policy.attempts:
                return DeliveryResult(False, attempt, error)
            await sleep(waits[attempt - 1])
    return DeliveryResult(False, policy.attempts, error)


def _cause(exc: BaseException) -> str:
    """The name of the innermost OS error (ConnectionRefusedError, ...): no text, no URL."""
    inner: BaseException = exc
    while isinstance(getattr(inner, "os_error", None), BaseException):
        inner = inner.os_error  # type: ignore[attr-defined]
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return type(inner).__name__


@dataclass(frozen=True)
class Delivery:
    """What ``submit`` hands over: which delivery, to which target, with which body."""

    namespace: str
    name: str
    key: DeliveryKey
    target: Target | None  # None: the target is no longer configured
    body: Any


SecretReader = Callable[[str, str, str], str | None]
ResultCallback = Callable[[Delivery, DeliveryResult], None]


class Notifier:
    """Delivers notifications on a background asyncio loop; ``submit`` never blocks."""

    def __init__(
        self,
        read_secret: SecretReader,
        on_result: ResultCallback,
        policy: RetryPolicy | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.read_secret = read_secret
        self.on_result = on_result
        self.policy = policy or RetryPolicy()
        self.environ = os.environ if environ is None else environ
        self._in_flight: set[tuple[str, str, DeliveryKey]] = set()
        self._guard = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="notifier", daemon=True)
        self._thread.start()

    def submit(self, delivery: Delivery) -> Future[None] | None:
        """Start ``delivery`` unless this process is delivering it already (None then)."""
        marker = (delivery.namespace, delivery.name, delivery.key)
        with self._guard:
            if marker in self._in_flight:
                return None
            self._in_flight.add(marker)
        return asyncio.run_coroutine_threadsafe(self._deliver(delivery, marker), self._loop)

    async def _deliver(self, delivery: Delivery, marker: tuple[str, str, DeliveryKey]) -> None:
        try:
            result = await self._send(delivery)
            await asyncio.to_thread(self.on_result, delivery, result)
        except Exception:  # a bug here must not kill the loop; the delivery stays Pending
            log.exception(
                "notification %s of %s/%s to target %s could not be completed",
                delivery.key.event,
                delivery.namespace,
                delivery.name,
                delivery.key.target,
            )
        finally:
            with self._guard:
                self._in_flight.discard(marker)

    async def _send(self, delivery: Delivery) -> DeliveryResult:
        try:
            url = await asyncio.to_thread(self._url, delivery)
        except UrlUnavailable as exc:
            return DeliveryResult(False, 0, str(exc))
        result = await post_with_retries(url, delivery.body, self.policy)
        log.info(
            "notification %s of %s/%s to target %s: %s after %d attempt(s)%s",
            delivery.key.event,
            delivery.namespace,
            delivery.name,
            delivery.key.target,
            "delivered" if result.delivered else "failed",
            result.attempts,
            f" ({result.error})" if result.error else "",
        )
        return result

    def _url(self, delivery: Delivery) -> str:
        target = delivery.target
        if target is None:
            raise UrlUnavailable(f"target {delivery.key.target} is no longer configured")
        if target.url_env is not None:
            url = self.environ.get(target.url_env)
            if not url:
                raise UrlUnavailable(
                    f"the operator's environment variable {target.url_env} is not set"
                )
        elif target.secret_ref is not None:
            ref = target.secret_ref
            url = self.read_secret(delivery.namespace, ref.name, ref.key)
            if not url:
                raise UrlUnavailable(f"Secret {ref.name} has no key {ref.key} (or it is empty)")
        else:
            raise UrlUnavailable(f"target {target.name} names no URL")
        url = url.strip()
        register_secret(url)  # a log line that ever quotes it is masked
        if not url.startswith(("http://", "https://")):
            raise UrlUnavailable(f"the URL of target {target.name} is not http(s)")
        return url

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop (deliveries still under way are abandoned, and stay Pending)."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=timeout)
