"""``dbmigrate operator``'s arguments become one frozen OperatorSettings, and the handlers
registered with it use it (the timer's interval included) and nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import kopf
import pytest

from dbmigrate.cli.main import build_parser
from dbmigrate.cli.operator import operator_settings
from dbmigrate.controller import handlers
from dbmigrate.controller.settings import DEFAULT_IMAGE, OperatorSettings

pytestmark = pytest.mark.unit


def _settings(argv: list[str]) -> OperatorSettings | None:
    args = build_parser(["operator"]).parse_args(["operator", *argv])
    return operator_settings(args)


@pytest.fixture(autouse=True)
def _no_chart_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DBMIGRATE_IMAGE", "POD_NAMESPACE", "DBMIGRATE_PAUSED"):
        monkeypatch.delenv(name, raising=False)


def test_the_arguments_become_the_settings(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    argv = ["-n", "a", "-n", "b", "--kubeconfig", str(kubeconfig), "--resync-seconds", "3"]
    settings = _settings([*argv, "--job-image", "registry.example/dbm:2", "--notify-attempts", "2"])
    assert settings is not None
    assert settings.namespaces == ("a", "b") and not settings.clusterwide
    assert settings.kubeconfig == str(kubeconfig)
    assert settings.resync_seconds == 3.0
    assert settings.job_image == "registry.example/dbm:2"
    assert settings.notify_policy.attempts == 2
    assert settings.lease is None


def test_the_operator_wide_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings([]) == OperatorSettings(paused=False)
    flagged = _settings(["--paused"])
    assert flagged is not None and flagged.paused
    monkeypatch.setenv("DBMIGRATE_PAUSED", "1")
    from_env = _settings([])
    assert from_env is not None and from_env.paused


def test_defaults_watch_every_namespace_with_the_published_image() -> None:
    settings = _settings([])
    assert settings == OperatorSettings()
    assert settings.clusterwide and settings.job_image == DEFAULT_IMAGE
    assert settings.resync_seconds == 10.0


def test_the_job_image_defaults_to_the_environment_the_chart_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBMIGRATE_IMAGE", "registry.example/dbm:1.2.3")
    settings = _settings(["-A"])
    assert settings is not None and settings.job_image == "registry.example/dbm:1.2.3"


def test_leader_election_builds_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    settings = _settings(["--leader-elect", "--lease-name", "l", "--lease-identity", "me"])
    assert settings is not None and settings.lease is not None
    assert (settings.lease.namespace, settings.lease.name, settings.lease.identity) == (
        "ops",
        "l",
        "me",
    )
    assert settings.lease.retry_every == 2.0


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--resync-seconds", "0"], "--resync-seconds 0.0: choose more than 0"),
        (["--metrics-port", "70000"], "--metrics-port 70000: not a port number"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "no such file"),
    ],
)
def test_wrong_arguments_are_refused(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _settings(argv) is None
    assert complaint in capsys.readouterr().err


def test_settings_are_immutable_and_checked() -> None:
    settings = OperatorSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.resync_seconds = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="resync_seconds"):
        OperatorSettings(resync_seconds=0)
    with pytest.raises(ValueError, match="job_image"):
        OperatorSettings(job_image="")


def _registered(settings: OperatorSettings) -> tuple[kopf.OperatorRegistry, handlers.Handlers]:
    registry = kopf.OperatorRegistry()
    return registry, handlers.register(registry, settings)


def test_the_timer_runs_at_the_resync_interval_of_the_settings() -> None:
    registry, _ = _registered(OperatorSettings(resync_seconds=3.0))
    (timer,) = [h for h in registry._spawning.get_all_handlers() if h.id == "on_timer"]
    assert (getattr(timer, "interval", None), timer.initial_delay) == (3.0, 1.5)


def test_the_handlers_keep_their_ids() -> None:
    """Kopf keys its bookkeeping annotations by handler id: renaming one would orphan them."""
    registry, _ = _registered(OperatorSettings())
    ids = {h.id for h in registry._activities.get_all_handlers()}
    ids |= {h.id for h in registry._changing.get_all_handlers()}
    ids |= {h.id for h in registry._watching.get_all_handlers()}
    ids |= {h.id for h in registry._spawning.get_all_handlers()}
    assert ids == {
        "configure",
        "login",
        "on_create",
        "on_resume",
        "on_update",
        "on_timer",
        "on_step_exit",
        "on_job_event",
        "on_request_create",
        "on_request_resume",
        "on_request_update",
        "on_check_job_event",
        "on_rollback_annotation",
        "rollout_on_create",
        "rollout_on_resume",
        "rollout_on_update",
        "rollout_on_timer",
        "rollout_on_child_event",
    }


def test_importing_the_handlers_registers_nothing_globally() -> None:
    default = kopf.get_default_registry()
    owned = [h.fn for h in default._changing.get_all_handlers()]
    owned += [h.fn for h in default._spawning.get_all_handlers()]
    assert not [fn for fn in owned if getattr(fn, "__module__", "") == handlers.__name__]


def test_namespaced_operators_do_not_scan_the_cluster() -> None:
    namespaced = handlers.kopf_settings(OperatorSettings(namespaces=("a",)))
    clusterwide = handlers.kopf_settings(OperatorSettings())
    assert namespaced.scanning.disabled and not clusterwide.scanning.disabled
    assert namespaced.peering.standalone and namespaced.persistence.finalizer == (
        "dbmigrate.io/finalizer"
    )


class RecordingReconciler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def reconcile(self, namespace: str, name: str) -> None:
        self.calls.append((namespace, name))

    def wake(self, namespace: str, name: str, delay: float = 0.0) -> None:
        self.calls.append((namespace, name))


def _with_reconciler(
    monkeypatch: pytest.MonkeyPatch, settings: OperatorSettings
) -> tuple[handlers.Handlers, RecordingReconciler, dict[str, Any]]:
    """Handlers whose startup builds a recording Reconciler; returns what it was built with."""
    recorder, built = RecordingReconciler(), {}

    def fake_reconciler(kube: object, **kwargs: Any) -> RecordingReconciler:
        built.update(kwargs)
        return recorder

    monkeypatch.setattr(handlers, "Reconciler", fake_reconciler)
    monkeypatch.setattr("dbmigrate.controller.kube.load_api_client", lambda path: object())
    _, registered = _registered(settings)
    return registered, recorder, built


def test_a_handler_before_startup_asks_kopf_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    registered, recorder, _ = _with_reconciler(monkeypatch, OperatorSettings())
    with pytest.raises(kopf.TemporaryError, match="still starting"):
        registered.reconcile(namespace="ns", name="mig")
    assert recorder.calls == []


def test_startup_builds_the_reconciler_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = OperatorSettings(namespaces=("ns",), job_image="registry.example/dbm:9")
    registered, recorder, built = _with_reconciler(monkeypatch, settings)
    registered.startup()
    assert built["image"] == "registry.example/dbm:9"
    assert built["namespaces"] == ("ns",)
    assert built["notify_policy"] is settings.notify_policy
    registered.reconcile(namespace="ns", name="mig")
    registered.reconcile(namespace=None, name="cluster-scoped")  # not ours: ignored
    assert recorder.calls == [("ns", "mig")]


def test_a_job_event_reconciles_the_migration_that_owns_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered, recorder, _ = _with_reconciler(monkeypatch, OperatorSettings())
    registered.startup()
    owner = {"kind": "DatabaseMigration", "apiVersion": "dbmigrate.io/v1alpha1", "name": "mig"}
    labels = {"dbmigrate.io/migration": "mig"}
    registered.on_job_event("ns", labels, {"ownerReferences": [owner]})  # type: ignore[arg-type]
    registered.on_job_event("ns", {}, {"ownerReferences": [owner]})  # type: ignore[arg-type]
    assert recorder.calls == [("ns", "mig")]
