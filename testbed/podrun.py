"""Turns one Pod object into a local process for `testbed.kubelet`: env, volumes, token, argv.

The pod's single container runs as a plain process, so Kubernetes features are emulated:
- env: `value`, `valueFrom.secretKeyRef`, `configMapKeyRef`, `fieldRef` (metadata.name,
  metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'],
  spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP), and `envFrom` of Secrets
  and ConfigMaps, all read through the API. A missing Secret, ConfigMap or key (not `optional`)
  keeps the pod waiting, as a real kubelet does (CreateContainerConfigError), until it appears.
- volumes: `emptyDir` is a fresh folder per pod; `configMap` and `secret` are folders holding
  their keys as files; `persistentVolumeClaim` is a folder keyed by namespace and claim name that
  outlives the pod (a backup written by one pod is read by the next).
- mounts: nothing is mounted. The process gets env `DBMIGRATE_PATH_MAP`, a JSON object from each
  mountPath to its local folder, and every command/args element that starts with a mountPath
  (`/backup/x`, or `--flag=/backup/x`) is rewritten to the local folder; `workingDir` likewise.
- service account: when the pod names a `serviceAccountName` (and does not set
  `automountServiceAccountToken: false`), a token bound to the pod is minted with the TokenRequest
  API and written with `ca.crt` and `namespace` into a folder, exactly the files of
  /var/run/secrets/kubernetes.io/serviceaccount (the standard path is in `DBMIGRATE_PATH_MAP`).
  Since that path does not exist here, the process also gets `KUBECONFIG`: a kubeconfig of the
  pod's own folder whose user is that token (`tokenFile`) and whose cluster is the API server
  (`certificate-authority`: that `ca.crt`), so any client that falls back to a kubeconfig outside
  a Pod (kubectl, `dbmigrate`'s step reporting) acts as the pod's service account, never as the
  test's admin. `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` are set as a kubelet sets them.
- the process does not inherit the test process's environment: only PATH, LANG and PYTHONPATH
  pass through; HOME and TMPDIR are per-pod folders. A command given by bare name (`dbmigrate`)
  that is installed next to the interpreter running the test bed (`sys.executable`'s folder: a
  venv's `bin`) runs from there, so the steps are the test bed's own `dbmigrate` even when that
  folder is not on PATH (`.venv/bin/python -m bench.operator_scale`); other names go by PATH.
- termination message: the container's `terminationMessagePath` (default /dev/termination-log)
  is an empty file of the pod's folder, in `DBMIGRATE_PATH_MAP` like a mount; an env `value` that
  is a mounted path, or a path under one, is rewritten like an argument (`TMPDIR=/tmp`, the file
  above). The kubelet reports what the process wrote there as the container's termination
  message, or with `terminationMessagePolicy: FallbackToLogsOnError` and a failed container the
  end of its log, as a kubelet does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TERMINATION_PATH = "/dev/termination-log"  # a container's default terminationMessagePath
PASS_THROUGH_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH")
Obj = dict[str, Any]


class WaitingError(Exception):
    """The pod cannot start yet (a Secret, ConfigMap, key or service account is missing)."""


class UnsupportedError(Exception):
    """The pod uses something the local kubelet cannot emulate; the pod fails with this reason."""


@dataclass
class Prepared:
    """What the kubelet needs to start the container as a process."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    path_map: dict[str, str] = field(default_factory=dict)
    termination_file: Path | None = None
    fallback_to_logs: bool = False


def as_json(resp: Any) -> Obj:
    """The body of a `_preload_content=False` response (the typed models reject some replies)."""
    body: Obj = json.loads(resp.data)
    return body


def read(api: k8s.ApiClient, kind: str, namespace: str, name: str) -> Obj | None:
    """A Secret, ConfigMap or ServiceAccount as a dict, or None when it does not exist."""
    core = k8s.CoreV1Api(api)
    reader = {
        "Secret": core.read_namespaced_secret,
        "ConfigMap": core.read_namespaced_config_map,
        "ServiceAccount": core.read_namespaced_service_account,
    }[kind]
    try:
        resp = reader(name, namespace, _preload_content=False)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return as_json(resp)


