"""The step Job's own line to the API server: two calls over the standard library's HTTPS.

A step pod needs exactly two requests: a JSON merge patch of its resource's ``/status`` and a GET
of the resource (verify and rollback read what the run did). The kubernetes client would do it,
but importing it costs a step pod 0.5-2 s of CPU before it does any work, on every step of every
migration; this module costs nothing to import.

Credentials, in the order every client tries them:
- in a Pod, its service account, read the way every in-cluster client reads it: the token (read
  again for each request, since bound tokens are rotated) and the cluster CA from
  /var/run/secrets/kubernetes.io/serviceaccount, the address from
  ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``;
- elsewhere (no service-account token there), the current context of the kubeconfig named by
  ``KUBECONFIG`` (``kubeconfig_credentials``), so ``dbmigrate apply --report-to NS/NAME`` also
  reports from a person's machine. Its user authenticates with a ``token``, a ``tokenFile`` (read
  again for each request) or a client certificate and key (files or ``-data``); exec and
  auth-provider plugins are not supported.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from dbmigrate import API_GROUP, API_VERSION, PLURAL

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT_SECONDS = 30.0
Obj = dict[str, Any]


class ApiCallError(Exception):
    """An API request failed: ``status`` is the HTTP status, or None when none came back."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class KubeconfigError(ApiCallError):
    """The kubeconfig cannot be used (missing, malformed, or a user without usable credentials)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None)


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to authenticate to it."""

    host: str
    port: int
    tls: ssl.SSLContext  # the server's CA, and the client certificate if the user has one
    token: Callable[[], str | None]  # the bearer token, read at each request; None: none
    base_path: str = ""  # a server URL's path prefix (an API proxy's), without the final /


def in_cluster_credentials(sa_dir: Path | None = None) -> Credentials:
    """The Pod's service account: its token and CA in ``sa_dir`` (default: the standard folder),
    the address from the environment."""
    folder = sa_dir or SERVICE_ACCOUNT_DIR
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        raise ApiCallError(
            "KUBERNETES_SERVICE_HOST is not set: the pod's service account is usable only in a "
            "Pod (elsewhere, name a kubeconfig in KUBECONFIG)",
            None,
        )
    token_path = folder / "token"
    return Credentials(
        host=host.strip("[]"),
        port=int(os.environ.get("KUBERNETES_SERVICE_PORT") or 443),
        tls=ssl.create_default_context(cafile=str(folder / "ca.crt")),
        token=lambda: token_path.read_text().strip(),
    )


def default_credentials() -> Credentials:
    """The pod's service account when its token is there, else the kubeconfig in KUBECONFIG."""
    if (SERVICE_ACCOUNT_DIR / "token").exists():
        return in_cluster_credentials()
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        return kubeconfig_credentials(kubeconfig)
    raise ApiCallError(
        f"no service-account token in {SERVICE_ACCOUNT_DIR} (not in a Pod) and KUBECONFIG is "
        "not set: name a kubeconfig in KUBECONFIG to report to a resource from here",
        None,
    )


def kubeconfig_credentials(paths: str) -> Credentials:
    """The current context's cluster and user of the kubeconfig(s) ``paths`` (``os.pathsep``
    separated, the first file that names something wins, as kubectl merges them)."""
    files = [Path(p) for p in paths.split(os.pathsep) if p]
    merged = _merge([(_load(f), f.parent) for f in files])
    context_name = merged["current-context"]
    if not context_name:
        raise KubeconfigError(f"kubeconfig {paths}: no current-context")
    context, _folder = _entry(merged, "contexts", context_name)
    cluster, cluster_dir = _entry(merged, "clusters", context.get("cluster"))
    user, user_dir = _entry(merged, "users", context.get("user"))
    try:
        return _credentials(cluster, cluster_dir, user, user_dir, context.get("user", ""))
    except (OSError, ssl.SSLError, ValueError) as exc:  # a file missing, a PEM that is not one
        raise KubeconfigError(f"kubeconfig {paths}: {exc}") from exc


def _load(path: Path) -> Obj:
    import yaml  # only here: the in-cluster path does not need it

    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"kubeconfig {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig (a mapping)")
    return loaded


def _merge(configs: list[tuple[Obj, Path]]) -> Obj:
    """One config of several; each named cluster, context and user keeps the folder of its file
    (relative paths in a kubeconfig are relative to that file)."""
    merged: Obj = {"current-context": "", "clusters": {}, "contexts": {}, "users": {}}
    for config, folder in configs:
        merged["current-context"] = merged["current-context"] or config.get("current-context")
        for section in ("clusters", "contexts", "users"):
            for item in config.get(section) or []:
                merged[section].setdefault(item.get("name"), (item.get(section[:-1]) or {}, folder))
    return merged


def _entry(merged: Obj, section: str, name: str | None) -> tuple[Obj, Path]:
    if not name or name not in merged[section]:
        raise KubeconfigError(f"kubeconfig: no {section[:-1]} named {name!r}")
    found: tuple[Obj, Path] = merged[section][name]
    return found


