"""The kind tier's checks before it builds or creates anything: each bad setup stops with a
message that says what is wrong and what to do (no Docker daemon, the PostgreSQL host port taken,
too little disk, a bad port setting), and the cluster tier's URL rewriting for pods."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from testbed import kindcluster
from testbed.bed import with_host
from testbed.proc import TestbedError


def test_no_docker_daemon_says_how_to_start_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(TestbedError, match=r"no Docker daemon answers.*start") as err:
        kindcluster.KindCluster().check_docker()
    assert "nonexistent" in str(err.value)  # docker's own reason is kept


def test_no_docker_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(kindcluster.shutil, "which", lambda *a, **k: None)
    with pytest.raises(TestbedError, match=r"apt-get install docker\.io"):
        kindcluster.KindCluster().check_docker()


def test_a_taken_port_is_named_with_the_setting_that_moves_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TestbedError, match=f"127.0.0.1:{port}.*DBMIGRATE_KIND_PG_PORT"):
            kindcluster.KindCluster(pg_port=port).check_port_free()


def test_too_little_disk_says_how_much_is_needed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DBMIGRATE_KIND_CACHE", str(tmp_path))
    monkeypatch.setattr(kindcluster, "MIN_FREE_GIB", 10**9)
    with pytest.raises(TestbedError, match=r"not enough disk.*GiB free.*needs"):
        kindcluster.KindCluster().check_disk()


def test_bad_port_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBMIGRATE_KIND_PG_PORT", "5432x")
    with pytest.raises(TestbedError, match="not a port number"):
        kindcluster.from_env()


def test_pod_url_swaps_only_host_and_port() -> None:
    url = "postgresql://u:p%40ss@127.0.0.1:54330/db?sslmode=disable"
    pods = with_host(url, "postgres.ns.svc.cluster.local:5432")
    assert pods == "postgresql://u:p%40ss@postgres.ns.svc.cluster.local:5432/db?sslmode=disable"
    assert with_host(url, None) == url
