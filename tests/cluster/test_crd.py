"""The generated CRD on the real API server: it installs, documents itself, prints its columns,
refuses malformed specs with readable messages, and keeps every declared status field."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from dbmigrate import API_GROUP, API_VERSION, PLURAL
from dbmigrate.api.status import DatabaseMigrationStatus
from testbed.crd import install_crd
from tests.examples import example_instance

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "dbmigrate.io_databasemigrations.yaml"
SAMPLE = ROOT / "manifests" / "samples" / "analytics-migration.yaml"

VALID: dict[str, Any] = {
    "database": {"secretRef": {"name": "analytics-db", "uriKey": "uri"}},
    "source": {"configMap": {"name": "analytics-migrations"}},
    "backup": {"pvcName": "backups"},
}
WINDOW = {"schedule": "0 2 * * 6", "duration": "2h"}


def _with(path: str, value: Any) -> dict[str, Any]:
    """VALID with one field set (``a.b.c``); a value of ``DELETE`` removes the field."""
    spec = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value == "DELETE":
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


PROBE = {"name": "by-path", "sql": "SELECT 1"}
HOOK = {"name": "team", "secretRef": {"name": "hooks"}}
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("no database", _with("database", "DELETE"), "spec.database: Required value"),
    ("no secret reference", _with("database", {}), "secretRef: Required value"),
    ("empty secret name", _with("database.secretRef.name", ""), "at least 1 chars long"),
    (
        "both uriKey and hostKey",
        _with("database.secretRef.hostKey", "host"),
        "set exactly one of uriKey",
    ),
    ("neither uriKey nor hostKey", _with("database.secretRef.uriKey", "DELETE"), "exactly one"),
    ("unknown sslMode", _with("database.sslMode", "on"), 'Unsupported value: "on"'),
    ("no source", _with("source", "DELETE"), "spec.source: Required value"),
    ("empty source", _with("source", {}), "set exactly one migration source"),
    (
        "two sources",
        _with("source.image", {"path": "/migrations"}),
        "set exactly one migration source",
    ),
    ("relative image path", _with("source", {"image": {"path": "m"}}), "should match '^/'"),
    (
        "bad inline file name",
        _with("source", {"inline": [{"name": "create_users.sql", "sql": "SELECT 1"}]}),
        "should match",
    ),
    ("target version zero", _with("targetVersion", 0), "greater than or equal to 1"),
    ("no backup section", _with("backup", "DELETE"), "spec.backup: Required value"),
    ("unknown backup format", _with("backup.format", "tar"), 'Unsupported value: "tar"'),
    ("backup without a PVC", _with("backup.pvcName", "DELETE"), "needs backup.pvcName"),
    ("parallel custom dump", _with("backup.jobs", 4), "needs format: directory"),
    ("zero backup jobs", _with("backup.jobs", 0), "greater than or equal to 1"),
    ("zero retention", _with("backup.retention", 0), "greater than or equal to 1"),
    ("unknown lint policy", _with("safety.lintPolicy", "lenient"), 'Unsupported value: "lenient"'),
    ("negative lock timeout", _with("safety.lockTimeout", "-5s"), "lockTimeout must be a positive"),
    ("lock timeout without unit", _with("safety.lockTimeout", "5"), "lockTimeout must be"),
    ("zero statement timeout", _with("safety.statementTimeout", "0s"), "statementTimeout must be"),
    ("negative retries", _with("safety.lockRetries", -1), "greater than or equal to 0"),
    ("zero large-table threshold", _with("preflight.largeTableRows", 0), "greater than or equal"),
    (
        "window of zero duration",
        _with("maintenanceWindow", {**WINDOW, "duration": "0h"}),
        "duration must be a positive",
    ),
    (
        "window without duration",
        _with("maintenanceWindow", {"schedule": "0 2 * * 6"}),
        "duration: Required value",
    ),
    (
        "cron in words",
        _with("maintenanceWindow", {**WINDOW, "schedule": "every night at 2"}),
        "schedule must be a 5-field cron expression",
    ),
    (
        "cron with four fields",
        _with("maintenanceWindow", {**WINDOW, "schedule": "0 2 * *  "}),
        "schedule must be a 5-field cron expression",
    ),
    ("unknown approval mode", _with("approval.mode", "Auto"), 'Unsupported value: "Auto"'),
    (
        "restore without backup",
        {**_with("rollback.strategy", "RestoreBackup"), "backup": {"enabled": False}},
        "RestoreBackup needs backup.enabled: true",
    ),
    ("unknown rollback strategy", _with("rollback.strategy", "Drop"), 'Unsupported value: "Drop"'),
    (
        "scale down a DaemonSet",
        _with("rollback.scaleDown", [{"kind": "DaemonSet", "name": "web"}]),
        'Unsupported value: "DaemonSet"',
    ),
    (
        "probe without an expected index",
        _with("verification.probes", [PROBE]),
        "expectIndex: Required value",
    ),
    (
        "probe with a bad name",
        _with("verification.probes", [{**PROBE, "name": "By_Path", "expectIndex": "i"}]),
        "should match",
    ),
    ("short job deadline", _with("jobs.activeDeadlineSeconds", 10), "greater than or equal to 60"),
    (
        "two notification targets of one name",
        _with("notifications", [HOOK, {**HOOK, "format": "slack"}]),
        "notification target names must be unique",
    ),
    (
        "notification event listed twice",
        _with("notifications", [{**HOOK, "events": ["Failed", "Failed"]}]),
        "events must not list an event twice",
    ),
    (
        "unknown notification event",
        _with("notifications", [{**HOOK, "events": ["Exploded"]}]),
        'Unsupported value: "Exploded"',
    ),
    (
        "unknown notification format",
        _with("notifications", [{**HOOK, "format": "teams"}]),
        'Unsupported value: "teams"',
    ),
    (
        "notification target without a Secret",
        _with("notifications", [{"name": "team"}]),
        "secretRef: Required value",
    ),
    (
        "cron hour 25",
        _with("maintenanceWindow", {**WINDOW, "schedule": "0 25 * * *"}),
        "the hour field (field 2 of",
    ),
    (
        "cron minute 61",
        _with("maintenanceWindow", {**WINDOW, "schedule": "61 2 * * *"}),
        "the minute field (field 1 of",
    ),
    (
        "cron month 13",
        _with("maintenanceWindow", {**WINDOW, "schedule": "0 2 * 13 *"}),
        "the month field",
    ),
    (
        "cron day-of-week 8",
        _with("maintenanceWindow", {**WINDOW, "schedule": "0 2 * * 8"}),
        "the day-of-week field",
    ),
    (
        "probe that deletes",
        _with("verification.probes", [{**PROBE, "sql": "DELETE FROM t", "expectIndex": "i"}]),
        "must be one read-only query starting with SELECT",
    ),
    (
        "probe that updates",
        _with("verification.probes", [{**PROBE, "sql": "UPDATE t SET a = 1", "expectIndex": "i"}]),
        "must be one read-only query starting with SELECT",
    ),
    (
        "probe of two statements",
        _with(
            "verification.probes",
            [{**PROBE, "sql": "SELECT 1; DROP TABLE users", "expectIndex": "i"}],
        ),
        "with no ';' but a trailing one",
    ),
    (
        "secret name that is no object name",
        _with("database.secretRef.name", "Analytics DB"),
        "spec.database.secretRef.name: Invalid value",
    ),
    (
        "config map name that is no object name",
        _with("source.configMap.name", "migrations_v2"),
        "must be a valid object name",
    ),
    (
        "backup PVC name that is no object name",
        _with("backup.pvcName", "Backups!"),
        "must be a valid object name",
    ),
    (
        "scale-down workload name with spaces",
        _with("rollback.scaleDown", [{"kind": "Deployment", "name": "web app"}]),
        "spec.rollback.scaleDown[0].name: Invalid value",
    ),
    (
        "service account name that is no object name",
        _with("jobs.serviceAccountName", "Step Runner"),
        "must be a valid object name",
    ),
    (
        "unknown top-level field",
        {**VALID, "bakup": {"enabled": True}},
        'unknown field "spec.bakup"',
    ),
    (
        "unknown nested field",
        _with("backup.compress", True),
        'unknown field "spec.backup.compress"',
    ),
]


@pytest.fixture(scope="module")
def installed_crd(testbed: Any) -> None:
    install_crd(testbed.kubectl, CRD_FILE)


def _resource(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "DatabaseMigration",
        "metadata": {"name": name},
        "spec": spec,
    }


def _create(testbed: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    api = k8s.CustomObjectsApi(testbed.api_client())
    created = api.create_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, body, field_validation="Strict"
    )
    assert isinstance(created, dict)
    return created


def test_explain_prints_field_descriptions(testbed: Any, installed_crd: None) -> None:
    deadline = time.monotonic() + 60  # the OpenAPI document is published shortly after the CRD
    result = testbed.kubectl("explain", "databasemigration.spec.backup")
    while result.returncode != 0 and time.monotonic() < deadline:
        time.sleep(1)
        result = testbed.kubectl("explain", "databasemigration.spec.backup")
    assert result.returncode == 0, result.stderr
    assert "The backup step. Required: name the PVC" in result.stdout
    assert "pvcName" in result.stdout
    assert "PersistentVolumeClaim the backup is written to" in result.stdout


def test_sample_applies_and_lists_with_printer_columns(
    testbed: Any, installed_crd: None, namespace: str
) -> None:
    applied = testbed.kubectl("apply", "-n", namespace, "-f", str(SAMPLE))
    assert applied.returncode == 0, applied.stderr
    listed = testbed.kubectl("get", "dbm", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    header = listed.stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "TARGET", "APPLIED", "READY", "AGE"]
    assert listed.stdout.splitlines()[1].startswith("analytics")


def test_defaults_are_applied_by_the_server(
    testbed: Any, installed_crd: None, namespace: str
) -> None:
    created = _create(testbed, namespace, _resource("defaults", VALID))
    assert created["spec"]["backup"]["enabled"] is True
    assert created["spec"]["safety"]["lintPolicy"] == "strict"
    assert created["spec"]["safety"]["lockTimeout"] == "5s"
    assert created["spec"]["rollback"]["strategy"] == "DropCreatedObjects"


def test_valid_spec_is_accepted(testbed: Any, installed_crd: None, namespace: str) -> None:
    spec = {
        **VALID,
        "maintenanceWindow": {**WINDOW, "timeZone": "Europe/Paris", "schedule": "*/30 1-5 L * MON"},
        "verification": {
            "probes": [
                {**PROBE, "expectIndex": "idx"},
                {"name": "cte", "sql": "WITH a AS (SELECT 1) SELECT * FROM a;", "expectIndex": "i"},
            ]
        },
        "rollback": {
            "strategy": "RestoreBackup",
            "scaleDown": [{"kind": "Deployment", "name": "web.v2-a"}],
        },
        "safety": {"lockTimeout": "1m30s", "statementTimeout": "500ms"},
    }
    assert _create(testbed, namespace, _resource("valid", spec))["metadata"]["name"] == "valid"


@pytest.mark.parametrize(("case", "spec", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_spec_is_refused_by_the_api_server(
    testbed: Any, installed_crd: None, namespace: str, case: str, spec: dict, message: str
) -> None:
    with pytest.raises(ApiException) as refused:
        _create(testbed, namespace, _resource("bad", spec))
    assert refused.value.status in (400, 422), refused.value.body
    assert refused.value.body is not None
    assert message in json.loads(refused.value.body)["message"], case


def test_status_subresource_keeps_every_declared_field(
    testbed: Any, installed_crd: None, namespace: str
) -> None:
    _create(testbed, namespace, _resource("status-trip", VALID))
    status = example_instance(DatabaseMigrationStatus).to_wire()
    api = k8s.CustomObjectsApi(testbed.api_client())
    api.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, namespace, PLURAL, "status-trip", {"status": status}
    )
    stored = api.get_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, "status-trip"
    )
    assert isinstance(stored, dict)
    assert yaml.safe_dump(stored["status"], sort_keys=True) == yaml.safe_dump(
        status, sort_keys=True
    )
    assert DatabaseMigrationStatus.model_validate(stored["status"]).to_wire() == status


# What `kubectl apply --dry-run=server` admitted before the API server checked cron ranges,
# probe statements and object names (the message each now gets, in kubectl's own output).
DRY_RUN_REFUSED: list[tuple[str, dict[str, Any], str]] = [
    (case, spec, message)
    for case, spec, message in MALFORMED
    if case
    in (
        "cron hour 25",
        "cron minute 61",
        "probe that deletes",
        "probe that updates",
        "probe of two statements",
        "secret name that is no object name",
        "scale-down workload name with spaces",
    )
]


def _dry_run(testbed: Any, namespace: str, body: dict[str, Any]) -> Any:
    return testbed.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body)
    )


def test_server_side_dry_run_refuses_what_it_admitted_before(
    testbed: Any, installed_crd: None, namespace: str
) -> None:
    assert len(DRY_RUN_REFUSED) == 7
    for case, spec, message in DRY_RUN_REFUSED:
        result = _dry_run(testbed, namespace, _resource("bad", spec))
        assert result.returncode != 0, f"{case} was admitted"
        assert "is invalid" in result.stderr and message in result.stderr, (case, result.stderr)
    sample = yaml.safe_load(SAMPLE.read_text())
    admitted = _dry_run(testbed, namespace, sample)
    assert admitted.returncode == 0, admitted.stderr
    assert "(server dry run)" in admitted.stdout


def test_an_unknown_time_zone_is_admitted_for_the_operator_to_refuse(
    testbed: Any, installed_crd: None, namespace: str
) -> None:
    """The API server cannot know the zone database: the operator stalls such a run before
    its first Job (tests/cluster/test_spec_refusals.py)."""
    window = {**WINDOW, "timeZone": "Mars/Olympus_Mons"}
    result = _dry_run(testbed, namespace, _resource("tz", _with("maintenanceWindow", window)))
    assert result.returncode == 0, result.stderr
