"""The lint report in the two formats CI systems read: SARIF 2.1.0 and GitHub workflow commands.

Code scanning services (GitHub's, GitLab's, Azure DevOps') import SARIF files and show each result
on the line it points at; GitHub Actions turns ``::error file=...,line=...::`` lines of a step's
log into annotations on the pull request's diff, with no upload and no permission. Both renderers
are pure functions of a ``LintReport``, so ``dbmigrate lint`` keeps one exit-code contract whatever
it prints.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from dbmigrate import __version__
from dbmigrate.api.lint import LintFinding, LintReport, LintSeverity
from dbmigrate.engine.lint import RULES

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_LEVEL: dict[LintSeverity, str] = {"error": "error", "warning": "warning", "info": "note"}
GITHUB_COMMAND: dict[LintSeverity, str] = {
    "error": "error",
    "warning": "warning",
    "info": "notice",
}


def artifact_uri(file: str) -> str:
    """A file name as a SARIF artifact URI: a relative reference for a relative path (what code
    scanning resolves against the checkout), a ``file://`` URI for an absolute one."""
    path = PurePath(file)
    if path.is_absolute():
        return "file://" + quote(path.as_posix())
    return quote(path.as_posix())


def _sarif_rules() -> list[dict[str, Any]]:
    return [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "help": {"text": rule.hint},
            "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
            "properties": {"category": rule.category},
        }
        for rule in RULES.values()
    ]


def _sarif_result(finding: LintFinding, rule_index: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "level": SARIF_LEVEL[finding.severity],
        "message": {"text": f"{finding.message} Hint: {finding.hint}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(finding.file)},
                    "region": {"startLine": finding.line, "startColumn": finding.column},
                }
            }
        ],
    }
    if finding.rule in rule_index:
        result["ruleIndex"] = rule_index[finding.rule]
    if finding.suppressed:
        suppression: dict[str, Any] = {"kind": "inSource"}
        if finding.suppression_reason:
            suppression["justification"] = finding.suppression_reason
        result["suppressions"] = [suppression]
    return result


def sarif_log(report: LintReport, exit_code: int) -> dict[str, Any]:
    """The report as one SARIF 2.1.0 log with one run. Columns count Unicode code points, as
    the linter's do; suppressed findings are kept, marked with an in-source suppression."""
    rule_index = {rule_id: i for i, rule_id in enumerate(RULES)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "dbmigrate",
                        "semanticVersion": __version__,
                        "rules": _sarif_rules(),
                    }
                },
                "columnKind": "unicodeCodePoints",
                "invocations": [{"executionSuccessful": True, "exitCode": exit_code}],
                "results": [_sarif_result(f, rule_index) for f in report.findings],
                "properties": {"policy": report.policy, "passed": report.passed},
            }
        ],
    }


def _escape_data(text: str) -> str:
    """Escape the message of a workflow command (what the runner unescapes)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """Escape a property value of a workflow command, where ``:`` and ``,`` are separators."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(finding: LintFinding) -> str:
    """One finding as a workflow command: ``::error file=F,line=L,col=C,title=RULE::message``."""
    properties = ",".join(
        f"{key}={_escape_property(value)}"
        for key, value in (
            ("file", finding.file),
            ("line", str(finding.line)),
            ("col", str(finding.column)),
            ("title", finding.rule),
        )
    )
    message = f"{finding.message} [{finding.name}]\nhint: {finding.hint}"
    return f"::{GITHUB_COMMAND[finding.severity]} {properties}::{_escape_data(message)}"


def github_lines(report: LintReport, verdict: str) -> list[str]:
    """An annotation per unsuppressed finding (waived ones are not news on a pull request),
    then the verdict line as plain log text."""
    lines = [github_annotation(f) for f in report.findings if not f.suppressed]
    lines.append(verdict)
    return lines
