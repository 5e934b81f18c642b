"""Fixtures of the cluster tier: the whole test bed, once per session, and a namespace per test.

`testbed` starts etcd, kube-apiserver, kube-controller-manager, PostgreSQL and the local kubelet
(`testbed.bed.LocalTestbed`), or, when env DBMIGRATE_TEST_KUBECONFIG names a kubeconfig, uses that
cluster instead (no local control plane or kubelet; the database then comes from
DBMIGRATE_TEST_DATABASE_URL). Its interface: `.kubeconfig`, `.api_client()`, `.kubectl(*args)`,
`.pg_admin_url`, `.kubelet` (a `LocalKubelet`, or None on an external cluster), `.pod_url()`.

Markers: `local_testbed(reason=...)` tests run only on the local test bed (they drive its process
kubelet, or play a controller it lacks) and are skipped elsewhere with their reason;
`real_kubelet` tests run only where pods are containers (`make test-kind`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from testbed.bed import ExternalTestbed, LocalTestbed
from testbed.postgres import fresh_database
from testbed.proc import teardown_on_sigterm

Testbed = LocalTestbed | ExternalTestbed


def on_external_cluster() -> bool:
    return bool(os.environ.get("DBMIGRATE_TEST_KUBECONFIG"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    external = on_external_cluster()
    for item in items:
        local = item.get_closest_marker("local_testbed")
        if local is not None and external:
            reason = local.kwargs.get("reason") or "needs the local test bed"
            item.add_marker(pytest.mark.skip(reason=f"local test bed only: {reason}"))
        if item.get_closest_marker("real_kubelet") is not None and not external:
            why = "needs a real kubelet running the image (make test-kind)"
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    if on_external_cluster():
        yield ExternalTestbed.from_env()
        return
    teardown_on_sigterm()
    bed = LocalTestbed()
    bed.start()
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="session")
def api_client(testbed: Testbed) -> Iterator[k8s.ApiClient]:
    api = testbed.api_client()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(api_client: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (the namespace controller empties it)."""
    name = f"t-{secrets.token_hex(4)}"
    core = k8s.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}}, _preload_content=False)  # type: ignore[arg-type]
    try:
        yield name
    finally:
        core.delete_namespace(name, _preload_content=False)


@pytest.fixture(scope="session")
def pg_admin_url(testbed: Testbed) -> str:
    return testbed.pg_admin_url


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        yield url
