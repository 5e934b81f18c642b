"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

The binaries come from `testbed/build-controlplane.sh` (pinned upstream Go modules, cached outside
the repo). `ControlPlane.start()` makes fresh certificates, starts etcd, then the API server (RBAC
and the built-in PodSecurity admission on, client-certificate admin), waits for `/readyz`, writes
an admin kubeconfig with embedded certificates, then starts the controller-manager with the job,
garbage-collector, namespace, ttl-after-finished and serviceaccount controllers. There is no
scheduler and no kubelet: `testbed.kubelet` stands in for them in tests.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from testbed.certs import CertPaths, write_certs
from testbed.proc import TestbedError, free_port, start_process, stop_process, wait_until

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-controlplane.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "ttl-after-finished-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
)


def bin_dir() -> Path:
    """The cache folder of the pinned binaries (env DBMIGRATE_TESTBED_BIN overrides it)."""
    if os.environ.get("DBMIGRATE_TESTBED_BIN"):
        return Path(os.environ["DBMIGRATE_TESTBED_BIN"])
    script = BUILD_SCRIPT.read_text()
    versions = {
        k: re.search(rf"^{k}=(\S+)$", script, re.M) for k in ("K8S_VERSION", "ETCD_VERSION")
    }
    k8s_v, etcd_v = (m.group(1) if m else "unknown" for m in versions.values())
    cache = os.environ.get("DBMIGRATE_TESTBED_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dbmigrate-testbed"
    )
    return Path(cache) / f"k8s-{k8s_v}-etcd-{etcd_v}" / "bin"


def find_binaries() -> Path:
    """`bin_dir()` if it holds every binary; otherwise an error saying how to build them."""
    folder = bin_dir()
    missing = [b for b in BINARIES if not os.access(folder / b, os.X_OK)]
    if missing:
        raise TestbedError(
            f"control-plane binaries missing in {folder}: {', '.join(missing)}; build them with "
            f"`make controlplane` (or `{BUILD_SCRIPT}`), which takes 10-20 minutes once"
        )
    return folder


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager under `root` (a temp folder by default)."""

    def __init__(self, root: Path | None = None) -> None:
        self.bin = find_binaries()
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="dbmigrate-cp-")) if root is None else root
        self.kubeconfig = self.root / "kubeconfig"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api_port = 0
        self.certs: CertPaths | None = None
        self.timings: dict[str, float] = {}

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def log_path(self, part: str) -> Path:
        return self.root / "logs" / f"{part}.log"

    def start(self) -> None:
        """Starts every part and waits until each is ready; stops them all if one fails."""
        began = time.monotonic()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.certs = write_certs(self.root / "pki")
            etcd_url = self._start_etcd()
            self.timings["etcd"] = time.monotonic() - began
            self._start_apiserver(etcd_url)
            self.timings["apiserver"] = time.monotonic() - began
            self._write_kubeconfig()
            self._start_controller_manager()
            self.timings["controller-manager"] = time.monotonic() - began
        except BaseException:
            self.stop()
            raise

    def _start_etcd(self) -> str:
        client_port, peer_port = free_port(), free_port()
        client = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        argv = [
            str(self.bin / "etcd"),
            "--name=testbed",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testbed={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        self._launch("etcd", argv, lambda: _http_ok(f"{client}/health", None), 30)
        return client

    def _start_apiserver(self, etcd_url: str) -> None:
        assert self.certs is not None
        c = self.certs
        self.api_port = free_port()
        argv = [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={c.serving_cert}",
            f"--tls-private-key-file={c.serving_key}",
            f"--client-ca-file={c.ca_cert}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={c.sa_pub}",
            f"--service-account-signing-key-file={c.sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",
            *self._audit_args(),
        ]
        ctx = self.admin_ssl_context()
        self._launch(
            "kube-apiserver", argv, lambda: _http_ok(f"{self.server}/readyz", ctx), 120, 0.25
        )

    def _audit_args(self) -> list[str]:
        """With env DBMIGRATE_TESTBED_AUDIT_LOG=FILE, every request is logged there (audit level
        Metadata: who, verb, resource, user agent; no bodies), for benchmarks that count an
        operator's API requests."""
        log_file = os.environ.get("DBMIGRATE_TESTBED_AUDIT_LOG")
        if not log_file:
            return []
        policy = self.root / "audit-policy.yaml"
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
            "rules:\n  - level: Metadata\n"
        )
        return [f"--audit-policy-file={policy}", f"--audit-log-path={log_file}"]

    def _start_controller_manager(self) -> None:
        assert self.certs is not None
        argv = [
            str(self.bin / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={self.certs.sa_key}",
            f"--root-ca-file={self.certs.ca_cert}",
            "--use-service-account-credentials=false",
        ]
        api = self.api_client()
        core = k8s.CoreV1Api(api)

        def default_sa_exists() -> bool:
            # The serviceaccount controller creates it once its informers have synced.
            try:
                core.read_namespaced_service_account("default", "default")
                return True
            except k8s.ApiException as exc:
                if exc.status == 404:
                    return False
                raise

        try:
            self._launch("kube-controller-manager", argv, default_sa_exists, 60, 0.25)
        finally:
            api.close()

    def _launch(
        self,
        part: str,
        argv: list[str],
        ready: Callable[[], bool],
        timeout: float,
        interval: float = 0.1,
    ) -> None:
        log = self.log_path(part)
        self.procs[part] = start_process(argv, log, cwd=self.root)
        wait_until(
            ready,
            part=part,
            proc=self.procs[part],
            log_path=log,
            timeout=timeout,
            interval=interval,
        )

    def admin_ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting the test bed's CA and presenting the admin client certificate."""
        assert self.certs is not None
        ctx = ssl.create_default_context(cafile=str(self.certs.ca_cert))
        ctx.load_cert_chain(str(self.certs.admin_cert), str(self.certs.admin_key))
        return ctx

    def _write_kubeconfig(self) -> None:
        assert self.certs is not None
        b64 = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testbed",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.certs.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64(self.certs.admin_cert),
                        "client-key-data": b64(self.certs.admin_key),
                    },
                }
            ],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "admin"}}],
            "current-context": "testbed",
        }
        self.kubeconfig.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def api_client(self) -> k8s.ApiClient:
        """A new kubernetes ApiClient for the admin user (close it when done)."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Runs the built kubectl against this control plane."""
        argv = [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    def pids(self) -> dict[str, int]:
        return {part: proc.pid for part, proc in self.procs.items()}

    def stop(self) -> None:
        """Stops the parts in reverse order, waits for each, and removes `root` if it is ours."""
        for part in reversed(list(self.procs)):
            stop_process(self.procs.pop(part))
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _http_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
