"""The plugin's access to the API server, as the person at the terminal: plain JSON in and out.

It loads the kubeconfig the way kubectl does (``--kubeconfig``, else ``$KUBECONFIG``, else
``~/.kube/config``; ``--context``; the namespace from ``-n``, else the context's, else
``default``) and talks REST with the kubernetes client's connection (its TLS, certificates and
tokens) without its typed models, so fields the plugin does not know are kept. Every failure
becomes a ``PluginError`` whose message says what went wrong and what to do: a 403 names the
verb and resource the user lacks (docs/kubectl-plugin.md lists them per command), a missing
resource type says which CRD to install, an unreachable server names the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
RBAC_DOC = "docs/kubectl-plugin.md"


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API, and what a person calls it in a message."""

    prefix: str
    plural: str
    kind: str

    def path(self, namespace: str | None, name: str | None = None, sub: str = "") -> str:
        """REST path of the namespaced collection or one object (``sub``: a subresource)."""
        where = f"/namespaces/{quote(namespace)}" if namespace else ""
        path = f"{self.prefix}{where}/{self.plural}"
        if name:
            path += f"/{quote(name)}"
        return path + (f"/{sub}" if sub else "")

    @property
    def group(self) -> str:
        parts = self.prefix.split("/")
        return parts[2] if self.prefix.startswith("/apis/") else ""


OURS = f"/apis/{API_GROUP}/{API_VERSION}"
MIGRATIONS = Resource(OURS, PLURAL, "DatabaseMigration")
ROLLBACKS = Resource(OURS, "migrationrollbacks", "MigrationRollback")
ROLLOUTS = Resource(OURS, "databasemigrationrollouts", "DatabaseMigrationRollout")
JOBS = Resource("/apis/batch/v1", "jobs", "Job")
PODS = Resource("/api/v1", "pods", "Pod")
EVENTS = Resource("/api/v1", "events", "Event")
SECRETS = Resource("/api/v1", "secrets", "Secret")
SELF_REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


