"""The kind tier: a 3-node kind cluster running the project's image on a real kubelet.

`up()` builds what is missing (testbed/kind/build-images.sh: Docker, kind, the node image, the
project's image, all without a registry), checks the machine first (a Docker daemon, the disk,
the host port of PostgreSQL, a cluster of the same name left over), creates the cluster
(1 control plane + 2 workers, CoreDNS, a bridge CNI, local-path storage) or reuses a healthy one,
loads the project's image, runs PostgreSQL 15 in it as a StatefulSet behind a Service, and
installs the operator with the Helm chart, watching the namespaces named in `OPERATOR_NAMESPACES`
(created with the restricted Pod Security profile enforced). It records the kubeconfig and the
database URLs in `<cache>/clusters/<name>/` and returns the environment the cluster tier reads:
`DBMIGRATE_TEST_KUBECONFIG`, `DBMIGRATE_TEST_DATABASE_URL` (the host's way in, a NodePort
mapped to loopback), `DBMIGRATE_TEST_POD_DATABASE_HOST` (how pods reach it: the Service's DNS
name) and `DBMIGRATE_IMAGE` (the image the step Jobs run).
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from testbed.controlplane import bin_dir
from testbed.proc import TestbedError

REPO = Path(__file__).resolve().parent.parent
KIND_DIR = REPO / "testbed" / "kind"
CHART = REPO / "Chart" / "dbmigrate-operator"
DEFAULT_NAME = "dbmigrate"
DEFAULT_PG_PORT = 54330
PG_NODE_PORT = 30432
PG_NAMESPACE = "dbmigrate-db"
PG_SERVICE_HOST = f"postgres.{PG_NAMESPACE}.svc.cluster.local:5432"
OPERATOR_NAMESPACE = "dbmigrate-system"
OPERATOR_RELEASE = "dbmigrate"
# The Helm-installed operator watches only these (the tests' own operators take the others).
OPERATOR_NAMESPACES = ("dbmigrate-e2e", "dbmigrate-demo")
MIN_FREE_GIB = 12
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


@functools.cache
def versions() -> dict[str, str]:
    """The pinned versions and image names of testbed/kind/versions.sh."""
    out = subprocess.run(
        ["bash", "-c", f". {KIND_DIR / 'versions.sh'} && set"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted: tuple[str, ...]
    wanted = ("K8S_VERSION", "NODE_IMAGE", "PROJECT_IMAGE", "BUNDLE_IMAGE", "MIGRATIONS_IMAGE")
    wanted += ("TOOLS_KEY",)
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k: found[k].strip("'") for k in wanted}


def cache_dir() -> Path:
    base = os.environ.get("DBMIGRATE_KIND_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dbmigrate-kind"
    )
    return Path(base)


@dataclass
class KindCluster:
    """One kind cluster of the kind tier and the files that describe it."""

    name: str = DEFAULT_NAME
    pg_port: int = DEFAULT_PG_PORT

    @property
    def state(self) -> Path:
        return cache_dir() / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def kind(self) -> str:
        return str(cache_dir() / versions()["TOOLS_KEY"] / "bin" / "kind")

    def environment(self) -> dict[str, str]:
        """What the cluster tier needs to run against this cluster."""
        url = (self.state / "database-url").read_text().strip()
        return {
            "DBMIGRATE_TEST_KUBECONFIG": str(self.kubeconfig),
            "DBMIGRATE_TEST_DATABASE_URL": url,
            "DBMIGRATE_TEST_POD_DATABASE_HOST": PG_SERVICE_HOST,
            "DBMIGRATE_IMAGE": versions()["PROJECT_IMAGE"],
            "DBMIGRATE_TEST_MIGRATIONS_IMAGE": versions()["MIGRATIONS_IMAGE"],
            "DBMIGRATE_TEST_OPERATOR_NAMESPACES": ",".join(OPERATOR_NAMESPACES),
        }

    # --- commands ---------------------------------------------------------------------------

    def run(self, *argv: str, input: str | None = None, timeout: float = 600) -> str:
        env = {**os.environ, "PATH": f"/usr/sbin:/usr/bin:{os.environ.get('PATH', '')}"}
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if proc.returncode != 0:
            raise TestbedError(
                f"`{' '.join(argv[:4])} ...` failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 300) -> str:
        kubectl = str(bin_dir() / "kubectl")
        return self.run(
            kubectl, f"--kubeconfig={self.kubeconfig}", *args, input=input, timeout=timeout
        )

    def helm(self, *args: str) -> str:
        tools = self.run(str(REPO / "tools" / "install-tools.sh"), "helm").strip().splitlines()
        return self.run(f"{tools[-1]}/helm", f"--kubeconfig={self.kubeconfig}", *args)

    # --- checks before anything is made -----------------------------------------------------

    def exists(self) -> bool:
        if not Path(self.kind).exists():
            return False
        return self.name in self.run(self.kind, "get", "clusters").split()

    def check_disk(self) -> None:
        """Enough free disk for the cache and Docker's images (before anything is built)."""
        for path in (cache_dir(), Path("/var/lib/docker")):
            existing = next(p for p in (path, *path.parents) if p.exists())
            free = shutil.disk_usage(existing).free / 2**30
            if free < MIN_FREE_GIB:
                raise TestbedError(
                    f"not enough disk: {free:.1f} GiB free under {existing}, the kind tier needs "
                    f"{MIN_FREE_GIB} GiB (node image, 3 nodes, images). Free some space, e.g. "
                    "`docker system prune` or `make kind-down`."
                )

    def check_docker(self) -> None:
        path = f"/usr/sbin:/usr/bin:{os.environ.get('PATH', '')}"
        if shutil.which("docker", path=path) is None:
            raise TestbedError(
                "no docker command: `make kind-up` installs Docker from Debian's packages when "
                "run as root (apt-get install docker.io)"
            )
        docker = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": path},
        )
        if docker.returncode != 0:
            raise TestbedError(
                "no Docker daemon answers (`docker version` failed: "
                f"{docker.stderr.strip()[-300:]}). `make kind-up` starts one when run as root; "
                "otherwise start dockerd yourself, or add your user to the docker group."
            )

    def check_port_free(self) -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", self.pg_port))
            except OSError as exc:
                raise TestbedError(
                    f"port 127.0.0.1:{self.pg_port} (the host's way to the cluster's PostgreSQL) "
                    f"is taken ({exc.strerror}); free it or choose another with "
                    "DBMIGRATE_KIND_PG_PORT=<port>"
                ) from exc

    def healthy(self) -> str | None:
        """None if the existing cluster can be reused, else why not."""
        want = versions()["NODE_IMAGE"]
        try:
            self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            self.kubeconfig.write_text(
                self.run(self.kind, "get", "kubeconfig", "--name", self.name)
            )
            nodes = json.loads(self.kubectl("get", "nodes", "-o", "json", timeout=30))["items"]
        except (TestbedError, subprocess.TimeoutExpired) as exc:
            return f"its API server does not answer ({str(exc)[:200]})"
        images = {n["status"]["nodeInfo"].get("kubeletVersion") for n in nodes}
        ready = [n for n in nodes if _ready(n)]
        if len(nodes) != 3 or len(ready) != 3:
            return f"{len(ready)} of {len(nodes)} nodes Ready (3 wanted)"
        if images != {versions()["K8S_VERSION"]}:
            return f"its kubelets are {sorted(images)}, not {versions()['K8S_VERSION']} ({want})"
        image = self.run(
            "docker", "inspect", "--format", "{{.Config.Image}}", f"{self.name}-control-plane"
        ).strip()
        if image != want:
            return f"its nodes run {image}, not the current node image {want}"
        port = self.run("docker", "port", f"{self.name}-control-plane", f"{PG_NODE_PORT}/tcp")
        if f"127.0.0.1:{self.pg_port}" not in port:
            return f"its PostgreSQL port mapping is {port.strip()!r}, not 127.0.0.1:{self.pg_port}"
        return None

    # --- making it ------------------------------------------------------------------------

    def build(self) -> None:
        log(f"building what is missing ({KIND_DIR / 'build-images.sh'})")
        proc = subprocess.run(
            [str(KIND_DIR / "build-images.sh")], stdout=subprocess.PIPE, text=True
        )
        if proc.returncode != 0:
            raise TestbedError("building the kind tier's images failed (its log is above)")

    def create(self) -> None:
        config = self.state / "kind.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n"
            "- role: control-plane\n  extraPortMappings:\n"
            f"  - {{containerPort: {PG_NODE_PORT}, hostPort: {self.pg_port}, "
            "listenAddress: 127.0.0.1}\n- role: worker\n- role: worker\n"
        )
        log(f"creating kind cluster {self.name!r} (1 control plane + 2 workers)")
        self.run(
            self.kind,
            "create",
            "cluster",
            "--name",
            self.name,
            "--image",
            versions()["NODE_IMAGE"],
            "--config",
            str(config),
            "--kubeconfig",
            str(self.kubeconfig),
            "--wait",
            "180s",
            timeout=900,
        )

    def load_images(self) -> None:
        images = [versions()["PROJECT_IMAGE"], versions()["MIGRATIONS_IMAGE"]]
        log(f"loading {' and '.join(images)} into the nodes")
        self.run(self.kind, "load", "docker-image", *images, "--name", self.name, timeout=900)

    def install_postgres(self) -> None:
        url_file = self.state / "database-url"
        if url_file.exists():
            password = psycopg.conninfo.conninfo_to_dict(url_file.read_text().strip())["password"]
        else:
            password = secrets.token_urlsafe(18)
        manifest = (KIND_DIR / "postgres.yaml").read_text()
        manifest = manifest.replace("@PASSWORD@", str(password))
        manifest = manifest.replace("@IMAGE@", versions()["BUNDLE_IMAGE"])
        log("PostgreSQL 15 as a StatefulSet")
        self.kubectl("apply", "-f", "-", input=manifest)
        # A pod of an older revision that never became ready blocks the StatefulSet's rolling
        # update for good (OrderedReady): replace it.
        sts = json.loads(self.kubectl("-n", PG_NAMESPACE, "get", "sts", "postgres", "-o", "json"))
        revision = sts.get("status", {}).get("updateRevision")
        pods = json.loads(
            self.kubectl("-n", PG_NAMESPACE, "get", "pods", "-l", "app=postgres", "-o", "json")
        )["items"]
        for pod in pods:
            labels = pod["metadata"].get("labels", {})
            if revision and labels.get("controller-revision-hash") != revision:
                self.kubectl("-n", PG_NAMESPACE, "delete", "pod", pod["metadata"]["name"])
        self.kubectl(
            "-n",
            PG_NAMESPACE,
            "rollout",
            "status",
            "statefulset/postgres",
            "--timeout=300s",
            timeout=320,
        )
        url = f"postgresql://postgres:{password}@127.0.0.1:{self.pg_port}/postgres"
        deadline = time.monotonic() + 120
        while True:
            try:
                with psycopg.connect(url, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise TestbedError(f"PostgreSQL in the cluster not reachable: {exc}") from exc
                time.sleep(2)
        url_file.write_text(url + "\n")
        url_file.chmod(0o600)

    def install_operator(self) -> None:
        for ns in OPERATOR_NAMESPACES:
            doc = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "labels": dict([RESTRICTED.split("=")]),
                },
            }
            self.kubectl("apply", "-f", "-", input=json.dumps(doc))
        image = versions()["PROJECT_IMAGE"]
        repository, tag = image.rsplit(":", 1)
        log(f"installing the operator with the Helm chart ({image})")
        values = [
            f"image.repository={repository}",
            f"image.tag={tag}",
            "image.pullPolicy=Never",
            f"watchNamespaces={{{','.join(OPERATOR_NAMESPACES)}}}",
            "operator.resyncSeconds=3",
            "operator.logFormat=text",
        ]
        self.helm(
            "upgrade",
            "--install",
            OPERATOR_RELEASE,
            str(CHART),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            "300s",
            *[arg for v in values for arg in ("--set", v)],
        )
        # A new image under the same tag: restart so that the pod runs the one just loaded.
        self.kubectl("-n", OPERATOR_NAMESPACE, "rollout", "restart", "deployment")
        self.kubectl(
            "-n",
            OPERATOR_NAMESPACE,
            "rollout",
            "status",
            "deployment",
            "--timeout=300s",
            timeout=320,
        )

    def up(self) -> dict[str, str]:
        began = time.monotonic()
        self.check_disk()
        self.build()
        self.check_docker()
        if self.exists():
            why = self.healthy()
            if why is None:
                log(f"reusing the existing kind cluster {self.name!r} (healthy, same version)")
            else:
                log(f"deleting the existing kind cluster {self.name!r}: {why}")
                self.down()
                self.check_port_free()
                self.create()
        else:
            self.check_port_free()
            self.create()
        self.load_images()
        self.install_postgres()
        self.install_operator()
        log(f"kind cluster {self.name!r} ready in {time.monotonic() - began:.0f} s")
        return self.environment()

    def down(self) -> bool:
        """Deletes the cluster; False if there was none."""
        if not self.exists():
            return False
        self.run(self.kind, "delete", "cluster", "--name", self.name, timeout=300)
        shutil.rmtree(self.state, ignore_errors=True)
        return True


def _ready(node: dict[str, Any]) -> bool:
    conditions = node["status"]["conditions"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def log(message: str) -> None:
    print(f"[kind {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def from_env() -> KindCluster:
    port = os.environ.get("DBMIGRATE_KIND_PG_PORT") or str(DEFAULT_PG_PORT)
    if not port.isdigit():
        raise TestbedError(f"DBMIGRATE_KIND_PG_PORT={port!r} is not a port number")
    return KindCluster(os.environ.get("DBMIGRATE_KIND_CLUSTER") or DEFAULT_NAME, int(port))
