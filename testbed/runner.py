"""Runs one Pod for `testbed.kubelet.LocalKubelet` in a thread and reports its status.

Lifecycle, as a kubelet would report it: Pending (waiting with `CreateContainerConfigError` while
a Secret, ConfigMap or service account is missing) → Running (startTime, container running) →
Succeeded or Failed (container terminated with exitCode and reason Completed / Error /
StartError, and the termination message the process wrote, or with FallbackToLogsOnError the end
of a failed container's log; pod reason DeadlineExceeded past the pod's own
activeDeadlineSeconds). A pod being
deleted has its process group sent SIGTERM, then SIGKILL after the grace period (at most 30 s); it
is then marked Failed and the object is deleted with grace 0.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import podrun
from testbed.podrun import Obj
from testbed.proc import start_process

if TYPE_CHECKING:
    from testbed.kubelet import LocalKubelet

log = logging.getLogger("testbed.kubelet")
START_ERROR = 128
MESSAGE_BYTES = 4096  # a kubelet keeps this much of a termination message file
LOG_TAIL_LINES, LOG_TAIL_BYTES = 80, 2048  # and this much of the log with FallbackToLogsOnError


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodRunner(threading.Thread):
    """The thread that prepares, runs, restarts (OnFailure) and reports one Pod."""

    def __init__(self, kubelet: LocalKubelet, pod: Obj, pod_dir: Path, log_path: Path) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}-{meta['name']}", daemon=True)
        self.kubelet, self.pod, self.pod_dir, self.log_path = kubelet, pod, pod_dir, log_path
        self.namespace, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.container = pod["spec"]["containers"][0]
        self._killed = threading.Event()
        self._why = ""
        self._grace = 5.0
        self._started_at = now()
        self._restarts = 0

    def kill(self, why: str, grace: float = 5.0) -> None:
        """Asks the thread to stop the pod's process (SIGTERM, SIGKILL after `grace` s)."""
        self._why, self._grace = why, min(max(grace, 1.0), 30.0)
        self._killed.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: the local kubelet failed", self.namespace, self.pod_name)

    def _run(self) -> None:
        prepared = self._prepare()
        if prepared is None:
            return
        while True:
            code, reason, message = self._run_once(prepared)
            message = message or self._termination_message(prepared, code)
            policy = self.pod["spec"].get("restartPolicy", "Always")
            again = policy == "Always" or (policy == "OnFailure" and code != 0)
            if self._killed.is_set() or reason == "DeadlineExceeded" or not again:
                break
            self._restarts += 1
            if self._killed.wait(min(10.0, 0.5 * 2**self._restarts)):
                break
        if self.kubelet.stopping or self._why == "pod deleted from the API":
            return
        self._report_terminated(code, reason, message)
        if self._killed.is_set():
            self.kubelet.force_delete(self.namespace, self.pod_name, self.uid)

    def _prepare(self) -> podrun.Prepared | None:
        last = ""
        while not self._killed.is_set():
            try:
                return self.kubelet.prepare(self.pod, self.pod_dir)
            except podrun.WaitingError as exc:
                if str(exc) != last:
                    last = str(exc)
                    self._patch(
                        self._container_state(
                            {"waiting": {"reason": "CreateContainerConfigError", "message": last}}
                        )
                    )
                self._killed.wait(1.0)
            except podrun.UnsupportedError as exc:
                self._report_terminated(START_ERROR, "StartError", str(exc))
                return None
        if not self.kubelet.stopping:
            self._report_terminated(137, "Error", f"killed before start: {self._why}")
            self.kubelet.force_delete(self.namespace, self.pod_name, self.uid)
        return None

    def _run_once(self, prepared: podrun.Prepared) -> tuple[int, str, str]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = start_process(prepared.argv, self.log_path, env=prepared.env, cwd=prepared.cwd)
        except OSError as exc:
            return START_ERROR, "StartError", f"{prepared.argv[0]}: {exc.strerror or exc}"
        self._started_at = now()
        self._patch(self._running_status())
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        ends = time.monotonic() + float(deadline) if deadline else None
        reason = ""
        while proc.poll() is None:
            if ends is not None and time.monotonic() > ends:
                reason, self._grace = "DeadlineExceeded", 5.0
                break
            if self._killed.wait(0.1):
                break
        code = _terminate(proc, self._grace)
        return code, reason or ("Completed" if code == 0 else "Error"), ""

    def _termination_message(self, prepared: podrun.Prepared, code: int) -> str:
        """What the container left as its termination message (see the module docstring)."""
        path = prepared.termination_file
        written = path.read_bytes()[:MESSAGE_BYTES] if path is not None and path.exists() else b""
        if written.strip() or code == 0 or not prepared.fallback_to_logs:
            return written.decode(errors="replace")
        if not self.log_path.exists():
            return ""
        lines = self.log_path.read_bytes().splitlines()[-LOG_TAIL_LINES:]
        return b"\n".join(lines)[-LOG_TAIL_BYTES:].decode(errors="replace")

    def _running_status(self) -> Obj:
        status = self._container_state({"running": {"startedAt": self._started_at}}, ready=True)
        status.update(
            phase="Running",
            startTime=self.pod.get("status", {}).get("startTime") or self._started_at,
            hostIP="127.0.0.1",
            podIP="127.0.0.1",
            podIPs=[{"ip": "127.0.0.1"}],
            conditions=_conditions(True),
        )
        return status

    def _report_terminated(self, code: int, reason: str, message: str) -> None:
        state: dict[str, Any] = {
            "exitCode": code,
            "reason": "Error" if reason == "DeadlineExceeded" else reason,
            "startedAt": self._started_at,
            "finishedAt": now(),
        }
        if message:
            state["message"] = message
        status = self._container_state({"terminated": state})
        status.update(phase="Succeeded" if code == 0 else "Failed", conditions=_conditions(False))
        if reason == "DeadlineExceeded":
            status.update(reason=reason, message="Pod was active on the node longer than allowed")
        self._patch(status)

    def _container_state(self, state: Obj, ready: bool = False) -> Obj:
        full = {"waiting": None, "running": None, "terminated": None, **state}
        entry = {
            "name": self.container["name"],
            "image": self.container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": ready,
            "restartCount": self._restarts,
            "state": full,
        }
        return {"containerStatuses": [entry]}

    def _patch(self, status: Obj) -> None:
        if not self.kubelet.stopping:
            self.kubelet.patch_status(self.namespace, self.pod_name, status)


def _conditions(ready: bool) -> list[Obj]:
    value = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": value},
        {"type": "Ready", "status": value},
    ]


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> int:
    """Stops the process group (if still running) and returns the exit code as Kubernetes reports
    it (128 + signal for a signalled process). Leftover processes of the group are killed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # a container's exit ends all its processes
    code = proc.returncode
    return 128 - code if code < 0 else code
