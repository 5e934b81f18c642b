"""The operator's access to the API server: plain JSON in, plain JSON out.

The reconcile works on plain dicts (what the pure builders return and what ``decide`` reads), so
this module talks REST through the kubernetes client's connection (its TLS, client certificates
and tokens) without its typed models. Every call maps HTTP failures to ``ApiError`` with the
status code, so callers can tell "already exists" (success for a deterministic Job name), "gone"
and "forbidden" from what may heal (5xx, 429, timeouts).

Secrets: ``secret_keys`` reads a Secret object to learn which keys it has and returns only their
names: the database credentials are never read by the operator. ``secret_value`` returns one
value, for one purpose only: the URL of a notification target (``webhooks``), which is used to
send and never logged or stored.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config

from dbmigrate import API_GROUP, API_VERSION, PLURAL, __version__

Obj = dict[str, Any]
TRANSIENT = frozenset({0, 408, 429, 500, 502, 503, 504})
MERGE_PATCH = "application/merge-patch+json"
POOL_SIZE = 32
USER_AGENT = f"dbmigrate-operator/{__version__}"

# Where each kind we create or read lives in the REST API: (prefix, plural).
KINDS: dict[str, tuple[str, str]] = {
    "Job": ("/apis/batch/v1", "jobs"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Namespace": ("/api/v1", "namespaces"),
    "Pod": ("/api/v1", "pods"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Event": ("/api/v1", "events"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "DatabaseMigration": (f"/apis/{API_GROUP}/{API_VERSION}", PLURAL),
    "MigrationRollback": (f"/apis/{API_GROUP}/{API_VERSION}", "migrationrollbacks"),
    "DatabaseMigrationRollout": (f"/apis/{API_GROUP}/{API_VERSION}", "databasemigrationrollouts"),
}
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """An API call failed with an HTTP status (0: the API server could not be reached)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient from the given kubeconfig, else in-cluster, else $KUBECONFIG/~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(client_configuration=configuration)
    # one connection per worker thread (Kopf's 16, the requeue timers, Events), not urllib3's 10
    configuration.connection_pool_maxsize = POOL_SIZE
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT  # the operator's requests are told apart in audit logs
    return api


def path_of(kind: str, namespace: str | None, name: str | None = None, sub: str = "") -> str:
    """REST path of a namespaced collection or object (``sub``: a subresource like status)."""
    prefix, plural = KINDS[kind]
    path = f"{prefix}/namespaces/{quote(namespace)}/{plural}" if namespace else f"{prefix}/{plural}"
    if name:
        path += f"/{quote(name)}"
    return path + (f"/{sub}" if sub else "")


