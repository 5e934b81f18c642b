"""The test bed running in the background for a developer (`python -m testbed up|down|status`).

`up()` starts etcd, kube-apiserver, kube-controller-manager, PostgreSQL and the local kubelet (as
a `python -m testbed.kubelet` process) so that they outlive the command, and records them in
`<state>/state.json` (default state folder: `.testbed/` in the repository, gitignored). The
superuser database URL is written to `<state>/database-url` (mode 0600) rather than printed.
`down()` stops every recorded process (kubelet first, so it stops its pods), checks that none is
left, and removes the data but keeps the logs. `status()` says what is running and healthy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from testbed.bed import LocalTestbed
from testbed.kubelet import MARKER
from testbed.proc import (
    TestbedError,
    group_alive,
    kill_marked,
    pid_alive,
    start_process,
    stop_group,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STATE = REPO / ".testbed"
STOP_ORDER = ("kubelet", "kube-controller-manager", "kube-apiserver", "etcd", "postgres")


@dataclass
class State:
    """What `up` started: enough for `down` and `status`, and for scripts such as the demo."""

    state_dir: str
    kubeconfig: str
    kubectl: str
    api_server: str
    database_url_file: str
    postgres_root: str
    kubelet_root: str
    pids: dict[str, int] = field(default_factory=dict)
    cmdline_marks: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        """The superuser URL of the test bed's PostgreSQL (contains the password)."""
        return Path(self.database_url_file).read_text().strip()


def read_state(state_dir: Path = DEFAULT_STATE) -> State | None:
    """The recorded state, or None when the test bed was never started here (or is down)."""
    path = state_dir / "state.json"
    return State(**json.loads(path.read_text())) if path.exists() else None


def _recorded_alive(state: State, part: str) -> bool:
    """True when the recorded pid still runs the recorded command (not a reused pid)."""
    pid = state.pids[part]
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return False
    return state.cmdline_marks.get(part, "") in cmdline


def up(state_dir: Path = DEFAULT_STATE) -> State:
    """Starts the whole test bed in the background; refuses if one is already running here."""
    old = read_state(state_dir)
    if old is not None:
        if any(_recorded_alive(old, part) for part in old.pids):
            raise TestbedError(f"the test bed in {state_dir} is already up; run `down` first")
        down(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    bed = LocalTestbed(root=state_dir, with_kubelet=False)
    bed.start()
    try:
        kubelet_root = state_dir / "kubelet"
        kubelet = _start_kubelet(bed, kubelet_root, state_dir / "logs" / "kubelet.log")
    except BaseException:
        bed.stop()
        raise
    assert bed.postgres.proc is not None
    url_file = state_dir / "database-url"
    url_file.touch(mode=0o600)
    url_file.write_text(bed.pg_admin_url + "\n")
    state = State(
        state_dir=str(state_dir),
        kubeconfig=str(bed.kubeconfig),
        kubectl=bed.kubectl_bin,
        api_server=bed.controlplane.server,
        database_url_file=str(url_file),
        postgres_root=str(bed.postgres.root),
        kubelet_root=str(kubelet_root),
        pids={"kubelet": kubelet, **bed.controlplane.pids(), "postgres": bed.postgres.proc.pid},
        cmdline_marks={
            "kubelet": str(kubelet_root),
            **{part: str(state_dir) for part in bed.controlplane.pids()},
            "postgres": str(bed.postgres.data_dir),
        },
        timings={k: round(v, 2) for k, v in bed.timings.items()},
    )
    (state_dir / "state.json").write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state


def _start_kubelet(bed: LocalTestbed, root: Path, log: Path) -> int:
    argv = [sys.executable, "-m", "testbed.kubelet", f"--kubeconfig={bed.kubeconfig}"]
    argv.append(f"--root={root}")
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    proc = start_process(argv, log, env=env, cwd=REPO)
    started = time.monotonic()
    wait_until(
        lambda: '"node":' in log.read_text(errors="replace"),
        part="local kubelet",
        proc=proc,
        log_path=log,
        timeout=30,
    )
    bed.timings["kubelet"] = time.monotonic() - started
    bed.timings["total"] = bed.timings.get("total", 0.0) + bed.timings["kubelet"]
    return proc.pid


def down(state_dir: Path = DEFAULT_STATE) -> list[str]:
    """Stops every recorded process, then removes data (not logs). Returns the parts stopped."""
    state = read_state(state_dir)
    if state is None:
        return []
    stopped = []
    for part in STOP_ORDER:
        if part in state.pids and _recorded_alive(state, part):
            first = signal.SIGINT if part == "postgres" else signal.SIGTERM
            stop_group(state.pids[part], first, timeout=30)
            stopped.append(part)
        if part == "kubelet":
            kill_marked(MARKER, state.kubelet_root)
    left = [p for p in state.pids if group_alive(state.pids[p]) and _recorded_alive(state, p)]
    if left:
        raise TestbedError(f"these test bed processes are still running: {left}")
    shutil.rmtree(state.postgres_root, ignore_errors=True)
    for path in ("controlplane/etcd", "controlplane/pki", "kubelet/pods", "kubelet/pvcs"):
        shutil.rmtree(state_dir / path, ignore_errors=True)
    for name in ("state.json", "database-url", "controlplane/kubeconfig"):
        (state_dir / name).unlink(missing_ok=True)
    return stopped


def status(state_dir: Path = DEFAULT_STATE) -> dict[str, str]:
    """Each part's health: `running`, `stopped`, or for the services `ready`/`not ready`."""
    state = read_state(state_dir)
    if state is None:
        return {}
    report = {p: "running" if _recorded_alive(state, p) else "stopped" for p in state.pids}
    if report.get("kube-apiserver") == "running":
        probe = subprocess.run(
            [state.kubectl, f"--kubeconfig={state.kubeconfig}", "get", "--raw=/readyz"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        report["kube-apiserver"] = "ready" if probe.stdout.strip() == "ok" else "not ready"
    if report.get("postgres") == "running":
        try:
            with psycopg.connect(state.database_url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            report["postgres"] = "ready"
        except psycopg.OperationalError:
            report["postgres"] = "not ready"
    return report
