"""What the operator benchmark observes: step Jobs' and step exits' local arrival times, RSS.

Times are stamped with the local monotonic clock as watch events arrive (the API's timestamps
have whole-second resolution).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.labels import LABEL_MIGRATION, LABEL_STEP


class StampingWatch:
    """A watch on its own thread, started again when it drops, stamping each event's arrival."""

    name = "watch"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _stream(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _seen(self, obj: Any, now: float) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                for event in self._stream():
                    self._seen(event["object"], time.monotonic())
                    if self.stopping.is_set():
                        return
            except Exception as exc:  # a dropped watch: start again (a re-list is harmless)
                print(f"{self.name} restarted: {exc}", file=sys.stderr)
                time.sleep(0.2)


class JobWatch(StampingWatch):
    """Local arrival times of every step Job's first event and of its completion."""

    name = "job-watch"

    def __init__(self, api: k8s.ApiClient) -> None:
        self.batch = k8s.BatchV1Api(api)
        self.created: dict[tuple[str, str, str], float] = {}  # (ns, resource, step) -> t
        self.done: dict[tuple[str, str, str], float] = {}
        super().__init__()

    def _stream(self) -> Iterator[dict[str, Any]]:
        return watch.Watch().stream(
            self.batch.list_job_for_all_namespaces, label_selector=LABEL_MIGRATION,
            timeout_seconds=30,
        )  # fmt: skip

    def _seen(self, job: Any, now: float) -> None:
        labels = job.metadata.labels or {}
        key = (job.metadata.namespace, labels.get(LABEL_MIGRATION, ""), labels.get(LABEL_STEP, ""))
        conditions = (job.status.conditions if job.status else None) or []
        complete = any(c.type == "Complete" and c.status == "True" for c in conditions)
        with self.lock:
            self.created.setdefault(key, now)
            if complete:
                self.done.setdefault(key, now)

    def get(self, table: str, key: tuple[str, str, str]) -> float | None:
        with self.lock:
            return (self.created if table == "created" else self.done).get(key)


class StepExitWatch(StampingWatch):
    """Local arrival time of each resource's first ``status.stepExit`` per step."""

    name = "exit-watch"

    def __init__(self, api: k8s.ApiClient) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.ended: dict[tuple[str, str, str], float] = {}  # (ns, resource, step) -> t
        super().__init__()

    def _stream(self) -> Iterator[dict[str, Any]]:
        return watch.Watch().stream(
            self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, PLURAL,
            timeout_seconds=30,
        )  # fmt: skip

    def _seen(self, obj: dict[str, Any], now: float) -> None:
        ended = (obj.get("status") or {}).get("stepExit") or {}
        if ended.get("exitCode") != 0:
            return
        meta = obj["metadata"]
        with self.lock:
            self.ended.setdefault((meta["namespace"], meta["name"], ended["step"]), now)

    def get(self, key: tuple[str, str, str]) -> float | None:
        with self.lock:
            return self.ended.get(key)


def vm_kb(pid: int, field: str) -> int:
    """VmHWM / VmRSS of a process in kB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * pct // 100)))
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }
