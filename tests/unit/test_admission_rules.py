"""The rules the API server applies at admission, held against the code that checks the same
thing later: the cron field patterns against croniter, the probe rule against PostgreSQL's
parser, object names against the Kubernetes rule. The real API server runs the generated CEL in
tests/cluster/test_crd.py; here each pattern is run by Python's ``re`` (the patterns use only
what RE2 and ``re`` share)."""

from __future__ import annotations

import re

import pytest
from croniter import croniter
from pydantic import ValidationError

from dbmigrate.api import cron, probesql
from dbmigrate.api.crd import build_crd
from dbmigrate.api.objectnames import DNS_SUBDOMAIN
from dbmigrate.api.spec import DatabaseMigrationSpec

pytestmark = pytest.mark.unit

SCHEDULES = [
    "0 2 * * 6",
    "*/15 * * * *",
    "0 0-23/2 * * *",
    "00 02 * * *",
    "0 2 1,15 * *",
    "0 2 L * *",
    "0 2 15W * *",
    "0 2 ? * MON",
    "0 2 * jan-mar mon-fri",
    "0 2 * * 7",
    "0 2 * * 5#3",
    "0 2 * * sun#2",
    "0 2 * * 1-5/2",
    "59 23 31 12 0",
    "0  2 * * 6",
    "0 25 * * *",
    "61 0 * * *",
    "60 * * * *",
    "0 24 * * *",
    "*/0 * * * *",
    "0 2 0 * *",
    "0 2 32 * *",
    "0 2 * 0 *",
    "0 2 * 13 *",
    "0 2 * * 8",
    "0 2 * smarch *",
    "0 2 * * 5L",
    "0 2 LW * *",
]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_cron_patterns_agree_with_croniter(schedule: str) -> None:
    assert (cron.field_problem(schedule) is None) == croniter.is_valid(schedule)


@pytest.mark.parametrize(
    ("schedule", "field"),
    [("0 25 * * *", "hour"), ("61 0 * * *", "minute"), ("0 2 * 13 *", "month")],
)
def test_an_out_of_range_cron_field_is_named(schedule: str, field: str) -> None:
    assert f"the {field} field" in str(cron.field_problem(schedule))


def test_the_crd_carries_one_rule_per_cron_field() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec["properties"]["maintenanceWindow"]["x-kubernetes-validations"]
    messages = [r["message"] for r in rules]
    for name, _, _ in cron.FIELDS:
        assert any(f"the {name} field" in m for m in messages), name


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t WHERE a = 1",
        "select*from t;",
        "  WITH x AS (SELECT 1) SELECT * FROM x",
        "VALUES (1)",
        "TABLE t",
        "SELECT *\nFROM t\nWHERE a = 1;\n",
    ],
)
def test_read_only_probes_pass_both_checks(sql: str) -> None:
    assert probesql.admits(sql)
    assert probesql.probe_problem(sql) is None


@pytest.mark.parametrize(
    "sql",
    ["DELETE FROM t", "UPDATE t SET a = 1", "SELECT 1; DROP TABLE t", "INSERT INTO t VALUES (1)"],
)
def test_writing_probes_are_refused_at_admission_and_by_the_parser(sql: str) -> None:
    assert not probesql.admits(sql)
    assert probesql.probe_problem(sql) is not None


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", "WITH d runs a DELETE"),
        ("SELECT * INTO copy FROM t", "INTO creates a table"),
        ("SELECT 1 FOR UPDATE", "locks rows"),
        ("SELECT 1 UNION (SELECT 2 FOR SHARE)", "locks rows"),
        ("SELECT FROM WHERE", "does not parse"),
    ],
)
def test_what_only_the_parser_sees_is_refused_by_it(sql: str, said: str) -> None:
    assert probesql.admits(sql)  # CEL cannot tell: the operator refuses it before any Job
    assert said in str(probesql.probe_problem(sql))


@pytest.mark.parametrize("name", ["db", "analytics-db", "a.b-c", "x" * 253])
def test_object_names_that_kubernetes_accepts(name: str) -> None:
    assert re.match(DNS_SUBDOMAIN, name)
    spec = {
        "database": {"secretRef": {"name": name, "uriKey": "uri"}},
        "source": {"configMap": {"name": name}},
        "backup": {"pvcName": name},
        "rollback": {"scaleDown": [{"kind": "Deployment", "name": name}]},
    }
    DatabaseMigrationSpec.model_validate(spec)


@pytest.mark.parametrize("name", ["My_Secret", "web app", "-db", "db-", "a..b", "x" * 254])
def test_object_names_that_no_object_can_have_are_refused(name: str) -> None:
    spec = {
        "database": {"secretRef": {"name": "db", "uriKey": "uri"}},
        "source": {"configMap": {"name": "m"}},
        "backup": {"pvcName": "b"},
        "rollback": {"scaleDown": [{"kind": "Deployment", "name": name}]},
    }
    with pytest.raises(ValidationError, match=r"valid object name|at most 253"):
        DatabaseMigrationSpec.model_validate(spec)
