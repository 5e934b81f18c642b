"""The whole test bed in one object: control plane, PostgreSQL and the local kubelet.

`LocalTestbed` starts everything in this process's care (the pytest session fixture uses it) and
`ExternalTestbed` wraps an existing cluster named by a kubeconfig (kind, say), where Jobs run
the built image for real and no local kubelet is needed. Both offer the same interface:
`.kubeconfig`, `.api_client()`, `.kubectl(*args)`, `.pg_admin_url`, `.kubelet` (or None),
`.real_kubelet` and `.pod_url(url)`: the same database as pods reach it (on kind, PostgreSQL runs
in the cluster: the tests reach it through a port on loopback, pods by its Service's DNS name).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from testbed.controlplane import ControlPlane, bin_dir, find_binaries
from testbed.kubelet import LocalKubelet
from testbed.postgres import PostgresServer
from testbed.proc import TestbedError


def with_host(url: str, host: str | None) -> str:
    """``url`` with its host:port replaced by ``host`` (unchanged if None)."""
    if not host:
        return url
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}" if userinfo else host))


class _Base:
    kubeconfig: Path
    pg_admin_url: str
    kubelet: LocalKubelet | None
    kubectl_bin: str
    pod_database_host: str | None = None  # host:port of the database as pods reach it
    real_kubelet = False  # True where pods are containers run by a kubelet (kind, say)

    def pod_url(self, url: str) -> str:
        """``url`` with the host and port that pods use for the same database."""
        return with_host(url, self.pod_database_host)

    def api_client(self) -> k8s.ApiClient:
        """A new kubernetes ApiClient for the test bed's admin (close it when done)."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl with the test bed's kubeconfig; stdout and stderr are captured."""
        argv = [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args]
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, check=check, timeout=timeout
        )


class LocalTestbed(_Base):
    """etcd + kube-apiserver + kube-controller-manager + PostgreSQL + local kubelet."""

    def __init__(self, root: Path | None = None, with_kubelet: bool = True) -> None:
        find_binaries()  # fail before making any folder
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="dbmigrate-testbed-")) if root is None else root
        self.controlplane = ControlPlane(self.root / "controlplane")
        self.postgres = PostgresServer()
        self.kubeconfig = self.controlplane.kubeconfig
        self.kubectl_bin = str(self.controlplane.bin / "kubectl")
        self.kubelet = None
        self._with_kubelet = with_kubelet
        self.timings: dict[str, float] = {}

    @property
    def pg_admin_url(self) -> str:  # type: ignore[override]
        return self.postgres.admin_url

    def start(self) -> None:
        """Starts PostgreSQL alongside the control plane, then the kubelet; all or nothing."""
        began = time.monotonic()
        pg_error: list[BaseException] = []

        def start_pg() -> None:
            try:
                self.postgres.start()
            except BaseException as exc:
                pg_error.append(exc)

        pg_thread = threading.Thread(target=start_pg, name="start-postgres")
        pg_thread.start()
        try:
            try:
                self.controlplane.start()
            finally:
                pg_thread.join()
            if pg_error:
                raise pg_error[0]
            self.timings.update(self.controlplane.timings)
            if self._with_kubelet:
                self.kubelet = LocalKubelet(self.kubeconfig, self.root / "kubelet")
                self.kubelet.start()
            self.timings["total"] = time.monotonic() - began
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops the kubelet (and its pods), the control plane and PostgreSQL; no process stays."""
        errors: list[BaseException] = []
        for part in (self.kubelet, self.controlplane, self.postgres):
            if part is None:
                continue
            try:
                part.stop()
            except BaseException as exc:  # stop the other parts anyway, then report
                errors.append(exc)
        self.kubelet = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise TestbedError(f"stopping the test bed failed: {errors}") from errors[0]


class ExternalTestbed(_Base):
    """An existing cluster (env DBMIGRATE_TEST_KUBECONFIG) and database
    (env DBMIGRATE_TEST_DATABASE_URL; env DBMIGRATE_TEST_POD_DATABASE_HOST is its host:port as
    pods reach it, when that differs). Its pods run on real kubelets."""

    real_kubelet = True

    def __init__(
        self, kubeconfig: Path, pg_admin_url: str, pod_database_host: str | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.pg_admin_url = pg_admin_url
        self.pod_database_host = pod_database_host
        self.kubelet = None
        built = bin_dir() / "kubectl"
        found = shutil.which("kubectl")
        self.kubectl_bin = found or str(built)

    @classmethod
    def from_env(cls) -> ExternalTestbed:
        kubeconfig = Path(os.environ["DBMIGRATE_TEST_KUBECONFIG"])
        if not kubeconfig.is_file():
            raise TestbedError(f"DBMIGRATE_TEST_KUBECONFIG={kubeconfig} is not a file")
        url = os.environ.get("DBMIGRATE_TEST_DATABASE_URL")
        if not url:
            raise TestbedError(
                "DBMIGRATE_TEST_KUBECONFIG is set, so the cluster tier needs a database its Jobs "
                "can reach: set DBMIGRATE_TEST_DATABASE_URL to a superuser URL of it"
            )
        return cls(kubeconfig, url, os.environ.get("DBMIGRATE_TEST_POD_DATABASE_HOST") or None)
