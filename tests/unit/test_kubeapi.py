"""The step's API client outside a Pod: the kubeconfig named by KUBECONFIG, against a local
HTTPS server that checks the CA, the bearer token and the client certificate as an API server
does; in a Pod, the service account's files, as before."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbmigrate.runner import kubeapi
from dbmigrate.runner.kubeapi import (
    ApiCallError,
    KubeconfigError,
    ServiceAccountClient,
    default_credentials,
    kubeconfig_credentials,
)
from testbed.certs import CertPaths, write_certs
from testbed.podrun import write_service_account_kubeconfig

pytestmark = pytest.mark.unit

RESOURCE = "/apis/dbmigrate.io/v1alpha1/namespaces/ns/databasemigrations/mig"


@dataclass
class Seen:
    """What the server saw of each request: path, Authorization header, client certificate CN."""

    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    seen: Seen

    def _answer(self) -> None:
        peer = self.connection.getpeercert()
        subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
        self.seen.requests.append(
            (self.path, self.headers.get("Authorization"), subject.get("commonName"))
        )
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        data = json.dumps({"status": {"echo": json.loads(body) if body else None}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return write_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server(certs: CertPaths) -> Iterator[tuple[str, Seen]]:
    """An HTTPS server on 127.0.0.1 that accepts (and records) a client certificate of the CA."""
    seen = Seen()
    handler = type("Handler", (_Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certs.serving_cert, certs.serving_key)
    tls.load_verify_locations(cafile=certs.ca_cert)
    tls.verify_mode = ssl.CERT_OPTIONAL
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(folder: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path = folder / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "here",
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_token_and_ca_data(tmp_path: Path, certs: CertPaths, server: tuple[str, Seen]) -> None:
    url, seen = server
    cluster = {"server": url, "certificate-authority-data": _b64(certs.ca_cert)}
    path = _kubeconfig(tmp_path, cluster, {"token": "t0ken"})
    client = ServiceAccountClient(kubeconfig_credentials(str(path)))
    client.patch_status("ns", "mig", {"status": {"apply": {"phase": "Running"}}})
    assert client.get("ns", "mig")["status"]["echo"] is None
    assert seen.requests == [
        (f"{RESOURCE}/status", "Bearer t0ken", None),
        (RESOURCE, "Bearer t0ken", None),
    ]


def test_a_token_file_is_read_again_for_each_request(
    tmp_path: Path, certs: CertPaths, server: tuple[str, Seen]
) -> None:
    """Bound tokens are rotated: a long step must send the current one (relative paths are
    relative to the kubeconfig's folder, and so is the CA file)."""
    url, seen = server
    (tmp_path / "ca.crt").write_bytes(certs.ca_cert.read_bytes())
    (tmp_path / "token").write_text("first\n")
    cluster = {"server": url, "certificate-authority": "ca.crt"}
    path = _kubeconfig(tmp_path, cluster, {"tokenFile": "token"})
    client = ServiceAccountClient(kubeconfig_credentials(str(path)))
    client.get("ns", "mig")
    (tmp_path / "token").write_text("rotated\n")
    client.get("ns", "mig")
    assert [auth for _path, auth, _cn in seen.requests] == ["Bearer first", "Bearer rotated"]


@pytest.mark.parametrize("as_data", [True, False], ids=["data", "files"])
def test_a_client_certificate(
    as_data: bool, tmp_path: Path, certs: CertPaths, server: tuple[str, Seen]
) -> None:
    url, seen = server
    if as_data:
        user = {
            "client-certificate-data": _b64(certs.admin_cert),
            "client-key-data": _b64(certs.admin_key),
        }
    else:
        user = {"client-certificate": str(certs.admin_cert), "client-key": str(certs.admin_key)}
    cluster = {"server": url, "certificate-authority": str(certs.ca_cert)}
    client = ServiceAccountClient(kubeconfig_credentials(str(_kubeconfig(tmp_path, cluster, user))))
    client.get("ns", "mig")
    assert seen.requests == [(RESOURCE, None, "dbmigrate-admin")]


def test_a_server_path_prefix_is_kept(
    tmp_path: Path, certs: CertPaths, server: tuple[str, Seen]
) -> None:
    url, seen = server
    cluster = {"server": f"{url}/k8s/clusters/c-1/", "certificate-authority": str(certs.ca_cert)}
    path = _kubeconfig(tmp_path, cluster, {"token": "t"})
    ServiceAccountClient(kubeconfig_credentials(str(path))).get("ns", "mig")
    assert seen.requests[0][0] == f"/k8s/clusters/c-1{RESOURCE}"


def test_a_server_of_another_ca_is_refused(
    tmp_path: Path, certs: CertPaths, server: tuple[str, Seen]
) -> None:
    url, seen = server
    other = write_certs(tmp_path / "other")
    path = _kubeconfig(
        tmp_path, {"server": url, "certificate-authority": str(other.ca_cert)}, {"token": "t"}
    )
    client = ServiceAccountClient(kubeconfig_credentials(str(path)))
    with pytest.raises(ApiCallError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get("ns", "mig")
    assert seen.requests == []


def test_a_user_without_credentials_is_a_clear_error(tmp_path: Path, certs: CertPaths) -> None:
    cluster = {"server": "https://127.0.0.1:6443", "certificate-authority": str(certs.ca_cert)}
    user = {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}
    path = _kubeconfig(tmp_path, cluster, user)
    with pytest.raises(KubeconfigError, match="user 'u' has no token, tokenFile or client cert"):
        kubeconfig_credentials(str(path))


@pytest.mark.parametrize(
    ("cluster", "user", "complaint"),
    [
        ({"server": "http://127.0.0.1:8080"}, {"token": "t"}, "is not https"),
        ({"server": "https://h", "certificate-authority": "nope.crt"}, {"token": "t"}, "nope.crt"),
        ({"server": "https://h"}, {"client-certificate": "c.crt"}, "both the certificate and key"),
    ],
)
def test_unusable_kubeconfigs_say_why(
    cluster: dict[str, Any], user: dict[str, Any], complaint: str, tmp_path: Path
) -> None:
    with pytest.raises(KubeconfigError, match=complaint):
        kubeconfig_credentials(str(_kubeconfig(tmp_path, cluster, user)))


def test_a_missing_context_or_file_says_so(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"server": "https://h"}, {"token": "t"})
    path.write_text(path.read_text().replace("current-context: here", "current-context: gone"))
    with pytest.raises(KubeconfigError, match="no context named 'gone'"):
        kubeconfig_credentials(str(path))
    with pytest.raises(KubeconfigError, match="No such file"):
        kubeconfig_credentials(str(tmp_path / "absent"))


def test_the_first_file_of_several_wins(tmp_path: Path, certs: CertPaths) -> None:
    """As kubectl merges KUBECONFIG=a:b: the first file naming a context or user wins."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _kubeconfig(tmp_path / "a", {"server": "https://first:6443"}, {"token": "a"})
    second = _kubeconfig(tmp_path / "b", {"server": "https://second:6443"}, {"token": "b"})
    credentials = kubeconfig_credentials(f"{first}:{second}")
    assert (credentials.host, credentials.port, credentials.token()) == ("first", 6443, "a")


def test_outside_a_pod_kubeconfig_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certs: CertPaths
) -> None:
    monkeypatch.setattr(kubeapi, "SERVICE_ACCOUNT_DIR", tmp_path / "no-service-account")
    path = _kubeconfig(tmp_path, {"server": "https://api.example:6443"}, {"token": "t"})
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert default_credentials().host == "api.example"
    monkeypatch.delenv("KUBECONFIG")
    with pytest.raises(ApiCallError, match="KUBECONFIG is not set"):
        default_credentials()


def test_in_a_pod_the_service_account_wins_over_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certs: CertPaths
) -> None:
    """The real kubelet's files: token and ca.crt, the address from the environment."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token\n")
    (account / "ca.crt").write_bytes(certs.ca_cert.read_bytes())
    monkeypatch.setattr(kubeapi, "SERVICE_ACCOUNT_DIR", account)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))  # not even read
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    credentials = default_credentials()
    assert (credentials.host, credentials.port, credentials.token()) == (
        "10.0.0.1",
        443,
        "pod-token",
    )
    assert credentials.base_path == ""


def test_the_test_beds_pod_kubeconfig_is_the_service_accounts_token(
    tmp_path: Path, certs: CertPaths, server: tuple[str, Seen]
) -> None:
    """The local kubelet's kubeconfig for a pod holds the minted token and nothing else."""
    url, seen = server
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("minted")
    (account / "ca.crt").write_bytes(certs.ca_cert.read_bytes())
    port = int(url.rsplit(":", 1)[1])
    path = write_service_account_kubeconfig(tmp_path / "kubeconfig", account, ("127.0.0.1", port))
    ServiceAccountClient(kubeconfig_credentials(str(path))).get("ns", "mig")
    assert seen.requests == [(RESOURCE, "Bearer minted", None)]
    (user,) = yaml.safe_load(path.read_text())["users"]
    assert user["user"] == {"tokenFile": str(account / "token")}
