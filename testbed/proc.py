"""Process helpers shared by the test bed's parts.

Every part (PostgreSQL, etcd, kube-apiserver, kube-controller-manager, the local kubelet's pods)
is a child process started in its own session, so stopping it can signal the whole process group
and nothing is left behind. Failures to start carry the part's name and the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class TestbedError(RuntimeError):
    """A part of the test bed failed to start or stop; the message names the part and why."""

    __test__ = False  # not a pytest test class, despite the name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def start_process(
    argv: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Starts `argv` in a new session with stdout and stderr appended to `log_path`.

    `user` runs the process as that OS user (only possible as root; ignored otherwise).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        kwargs: dict[str, object] = {}
        if user is not None and os.geteuid() == 0:
            kwargs.update(user=user, group=user, extra_groups=[])
        return subprocess.Popen(  # type: ignore[call-overload]
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            **kwargs,
        )


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def group_alive(pgid: int) -> bool:
    """True while any live process is in process group `pgid`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def stop_group(pgid: int, first: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signals the process group `pgid` (a session leader's pid), then SIGKILLs what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, first)
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        _reap(pgid)
        time.sleep(0.05)
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while group_alive(pgid) and time.monotonic() < deadline:
            _reap(pgid)
            time.sleep(0.05)
    _reap(pgid)
    if group_alive(pgid):
        raise TestbedError(f"process group {pgid} survived SIGKILL")


def stop_process(proc: subprocess.Popen[bytes], first: int = signal.SIGTERM) -> None:
    """Stops a process started by `start_process` and its whole group, and reaps it."""
    stop_group(proc.pid, first)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _reap(pid: int) -> None:
    """Collects our own child `pid` if it exited, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    ready: Callable[[], bool],
    *,
    part: str,
    proc: subprocess.Popen[bytes] | None,
    log_path: Path,
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Polls `ready` until it is true; raises TestbedError with the log tail if the process dies
    or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            raise TestbedError(
                f"{part} exited with code {proc.returncode} while starting; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise TestbedError(
                f"{part} was not ready after {timeout:.0f} s; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(interval)


def kill_marked(key: str, value: str) -> list[int]:
    """SIGKILLs every process whose environment holds `key=value` (a safety net for processes
    that escaped their group); returns their pids."""
    needle = f"{key}={value}".encode()
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle not in environ.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            killed.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    for pid in killed:
        _reap(pid)
    return killed


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def teardown_on_sigterm() -> None:
    """Makes SIGTERM (as sent by `timeout` or CI) raise KeyboardInterrupt in the main thread, so
    pytest runs its fixture teardown and the test bed stops instead of being orphaned."""
    on_main = threading.current_thread() is threading.main_thread()
    if on_main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