def _credentials(
    cluster: Obj, cluster_dir: Path, user: Obj, user_dir: Path, who: str
) -> Credentials:
    server = urlsplit(str(cluster.get("server") or ""))
    if server.scheme != "https" or not server.hostname:
        raise KubeconfigError(f"kubeconfig: the cluster's server {server.geturl()!r} is not https")
    tls = _server_tls(cluster, cluster_dir)
    token = _token_source(user, user_dir)
    has_certificate = _load_client_certificate(tls, user, user_dir)
    if token is None and not has_certificate:
        raise KubeconfigError(
            f"kubeconfig: user {who!r} has no token, tokenFile or client certificate and key "
            "(exec and auth-provider plugins are not supported)"
        )
    return Credentials(
        host=server.hostname,
        port=server.port or 443,
        tls=tls,
        token=token or (lambda: None),
        base_path=server.path.rstrip("/"),
    )


def _server_tls(cluster: Obj, folder: Path) -> ssl.SSLContext:
    """Trust the cluster's CA (data, else file, else the system's) unless told to skip it."""
    if cluster.get("certificate-authority-data"):
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        return ssl.create_default_context(cadata=pem)
    if cluster.get("certificate-authority"):
        cafile = folder / cluster["certificate-authority"]
        try:
            return ssl.create_default_context(cafile=str(cafile))
        except OSError as exc:
            raise KubeconfigError(f"certificate-authority {cafile}: {_reason(exc)}") from exc
    tls = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    return tls


def _token_source(user: Obj, folder: Path) -> Callable[[], str | None] | None:
    """A literal ``token``, or a ``tokenFile`` read at each request (it may be rotated)."""
    if user.get("token"):
        token = str(user["token"])
        return lambda: token
    if user.get("tokenFile"):
        path = folder / user["tokenFile"]
        return lambda: path.read_text().strip()
    return None


def _load_client_certificate(tls: ssl.SSLContext, user: Obj, folder: Path) -> bool:
    """Load the user's client certificate and key into ``tls``; False when it has none."""
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    cert_file, key_file = user.get("client-certificate"), user.get("client-key")
    if cert_data and key_data:
        _load_chain_from_data(tls, base64.b64decode(cert_data), base64.b64decode(key_data))
    elif cert_file and key_file:
        cert_path, key_path = folder / cert_file, folder / key_file
        try:
            tls.load_cert_chain(str(cert_path), str(key_path))
        except OSError as exc:
            raise KubeconfigError(
                f"client-certificate {cert_path} / client-key {key_path}: {_reason(exc)}"
            ) from exc
    elif cert_data or key_data or cert_file or key_file:
        raise KubeconfigError("kubeconfig: a client certificate needs both the certificate and key")
    else:
        return False
    return True


def _reason(exc: OSError) -> str:
    """An OSError's own words (ssl's FileNotFoundError leaves the file name out)."""
    return exc.strerror or str(exc)


def _load_chain_from_data(tls: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads a chain only from files: write them to a private folder, load, remove."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dbmigrate-tls-") as folder:
        cert_path, key_path = Path(folder) / "client.crt", Path(folder) / "client.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            path.touch(mode=0o600)
            path.write_bytes(data)
        tls.load_cert_chain(str(cert_path), str(key_path))


class ServiceAccountClient:
    """Merge-patches and reads one kind of resource (ours) as the pod's service account, or
    outside a Pod as the user of the kubeconfig in ``KUBECONFIG``."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._credentials = credentials or default_credentials()
        self._connection: http.client.HTTPSConnection | None = None

    def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """JSON merge patch of ``/status`` (only the keys in ``body`` change)."""
        self._request("PATCH", f"{_path(namespace, name)}/status", body)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """The resource, as the API server returns it."""
        found: dict[str, Any] = self._request("GET", _path(namespace, name), None)
        return found

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        headers = {"Accept": "application/json"}
        token = self._credentials.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/merge-patch+json"
        try:
            response = self._send(method, self._credentials.base_path + path, payload, headers)
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # a broken keep-alive connection is not used again
            raise ApiCallError(f"cannot reach the API server: {exc}", None) from exc
        if response.status >= 300:
            text = data.decode(errors="replace")
            raise ApiCallError(f"HTTP {response.status} {response.reason}: {text}", response.status)
        return json.loads(data) if data else {}

    def _send(
        self, method: str, path: str, payload: bytes | None, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        if self._connection is None:
            creds = self._credentials
            self._connection = http.client.HTTPSConnection(
                creds.host, creds.port, timeout=TIMEOUT_SECONDS, context=creds.tls
            )
        self._connection.request(method, path, body=payload, headers=headers)
        return self._connection.getresponse()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _path(namespace: str, name: str) -> str:
    ns, obj = quote(namespace, safe=""), quote(name, safe="")
    return f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{ns}/{PLURAL}/{obj}"