class PluginError(Exception):
    """A command cannot go on; ``code`` is its exit code (api/exitcodes.py)."""

    def __init__(self, message: str, code: int = EXIT_FAILED, status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Target:
    """What the common flags chose: the kubeconfig file, the context and the namespace."""

    kubeconfig: str | None
    context: str | None
    namespace: str | None


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


class Client:
    """REST access to one cluster in one namespace, as the kubeconfig's user."""

    def __init__(self, target: Target, timeout: float = 20.0) -> None:
        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=target.kubeconfig,
                context=target.context,
                client_configuration=configuration,
            )
        except (ConfigException, OSError) as exc:
            where = target.kubeconfig or "$KUBECONFIG or ~/.kube/config"
            raise PluginError(
                f"cannot load the kubeconfig ({where}): {exc}; pass --kubeconfig FILE and "
                "--context NAME, as for kubectl",
                EXIT_USAGE,
            ) from exc
        self.api = client.ApiClient(configuration)
        self.server = configuration.host
        self.namespace = target.namespace or _context_namespace(target.kubeconfig, target.context)
        self.timeout = timeout

    def close(self) -> None:
        self.api.close()

    # --- the one REST call -----------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: float | None = None,
    ) -> Any:
        url_path = path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json, */*", "Content-Type": content_type}
        method, url, headers, _, _ = self.api.param_serialize(
            method=method,
            resource_path=url_path,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(
                method,
                url,
                headers,
                body,
                _request_timeout=None if stream else (timeout or self.timeout),
            )
            if stream and response.status < 400:
                return response.response  # read as it comes (a followed log)
            raw = response.read()
        except client.ApiException as exc:
            raise self._error(method, path, exc.status or 0, str(exc.reason or ""), "") from exc
        except OSError as exc:
            raise self._unreachable(exc) from exc
        except Exception as exc:  # urllib3's errors (timeouts, protocol) are not OSErrors
            if type(exc).__module__.startswith("urllib3"):
                raise self._unreachable(exc) from exc
            raise
        if response.status >= 400:
            try:
                message = str(json.loads(raw).get("message", ""))
            except ValueError:
                message = raw.decode(errors="replace")[:300]
            raise self._error(method, path, response.status, str(response.reason), message)
        return raw

    def _unreachable(self, exc: BaseException) -> PluginError:
        return PluginError(
            f"cannot reach the API server {self.server}: {exc}; check the context "
            "(kubectl config current-context) and the network",
            EXIT_UNAVAILABLE,
        )

    def _error(self, method: str, path: str, status: int, reason: str, message: str) -> PluginError:
        verb = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}.get(
            method, method.lower()
        )
        what = path.split("?", 1)[0]
        if status == 403:
            return PluginError(
                f"forbidden: {message or what}; the user of this context may not {verb} that "
                f"(the RBAC each command needs is in {RBAC_DOC})",
                EXIT_FAILED,
                status,
            )
        if status == 401:
            return PluginError(
                f"unauthorized: the API server did not accept the credentials of this context "
                f"({message or reason}); log in again or pick another --context",
                EXIT_FAILED,
                status,
            )
        code = EXIT_UNAVAILABLE if status in (0, 429, 500, 502, 503, 504) else EXIT_FAILED
        return PluginError(f"HTTP {status} {reason}: {message or what}", code, status)

    def _json(self, method: str, path: str, body: Obj | None = None, **kw: Any) -> Obj:
        raw = self._call(method, path, body, **kw)
        decoded: Obj = json.loads(raw) if raw else {}
        return decoded

    # --- objects ---------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist (a missing resource type raises)."""
        try:
            return self._json("GET", resource.path(namespace or self.namespace, name))
        except PluginError as exc:
            if exc.status != 404:
                raise
        self.require_type(resource)
        return None

    def must_get(self, resource: Resource, name: str) -> Obj:
        """The object; a PluginError (exit 2) naming it and the namespace when it is missing."""
        found = self.get(resource, name)
        if found is None:
            raise PluginError(
                f"{resource.kind} {name!r} not found in namespace {self.namespace!r} "
                f"(kubectl get {resource.plural} -n {self.namespace} lists them; -n picks "
                "another namespace)",
                EXIT_USAGE,
                404,
            )
        return found

    def items(
        self, resource: Resource, selector: str | None = None, fields: str | None = None
    ) -> list[Obj]:
        """The objects of ``resource`` in the namespace (matching the label ``selector`` and
        the field selector ``fields``)."""
        query = {"labelSelector": selector} if selector else {}
        if fields:
            query["fieldSelector"] = fields
        items: list[Obj] = self._json("GET", resource.path(self.namespace), query=query)["items"]
        return items

    def create(self, resource: Resource, obj: Obj) -> Obj:
        return self._json("POST", resource.path(self.namespace), obj)

    def patch(self, resource: Resource, name: str, body: Obj) -> Obj:
        return self._json(
            "PATCH", resource.path(self.namespace, name), body, content_type=MERGE_PATCH
        )

    def require_type(self, resource: Resource) -> None:
        """Raise a PluginError when the API server does not serve ``resource`` at all."""
        try:
            listing = self._json("GET", resource.prefix)
        except PluginError as exc:
            if exc.status != 404:
                raise
            listing = {}
        if not any(r.get("name") == resource.plural for r in listing.get("resources") or []):
            raise PluginError(
                f"this cluster does not serve {resource.kind} ({resource.plural}.{resource.group}"
                "): install or upgrade the dbmigrate operator's CRDs",
                EXIT_USAGE,
                404,
            )

    # --- pods' logs ------------------------------------------------------------------------

    def pod_log(self, pod: str, container: str | None = None) -> str:
        query = {"container": container} if container else None
        raw = self._call("GET", PODS.path(self.namespace, pod, "log"), query=query)
        return bytes(raw).decode(errors="replace")

    def follow_log(self, pod: str, container: str | None = None) -> Iterator[str]:
        """The pod's log as it is written, line by line, until the container ends."""
        query = {"follow": "true", **({"container": container} if container else {})}
        response = self._call(
            "GET", PODS.path(self.namespace, pod, "log"), query=query, stream=True
        )
        pending = b""
        try:
            for chunk in response.stream(4096, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (line.decode(errors="replace") + "\n" for line in lines)
            if pending:
                yield pending.decode(errors="replace")
        finally:
            response.release_conn()

    # --- who am I --------------------------------------------------------------------------

    def username(self) -> str | None:
        """The user the API server authenticates this context as (SelfSubjectReview), or None
        when the server does not say (the request's managedFields still record the manager)."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            answer = self._json("POST", SELF_REVIEW, review)
        except PluginError:
            return None
        name = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
        return str(name) if name else None
