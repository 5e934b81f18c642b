"""The test bed itself: it starts and stops cleanly, and the real Job controller drives the local
kubelet's processes (retries, deadlines, env from Secrets, volumes, service-account tokens)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client as k8s

from testbed.bed import ExternalTestbed, LocalTestbed
from testbed.proc import TestbedError, pid_alive, start_process, wait_until

Testbed = LocalTestbed | ExternalTestbed
Obj = dict[str, Any]

pytestmark = pytest.mark.local_testbed(
    reason="tests the local test bed itself (its process kubelet, start and stop)"
)


def _json(resp: Any) -> Obj:
    body: Obj = json.loads(resp.data)
    return body


def _wait(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _job(name: str, script: str, *, backoff: int = 0, **pod: Any) -> Obj:
    container: Obj = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
    container.update(pod.pop("container", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff,
            **pod.pop("job", {}),
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **pod}},
        },
    }


def _finished(api: k8s.ApiClient, namespace: str, name: str) -> Obj | None:
    """The Job once it has a Complete or Failed condition, else None."""
    job = _json(k8s.BatchV1Api(api).read_namespaced_job(name, namespace, _preload_content=False))
    for cond in job.get("status", {}).get("conditions", []):
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return job
    return None


def _create(api: k8s.ApiClient, kind: str, namespace: str, body: Obj) -> None:
    """Creates a namespaced object from a plain dict (kind: Job, Secret, ConfigMap, ...)."""
    creators: dict[str, Callable[..., Any]] = {
        "Job": k8s.BatchV1Api(api).create_namespaced_job,
        "Secret": k8s.CoreV1Api(api).create_namespaced_secret,
        "ConfigMap": k8s.CoreV1Api(api).create_namespaced_config_map,
        "ServiceAccount": k8s.CoreV1Api(api).create_namespaced_service_account,
    }
    creators[kind](namespace, body, _preload_content=False)


def _run_job(api: k8s.ApiClient, namespace: str, body: Obj, timeout: float = 90) -> Obj:
    _create(api, "Job", namespace, body)
    name = body["metadata"]["name"]
    job: Obj = _wait(f"job {name}", lambda: _finished(api, namespace, name), timeout)
    return job


def _pods(api: k8s.ApiClient, namespace: str, job: str) -> list[Obj]:
    resp = k8s.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"job-name={job}", _preload_content=False
    )
    return list(_json(resp)["items"])


def _local(testbed: Testbed) -> LocalTestbed:
    if not isinstance(testbed, LocalTestbed) or testbed.kubelet is None:
        pytest.skip("needs the local kubelet (not available on an external cluster)")
    return testbed


@pytest.mark.skipif(bool(os.environ.get("DBMIGRATE_TEST_KUBECONFIG")), reason="local test bed only")
def test_testbed_comes_up_and_down_cleanly_twice() -> None:
    for _ in range(2):
        bed = LocalTestbed()
        bed.start()
        try:
            assert bed.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
            created = bed.kubectl("create", "namespace", "up-and-down")
            assert created.returncode == 0, created.stderr
            with psycopg.connect(bed.pg_admin_url) as conn:
                assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")  # type: ignore[index]
            assert bed.kubelet is not None
            pids = [*bed.controlplane.pids().values()]
            assert bed.postgres.proc is not None
            pids.append(bed.postgres.proc.pid)
            assert all(pid_alive(pid) for pid in pids)
        finally:
            bed.stop()
        assert not any(pid_alive(pid) for pid in pids), "a test bed process outlived stop()"
        assert not bed.root.exists() and not bed.postgres.root.exists()


def test_failing_job_is_retried_by_the_job_controller(
    testbed: Testbed, api_client: k8s.ApiClient, namespace: str
) -> None:
    job = _run_job(api_client, namespace, _job("fails", "exit 1", backoff=1))
    assert [c["reason"] for c in job["status"]["conditions"] if c["type"] == "Failed"] == [
        "BackoffLimitExceeded"
    ]
    assert job["status"]["failed"] == 2
    pods = _pods(api_client, namespace, "fails")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    codes = [p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods]
    assert codes == [1, 1]


def test_env_from_secret_configmap_and_fields_reaches_the_process(
    testbed: Testbed, api_client: k8s.ApiClient, namespace: str
) -> None:
    bed = _local(testbed)
    secret = {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret value"}}
    _create(api_client, "Secret", namespace, secret)
    config = {"metadata": {"name": "cfg"}, "data": {"mode": "fast", "conf.ini": "[x]\na=1\n"}}
    _create(api_client, "ConfigMap", namespace, config)
    env = [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING", "value": "hi $(MODE)"},
    ]
    script = 'printf "%s|%s|%s|%s" "$PW" "$MODE" "$POD_NS" "$GREETING" > "$1"; cat "$2"'
    body = _job(
        "env",
        script,
        container={
            "args": ["sh", "/backup/out.txt", "/etc/cfg/conf.ini"],
            "env": env,
            "volumeMounts": [
                {"name": "backup", "mountPath": "/backup"},
                {"name": "cfg", "mountPath": "/etc/cfg"},
            ],
        },
        volumes=[
            {"name": "backup", "persistentVolumeClaim": {"claimName": "backups"}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
        ],
    )
    job = _run_job(api_client, namespace, body)
    assert job["status"].get("succeeded") == 1
    written = (bed.kubelet.pvc_dir(namespace, "backups") / "out.txt").read_text()  # type: ignore[union-attr]
    assert written == f"s3cret value|fast|{namespace}|hi fast"
    pod = _pods(api_client, namespace, "env")[0]["metadata"]["name"]
    assert bed.kubelet.logs(namespace, pod) == "[x]\na=1\n"  # type: ignore[union-attr]


def test_pod_waits_for_a_missing_secret(
    testbed: Testbed, api_client: k8s.ApiClient, namespace: str
) -> None:
    _local(testbed)
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "later", "key": "pw"}}}]
    body = _job("waits", 'test "$PW" = ok', container={"env": env})
    _create(api_client, "Job", namespace, body)

    def waiting() -> bool:
        pods = _pods(api_client, namespace, "waits")
        statuses = pods[0]["status"].get("containerStatuses", []) if pods else []
        state = statuses[0]["state"] if statuses else {}
        return state.get("waiting", {}).get("reason") == "CreateContainerConfigError"

    _wait("the pod to wait for its secret", waiting)
    secret = {"metadata": {"name": "later"}, "stringData": {"pw": "ok"}}
    _create(api_client, "Secret", namespace, secret)
    job = _wait("job waits", lambda: _finished(api_client, namespace, "waits"))
    assert job["status"].get("succeeded") == 1


def test_job_deadline_kills_the_process(
    testbed: Testbed, api_client: k8s.ApiClient, namespace: str
) -> None:
    bed = _local(testbed)
    script = 'sleep 300 & echo $! > "$1"; wait'
    body = _job(
        "slow",
        script,
        job={"activeDeadlineSeconds": 3},
        container={
            "args": ["sh", "/work/pid"],
            "volumeMounts": [{"name": "w", "mountPath": "/work"}],
        },
        volumes=[{"name": "w", "persistentVolumeClaim": {"claimName": "scratch"}}],
    )
    job = _run_job(api_client, namespace, body)
    reasons = [c["reason"] for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert reasons == ["DeadlineExceeded"]
    pid = int((bed.kubelet.pvc_dir(namespace, "scratch") / "pid").read_text())  # type: ignore[union-attr]
    _wait("the pod's process to be killed", lambda: not pid_alive(pid), timeout=40)


def test_service_account_token_authenticates_the_process(
    testbed: Testbed, api_client: k8s.ApiClient, namespace: str
) -> None:
    bed = _local(testbed)
    account = {"metadata": {"name": "stepper"}}
    _create(api_client, "ServiceAccount", namespace, account)
    kubectl = Path(bed.kubectl_bin)
    # kubectl reads $KUBECONFIG, which the kubelet writes for the pod's service account only
    script = f'{kubectl} auth whoami -o jsonpath="{{.status.userInfo.username}}"'
    body = _job("whoami", script, serviceAccountName="stepper")
    job = _run_job(api_client, namespace, body)
    pod = _pods(api_client, namespace, "whoami")[0]["metadata"]["name"]
    logs = bed.kubelet.logs(namespace, pod)  # type: ignore[union-attr]
    assert job["status"].get("succeeded") == 1, logs
    assert logs == f"system:serviceaccount:{namespace}:stepper"


def test_failed_start_names_the_part_and_shows_its_log(tmp_path: Path) -> None:
    log = tmp_path / "part.log"
    proc = start_process(["sh", "-c", "echo 'unknown flag: --nope' >&2; exit 2"], log)
    with pytest.raises(TestbedError, match="fake-part exited with code 2") as excinfo:
        wait_until(lambda: False, part="fake-part", proc=proc, log_path=log, timeout=30)
    assert "unknown flag: --nope" in str(excinfo.value)


def test_a_bare_command_is_the_test_beds_own_and_the_pod_reports_its_termination_message(
    testbed: Testbed, api_client: k8s.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dbmigrate` runs from the folder of the interpreter running the test bed even when that
    folder is not on PATH (`.venv/bin/python -m bench...`); what a container writes to its
    terminationMessagePath, or the end of its log with FallbackToLogsOnError, is its message."""
    kubelet = _local(testbed).kubelet
    assert kubelet is not None
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no venv on it: the pods get this PATH
    version = {"name": "main", "image": "dbmigrate:dev", "command": ["dbmigrate", "--version"]}
    job = _run_job(api_client, namespace, _job("version", "", container=version), timeout=30)
    pod = _pods(api_client, namespace, "version")[0]["metadata"]["name"]
    assert job["status"].get("succeeded") == 1, kubelet.logs(namespace, pod)
    assert "dbmigrate" in kubelet.logs(namespace, pod)

    written = {
        "env": [{"name": "LAST_WORDS", "value": "/dev/termination-log"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    script = 'echo noise; echo "the cause" > "$LAST_WORDS"; exit 3'
    _run_job(api_client, namespace, _job("writes", script, container=written))
    logged = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    _run_job(
        api_client, namespace, _job("logs", "echo one; echo the end; exit 1", container=logged)
    )
    silent = "echo not a message; exit 1"
    _run_job(api_client, namespace, _job("silent", silent))  # policy File: no log fallback
    messages = {}
    for name in ("writes", "logs", "silent"):
        (pod_obj,) = _pods(api_client, namespace, name)
        ended = pod_obj["status"]["containerStatuses"][0]["state"]["terminated"]
        messages[name] = ended.get("message", "").strip()
    assert messages == {"writes": "the cause", "logs": "one\nthe end", "silent": ""}
