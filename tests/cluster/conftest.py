"""Fixtures of the cluster tier: the whole test bed, once per session, and a namespace per test.

`testbed` starts etcd, kube-apiserver, kube-controller-manager, PostgreSQL and the local kubelet
(`testbed.bed.LocalTestbed`), or, when env DBMIGRATE_TEST_KUBECONFIG names a kubeconfig, uses that
cluster instead (no local control plane or kubelet; the database then comes from
DBMIGRATE_TEST_DATABASE_URL). Its interface: `.kubeconfig`, `.api_client()`, `.kubectl(*args)`,
`.pg_admin_url`, `.kubelet` (a `LocalKubelet`, or None on an external cluster).
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


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    if os.environ.get("DBMIGRATE_TEST_KUBECONFIG"):
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