def _data(
    api: k8s.ApiClient, kind: str, namespace: str, name: str, optional: bool
) -> dict[str, bytes]:
    obj = read(api, kind, namespace, name)
    if obj is None:
        if optional:
            return {}
        raise WaitingError(f'{kind.lower()} "{name}" not found')
    out = {k: v.encode() for k, v in (obj.get("stringData") or {}).items()}
    if kind == "Secret":
        out.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
    else:
        out.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def _field(pod: Obj, path: str) -> str:
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((pod["metadata"].get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in simple:
        raise UnsupportedError(f"fieldRef {path} is not supported by the local kubelet")
    return str(simple[path])


def _env_value(api: k8s.ApiClient, pod: Obj, var: Obj) -> str | None:
    namespace = pod["metadata"]["namespace"]
    source = var.get("valueFrom")
    if source is None:
        return str(var.get("value", ""))
    for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        ref = source.get(key)
        if ref is not None:
            optional = bool(ref.get("optional"))
            data = _data(api, kind, namespace, ref["name"], optional)
            if ref["key"] not in data:
                if optional:
                    return None
                raise WaitingError(
                    f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}"
                )
            return data[ref["key"]].decode()
    if "fieldRef" in source:
        return _field(pod, source["fieldRef"]["fieldPath"])
    raise UnsupportedError(f"env {var['name']}: valueFrom {sorted(source)} is not supported")


def container_env(api: k8s.ApiClient, pod: Obj, container: Obj) -> dict[str, str]:
    """The container's environment as Kubernetes would compute it (envFrom, then env)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if key in source:
                ref = source[key]
                data = _data(api, kind, namespace, ref["name"], bool(ref.get("optional")))
                prefix = source.get("prefix", "")
                env.update({prefix + k: v.decode() for k, v in data.items()})
    for var in container.get("env") or []:
        value = _env_value(api, pod, var)
        if value is not None:
            env[var["name"]] = _expand(value, env)
    return env


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) references to earlier variables; $$ escapes."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def _write_files(folder: Path, data: dict[str, bytes], items: list[Obj] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
    for key, rel in pairs:
        if key in data:
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])


def volume_dirs(api: k8s.ApiClient, pod: Obj, pod_dir: Path, pvc_root: Path) -> dict[str, Path]:
    """Local folders standing in for the pod's volumes, by volume name."""
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    for vol in pod["spec"].get("volumes") or []:
        name = vol["name"]
        if "emptyDir" in vol:
            dirs[name] = pod_dir / "volumes" / name
            dirs[name].mkdir(parents=True, exist_ok=True)
        elif "persistentVolumeClaim" in vol:
            dirs[name] = pvc_root / namespace / vol["persistentVolumeClaim"]["claimName"]
            dirs[name].mkdir(parents=True, exist_ok=True)
        elif "configMap" in vol or "secret" in vol:
            kind, spec = (
                ("ConfigMap", vol["configMap"]) if "configMap" in vol else ("Secret", vol["secret"])
            )
            ref = spec.get("name") or spec.get("secretName")
            data = _data(api, kind, namespace, ref, bool(spec.get("optional")))
            dirs[name] = pod_dir / "volumes" / name
            _write_files(dirs[name], data, spec.get("items"))
        else:
            kinds = sorted(set(vol) - {"name"})
            raise UnsupportedError(f"volume {name}: {kinds} is not supported by the local kubelet")
    return dirs


def mint_token(api: k8s.ApiClient, pod: Obj, folder: Path, ca_cert: bytes) -> None:
    """Writes token, ca.crt and namespace for the pod's service account into `folder`."""
    meta, account = pod["metadata"], pod["spec"]["serviceAccountName"]
    if read(api, "ServiceAccount", meta["namespace"], account) is None:
        raise WaitingError(f'serviceaccount "{account}" not found')
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [],
            "expirationSeconds": 3600,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    resp = k8s.CoreV1Api(api).create_namespaced_service_account_token(
        account,
        meta["namespace"],
        request,  # type: ignore[arg-type]
        _preload_content=False,
    )
    token = as_json(resp)["status"]["token"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token)
    (folder / "ca.crt").write_bytes(ca_cert)
    (folder / "namespace").write_text(meta["namespace"])


def write_service_account_kubeconfig(path: Path, sa_dir: Path, server: tuple[str, int]) -> Path:
    """A kubeconfig at `path` acting as the service account whose files `mint_token` wrote to
    `sa_dir`: the token is a `tokenFile` (read per request, as the in-cluster files are)."""
    host, port = server
    address = f"[{host}]" if ":" in host else host
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "pod",
        "contexts": [{"name": "pod", "context": {"cluster": "testbed", "user": "pod"}}],
        "clusters": [
            {
                "name": "testbed",
                "cluster": {
                    "server": f"https://{address}:{port}",
                    "certificate-authority": str(sa_dir / "ca.crt"),
                },
            }
        ],
        "users": [{"name": "pod", "user": {"tokenFile": str(sa_dir / "token")}}],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def rewrite(arg: str, path_map: dict[str, str]) -> str:
    """`arg` with a leading mountPath (or one right after `=`) replaced by its local folder."""
    for mount in sorted(path_map, key=len, reverse=True):
        local = path_map[mount]
        for prefix in ("", *(arg[: i + 1] for i, ch in enumerate(arg) if ch == "=")):
            rest = arg[len(prefix) :]
            if rest == mount or rest.startswith(mount.rstrip("/") + "/"):
                return prefix + local + rest[len(mount.rstrip("/")) :]
    return arg


def resolve_command(name: str) -> str:
    """``name`` as the test bed's own interpreter environment has it (see the module docstring)."""
    if "/" in name:
        return name
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else name


def _rewrite_path(value: str, path_map: dict[str, str]) -> str:
    """``value`` when it is not a mounted path (or under one), else its local stand-in."""
    for mount in sorted(path_map, key=len, reverse=True):
        if value == mount or value.startswith(mount.rstrip("/") + "/"):
            return path_map[mount] + value[len(mount.rstrip("/")) :]
    return value


def prepare(
    api: k8s.ApiClient,
    pod: Obj,
    pod_dir: Path,
    pvc_root: Path,
    server: tuple[str, int],
    ca_cert: bytes,
) -> Prepared:
    """Everything needed to run the pod's container; WaitingError / UnsupportedError otherwise."""
    containers = pod["spec"]["containers"]
    if len(containers) != 1 or pod["spec"].get("initContainers"):
        raise UnsupportedError("the local kubelet runs pods with exactly one container")
    container = containers[0]
    if not container.get("command"):
        raise UnsupportedError("the local kubelet needs the container's `command` (no image)")
    volumes = volume_dirs(api, pod, pod_dir, pvc_root)
    path_map: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        local = volumes[mount["name"]] / mount.get("subPath", "")
        local.mkdir(parents=True, exist_ok=True)
        path_map[mount["mountPath"]] = str(local)
    env = {k: os.environ[k] for k in PASS_THROUGH_ENV if k in os.environ}
    env.update(
        HOME=str(pod_dir / "home"), TMPDIR=str(pod_dir / "tmp"), HOSTNAME=pod["metadata"]["name"]
    )
    env.update(KUBERNETES_SERVICE_HOST=server[0], KUBERNETES_SERVICE_PORT=str(server[1]))
    if (
        pod["spec"].get("serviceAccountName")
        and pod["spec"].get("automountServiceAccountToken") is not False
    ):
        sa_dir = pod_dir / "serviceaccount"
        mint_token(api, pod, sa_dir, ca_cert)
        env["KUBECONFIG"] = str(
            write_service_account_kubeconfig(pod_dir / "kubeconfig", sa_dir, server)
        )
        path_map.setdefault(SA_PATH, str(sa_dir))
    termination = pod_dir / "termination-log"
    pod_dir.mkdir(parents=True, exist_ok=True)
    termination.write_bytes(b"")
    path_map.setdefault(
        container.get("terminationMessagePath") or TERMINATION_PATH, str(termination)
    )
    env.update(container_env(api, pod, container))
    for var in container.get("env") or []:
        if "value" in var and var["name"] in env:
            env[var["name"]] = _rewrite_path(env[var["name"]], path_map)
    env["DBMIGRATE_PATH_MAP"] = json.dumps(path_map, sort_keys=True)
    for folder in ("home", "tmp"):
        (pod_dir / folder).mkdir(parents=True, exist_ok=True)
    argv = [_expand(a, env) for a in [*container["command"], *(container.get("args") or [])]]
    # a bare command resolves to a path of this machine, never a mount (a checkout under /tmp,
    # where step pods mount an emptyDir, keeps its own `dbmigrate`)
    head = rewrite(argv[0], path_map) if "/" in argv[0] else resolve_command(argv[0])
    workdir = container.get("workingDir")
    cwd = Path(rewrite(workdir, path_map)) if workdir else pod_dir / "home"
    if not cwd.is_dir():  # an image folder such as /app does not exist here
        cwd = pod_dir / "home"
    return Prepared(
        [head, *(rewrite(a, path_map) for a in argv[1:])],
        env,
        cwd,
        path_map,
        termination_file=termination,
        fallback_to_logs=container.get("terminationMessagePolicy") == "FallbackToLogsOnError",
    )


def clean(pod_dir: Path) -> None:
    """Removes a finished pod's folder (PVC folders live elsewhere and stay)."""
    shutil.rmtree(pod_dir, ignore_errors=True)
