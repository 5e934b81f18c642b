"""The step Job's own line to the API server: two calls over the standard library's HTTPS.

A step pod needs exactly two requests: a JSON merge patch of its resource's ``/status`` and a GET
of the resource (verify and rollback read what the run did). The kubernetes client would do it,
but importing it costs a step pod 0.5-2 s of CPU before it does any work, on every step of every
migration; this module costs nothing to import. Credentials are those of the pod's service
account, read the way every in-cluster client reads them: the token (read again for each
request, since bound tokens are rotated) and the cluster CA from the service-account folder, the
address from ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``. Env ``DBMIGRATE_SA_DIR``
names another folder holding ``token`` and ``ca.crt`` (the test bed's local kubelet).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dbmigrate import API_GROUP, API_VERSION, PLURAL

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT_SECONDS = 30.0


class ApiCallError(Exception):
    """An API request failed: ``status`` is the HTTP status, or None when none came back."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class ServiceAccountClient:
    """Merge-patches and reads one kind of resource (ours) as the pod's service account."""

    def __init__(self, sa_dir: Path | None = None, host: str | None = None) -> None:
        folder = sa_dir or Path(os.environ.get("DBMIGRATE_SA_DIR") or SERVICE_ACCOUNT_DIR)
        self._token_path = folder / "token"
        host = host or os.environ.get("KUBERNETES_SERVICE_HOST")
        if not host:
            raise ApiCallError(
                "KUBERNETES_SERVICE_HOST is not set: the step reports its status only when it "
                "runs in a Pod (or with DBMIGRATE_SA_DIR and KUBERNETES_SERVICE_HOST set)",
                None,
            )
        self._host = host.strip("[]")
        self._port = int(os.environ.get("KUBERNETES_SERVICE_PORT") or 443)
        self._tls = ssl.create_default_context(cafile=str(folder / "ca.crt"))
        self._connection: http.client.HTTPSConnection | None = None

    def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """JSON merge patch of ``/status`` (only the keys in ``body`` change)."""
        self._request("PATCH", f"{_path(namespace, name)}/status", body)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """The resource, as the API server returns it."""
        found: dict[str, Any] = self._request("GET", _path(namespace, name), None)
        return found

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        headers = {
            "Authorization": f"Bearer {self._token_path.read_text().strip()}",
            "Accept": "application/json",
        }
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/merge-patch+json"
        try:
            response = self._send(method, path, payload, headers)
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
            self._connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=TIMEOUT_SECONDS, context=self._tls
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