class Kube:
    """Thin, synchronous REST access (used from Kopf's handler threads)."""

    def __init__(self, api_client: client.ApiClient, timeout: float = 30.0) -> None:
        self.api = api_client
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Obj | list[Obj] | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Obj:
        """One REST call; returns the decoded JSON body or raises ApiError."""
        url_path = path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": accept, "Content-Type": content_type}
        method, url, headers, _, _ = self.api.param_serialize(
            method=method,
            resource_path=url_path,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        try:  # the REST client serialises the body as JSON (the content types all say json)
            response = self.api.call_api(method, url, headers, body, _request_timeout=self.timeout)
            raw = response.read()
        except client.ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason or ""), str(exc.reason)) from exc
        except OSError as exc:
            raise ApiError(0, "Unreachable", f"cannot reach the API server: {exc}") from exc
        except Exception as exc:  # urllib3 errors (timeouts, protocol) are not OSErrors
            if type(exc).__module__.startswith("urllib3"):
                raise ApiError(0, "Unreachable", f"API server request failed: {exc}") from exc
            raise
        decoded: Obj = json.loads(raw) if raw else {}
        if response.status >= 400:
            raise ApiError(response.status, str(response.reason), decoded.get("message", ""))
        return decoded

    # --- reads -------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The object, or None if it does not exist."""
        try:
            return self.request("GET", path_of(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, selector: str | None = None) -> list[Obj]:
        """Items of a namespaced list (all namespaces when ``namespace`` is None)."""
        query = {"labelSelector": selector} if selector else None
        items: list[Obj] = self.request("GET", path_of(kind, namespace), query=query)["items"]
        return items

    def list_pages(
        self,
        kind: str,
        namespace: str,
        selector: str | None = None,
        *,
        limit: int = 250,
        metadata_only: bool = False,
    ) -> Iterator[Obj]:
        """Items of a list, fetched ``limit`` at a time (memory stays bounded: the caller reduces
        each item as it comes); ``metadata_only``: names, labels, annotations, no data."""
        query = {"limit": str(limit)}
        if selector:
            query["labelSelector"] = selector
        accept = METADATA_ONLY if metadata_only else "application/json"
        while True:
            page = self.request("GET", path_of(kind, namespace), query=query, accept=accept)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            query["continue"] = token

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """Names of the keys a Secret holds (None if it does not exist). Values are dropped here
        and never leave this function."""
        found = self.secret_keys_and_version(namespace, name)
        return None if found is None else found[0]

    def secret_keys_and_version(
        self, namespace: str, name: str
    ) -> tuple[frozenset[str], str | None] | None:
        """The key names of a Secret and its resourceVersion (None if it does not exist): what
        it holds and whether it changed, never its values, which are dropped here."""
        secret = self.get("Secret", namespace, name)
        if secret is None:
            return None
        keys = frozenset(secret.get("data") or {}) | frozenset(secret.get("stringData") or {})
        return keys, secret.get("metadata", {}).get("resourceVersion")

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The text of one key of a Secret (None if the Secret or key is missing, or the value is
        not UTF-8). Used for notification URLs only; the caller never logs it."""
        secret = self.get("Secret", namespace, name)
        if secret is None:
            return None
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            text = (secret.get("stringData") or {}).get(key)
            return str(text) if text is not None else None
        try:
            return base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def replicas(self, kind: str, namespace: str, name: str) -> int | None:
        """spec.replicas of a Deployment or StatefulSet (None if it does not exist)."""
        try:
            scale = self.request("GET", path_of(kind, namespace, name, "scale"))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return int(scale.get("spec", {}).get("replicas") or 0)

    def pods_left(self, kind: str, namespace: str, name: str) -> tuple[str, ...]:
        """Names of the workload's pods that have not ended, terminating ones included (the
        selector comes from its scale subresource); none when the workload does not exist."""
        try:
            scale = self.request("GET", path_of(kind, namespace, name, "scale"))
        except ApiError as exc:
            if exc.status == 404:
                return ()
            raise
        selector = (scale.get("status") or {}).get("selector")
        if not selector:
            return ()
        pods = self.list("Pod", namespace, selector)
        ended = ("Succeeded", "Failed")
        return tuple(
            sorted(
                p["metadata"]["name"]
                for p in pods
                if (p.get("status") or {}).get("phase") not in ended
            )
        )

    # --- writes ------------------------------------------------------------------------------

    def create(self, obj: Obj) -> bool:
        """Create ``obj``; False (and no error) if an object of that name exists already."""
        return self.create_object(obj) is not None

    def create_object(self, obj: Obj) -> Obj | None:
        """Create ``obj`` and return it as the API server stored it; None if one of that name
        exists already."""
        meta = obj["metadata"]
        try:
            return self.request("POST", path_of(obj["kind"], meta.get("namespace")), obj)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    def create_or_update(self, obj: Obj, fields: tuple[str, ...]) -> str:
        """Create ``obj``, or make ``fields`` (such as data, rules) of the existing one equal to
        its own when they differ: a merge patch, with null for each key of a map field that
        ``obj`` no longer has (a file removed from spec.source.inline leaves the ConfigMap).
        Returns created, updated or unchanged."""
        if self.create(obj):
            return "created"
        meta = obj["metadata"]
        current = self.get(obj["kind"], meta["namespace"], meta["name"]) or {}
        patch = {
            f: _replacement(obj.get(f), current.get(f))
            for f in fields
            if current.get(f) != obj.get(f)
        }
        if not patch:
            return "unchanged"
        self.request(
            "PATCH",
            path_of(obj["kind"], meta["namespace"], meta["name"]),
            patch,
            content_type=MERGE_PATCH,
        )
        return "updated"

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        """Set spec.replicas through the scale subresource."""
        self.request(
            "PATCH",
            path_of(kind, namespace, name, "scale"),
            {"spec": {"replicas": replicas}},
            content_type=MERGE_PATCH,
        )

    def patch_status(
        self, namespace: str, name: str, status: Obj, kind: str = "DatabaseMigration"
    ) -> Obj:
        """Merge-patch the DatabaseMigration's (or ``kind``'s) ``/status`` with ``{"status":
        status}``."""
        return self.request(
            "PATCH",
            path_of(kind, namespace, name, "status"),
            {"status": status},
            content_type=MERGE_PATCH,
        )

    def patch_status_of(self, kind: str, namespace: str, name: str, status: Obj) -> Obj:
        """Merge-patch the ``/status`` of an object of ``kind`` with ``{"status": status}``."""
        return self.request(
            "PATCH", path_of(kind, namespace, name, "status"), {"status": status},
            content_type=MERGE_PATCH,
        )  # fmt: skip

    def patch_metadata(self, kind: str, namespace: str, name: str, metadata: Obj) -> Obj:
        """Merge-patch an object's metadata (labels, annotations)."""
        return self.request(
            "PATCH",
            path_of(kind, namespace, name),
            {"metadata": metadata},
            content_type=MERGE_PATCH,
        )


def _replacement(wanted: Any, current: Any) -> Any:
    """The merge-patch value turning ``current`` into ``wanted``: a map's dropped keys as null."""
    if isinstance(wanted, dict) and isinstance(current, dict):
        return {**dict.fromkeys(k for k in current if k not in wanted), **wanted}
    return wanted
