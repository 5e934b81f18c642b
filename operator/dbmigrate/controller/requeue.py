"""Delayed reconciles: "look again in N seconds" without holding a Kopf handler open.

``decide`` may ask to be called again after ``requeue_after`` seconds (a maintenance window that
opens at a known time, a lock that may be released). Kopf's timer is the slow safety net; this
small scheduler keeps one pending wake-up per resource (the earliest asked for) on one daemon
thread, and calls back into the Reconciler when it is due.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("dbmigrate.operator")

Key = tuple[str, str]


class Requeuer:
    """One daemon thread; ``schedule(namespace, name, delay)`` keeps the earliest wake-up."""

    def __init__(
        self, callback: Callable[[str, str], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._callback = callback
        self._clock = clock
        self._heap: list[tuple[float, Key]] = []
        self._due: dict[Key, float] = {}
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, namespace: str, name: str, delay: float) -> None:
        key = (namespace, name)
        when = self._clock() + max(0.0, delay)
        with self._cv:
            if key in self._due and self._due[key] <= when:
                return
            self._due[key] = when
            heapq.heappush(self._heap, (when, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="requeue", daemon=True)
                self._thread.start()
            self._cv.notify()

    def pending(self) -> dict[Key, float]:
        """Seconds until each pending wake-up (for tests and debugging)."""
        now = self._clock()
        with self._cv:
            return {k: round(v - now, 3) for k, v in self._due.items()}

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def _next_due(self) -> Key | None:
        """Wait until a wake-up is due and return its key (None when stopping)."""
        with self._cv:
            while not self._stopped:
                if not self._heap:
                    self._cv.wait()
                    continue
                when, key = self._heap[0]
                if self._due.get(key) != when:  # superseded by an earlier wake-up
                    heapq.heappop(self._heap)
                    continue
                wait = when - self._clock()
                if wait > 0:
                    self._cv.wait(timeout=wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[key]
                return key
        return None

    def _run(self) -> None:
        while (key := self._next_due()) is not None:
            try:
                self._callback(*key)
            except Exception:  # a failed wake-up must not stop the others
                log.exception("requeued reconcile of %s/%s failed", *key)
