"""A small local kubelet for tests: Pods of the real Job controller run as local processes.

The test bed has no scheduler, no container runtime and no real kubelet. `LocalKubelet` fills in:
it registers a Node (`testbed-node`, Ready, with a heartbeat), binds every unscheduled Pod of the
default scheduler to it with a Binding, runs each bound Pod's single container `command`+`args`
as a local process (see `testbed.podrun` for env, volumes, mount paths and the service-account
token contract: `DBMIGRATE_PATH_MAP`, `KUBECONFIG`), marks it Running, and on exit writes
phase Succeeded/Failed with the container's terminated exit code and reason. So the real Job
controller's backoffLimit, activeDeadlineSeconds (it deletes the pod: the process is killed) and
garbage collection all work. `restartPolicy: OnFailure` restarts the process in place.

Contract with the programs a pod runs (details in `testbed.podrun`):
- `DBMIGRATE_PATH_MAP`: JSON object, each volumeMount's mountPath -> the local folder standing in
  for it. Arguments starting with a mountPath (or `--flag=<mountPath>...`) are already rewritten.
- `KUBECONFIG`: set when the pod has a serviceAccountName; a kubeconfig whose only user is the
  pod's service-account token (the files /var/run/secrets/kubernetes.io/serviceaccount would
  hold, in a folder of the pod), so a client that reads a kubeconfig outside a Pod acts as the
  pod's service account and RBAC is really exercised. `KUBERNETES_SERVICE_HOST`/
  `KUBERNETES_SERVICE_PORT` name the API server, as on a real node.
Images, securityContext and resources are ignored: processes run as the test's user, with the
installed `dbmigrate` on PATH. stdout and stderr go to a file per pod: `logs(namespace, pod)`.
Run in-process (tests) or as `python -m testbed.kubelet --kubeconfig K --root DIR`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from testbed import podrun
from testbed.podrun import Obj
from testbed.proc import kill_marked
from testbed.runner import PodRunner, now

MARKER = "DBMIGRATE_TESTBED_KUBELET"
log = logging.getLogger("testbed.kubelet")


class LocalKubelet:
    """Runs the Pods of one Node as local processes; `start()`, then `stop()`."""

    def __init__(
        self, kubeconfig: Path, root: Path | None = None, node: str = "testbed-node"
    ) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="dbmigrate-kubelet-")) if root is None else root
        self.node = node
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        self.api = k8s.ApiClient(cfg)
        self.core = k8s.CoreV1Api(self.api)
        url = urlsplit(cfg.host)
        self.server = (url.hostname or "127.0.0.1", url.port or 443)
        self.ca_cert = Path(cfg.ssl_ca_cert).read_bytes() if cfg.ssl_ca_cert else b""
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._runs: dict[str, PodRunner] = {}
        self._threads: list[threading.Thread] = []

    # -- public interface ---------------------------------------------------------------------

    def start(self) -> None:
        """Registers the Node and starts the heartbeat and the pod watch."""
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self._register_node()
        for target in (self._heartbeat_loop, self._watch_loop):
            thread = threading.Thread(target=target, name=f"kubelet-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Kills every pod process (no status written), stops the threads, frees the folder."""
        self._stopping.set()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.kill("kubelet stopping")
        for run in runs:
            run.join(15)
        for thread in self._threads:
            thread.join(1)
        kill_marked(MARKER, str(self.root))
        self.api.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_path(self, namespace: str, pod: str) -> Path:
        return self.root / "logs" / namespace / f"{pod}.log"

    def logs(self, namespace: str, pod: str) -> str:
        """Everything the pod's process wrote to stdout and stderr so far ('' if none)."""
        path = self.log_path(namespace, pod)
        return path.read_text(errors="replace") if path.exists() else ""

    def pvc_dir(self, namespace: str, claim: str) -> Path:
        """The local folder standing in for PersistentVolumeClaim `claim`."""
        return self.root / "pvcs" / namespace / claim

    # -- node -----------------------------------------------------------------------------------

    def _register_node(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux"},
            },
        }
        try:
            self.core.create_node(body, _preload_content=False)  # type: ignore[arg-type]
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
        self._beat(transition=True)

    def _beat(self, transition: bool = False) -> None:
        ready: dict[str, Any] = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "local test kubelet is posting ready status",
            "lastHeartbeatTime": now(),
        }
        if transition:
            ready["lastTransitionTime"] = now()
        resources = {"cpu": "4", "memory": "8Gi", "pods": "250"}
        status = {
            "conditions": [ready],
            "capacity": resources,
            "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }
        self.core.patch_node_status(self.node, {"status": status}, _preload_content=False)

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(10):
            try:
                self._beat()
            except Exception:  # the API server may be restarting; the next beat retries
                log.exception("node heartbeat failed")

    # -- pods -------------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            watcher = k8s_watch.Watch()
            try:
                for event in watcher.stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=version,
                    timeout_seconds=5,
                    allow_watch_bookmarks=True,
                ):
                    if self._stopping.is_set():
                        watcher.stop()
                        break
                    self._handle(event["type"], event["raw_object"])
                version = watcher.resource_version
            except k8s.ApiException as exc:
                version = None
                if exc.status != 410:
                    log.warning("pod watch failed: %s", exc)
                    self._stopping.wait(1)
            except Exception:  # connection trouble while the API server stops or restarts
                log.exception("pod watch failed")
                version = None
                self._stopping.wait(1)

    def _handle(self, kind: str, pod: Obj) -> None:
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        node = spec.get("nodeName")
        if kind == "DELETED":
            with self._lock:
                gone = self._runs.get(meta["uid"])
            if gone is not None:
                gone.kill("pod deleted from the API")
        elif not node:
            scheduler = spec.get("schedulerName", "default-scheduler")
            if scheduler == "default-scheduler" and not meta.get("deletionTimestamp"):
                self._bind(pod)
        elif node == self.node:
            if meta.get("deletionTimestamp"):
                self._on_deletion(pod)
            else:
                self._ensure_running(pod)

    def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        try:
            self.core.create_namespaced_pod_binding(
                meta["name"],
                meta["namespace"],
                body,  # type: ignore[arg-type]
                _preload_content=False,
            )
        except k8s.ApiException as exc:
            if exc.status not in (404, 409):  # gone, or bound meanwhile
                raise

    def _ensure_running(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        phase = (pod.get("status") or {}).get("phase", "Pending")
        with self._lock:
            if uid in self._runs or phase in ("Succeeded", "Failed") or self._stopping.is_set():
                return
            meta = pod["metadata"]
            run = PodRunner(
                self,
                pod,
                pod_dir=self.root / "pods" / meta["namespace"] / f"{meta['name']}-{uid[:8]}",
                log_path=self.log_path(meta["namespace"], meta["name"]),
            )
            self._runs[uid] = run
        run.start()

    def _on_deletion(self, pod: Obj) -> None:
        meta = pod["metadata"]
        with self._lock:
            run = self._runs.get(meta["uid"])
        if run is not None and run.is_alive():
            run.kill("pod deleted", grace=float(meta.get("deletionGracePeriodSeconds") or 0))
        else:  # nothing running here: confirm the deletion, as a kubelet does
            self.force_delete(meta["namespace"], meta["name"], meta["uid"])

    def force_delete(self, namespace: str, name: str, uid: str) -> None:
        """Deletes the pod object with grace 0 (the kubelet's confirmation), if it still exists."""
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.core.delete_namespaced_pod(
                name,
                namespace,
                body=options,  # type: ignore[arg-type]
                _preload_content=False,
            )
        except k8s.ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def patch_status(self, namespace: str, name: str, status: Obj) -> None:
        """Strategic-merge patch of the pod's status (a pod deleted meanwhile is ignored)."""
        try:
            self.core.patch_namespaced_pod_status(
                name, namespace, {"status": status}, _preload_content=False
            )
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def prepare(self, pod: Obj, pod_dir: Path) -> podrun.Prepared:
        prepared = podrun.prepare(
            self.api, pod, pod_dir, self.root / "pvcs", self.server, self.ca_cert
        )
        prepared.env[MARKER] = str(self.root)
        return prepared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local kubelet of the dbmigrate test bed")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--root", required=True, type=Path, help="folder for pods, logs, PVCs")
    parser.add_argument("--node", default="testbed-node")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    kubelet = LocalKubelet(args.kubeconfig, args.root, args.node)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    kubelet.start()
    print(json.dumps({"node": args.node, "root": str(args.root)}), flush=True)
    done.wait()
    kubelet.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
