"""The plan as a Markdown comment a bot posts on the pull request that changes the migrations.

Reviewers of a migration want, in one place: what will run, what the linter says, which statements
block reads or writes while they run, how long the index builds should take, and the plan hash an
approval binds to. ``plan_markdown`` renders the results the plan, lint and preflight steps already
produce (a pure function, so it is unit-tested without a database). Text that comes from migration
files (identifiers, messages) is escaped, so a file cannot inject Markdown or HTML into the comment.
The first line is a hidden marker a bot can search for to update its earlier comment instead of
posting a new one.
"""

from __future__ import annotations

import re

from dbmigrate.api.evidence import PreflightResult
from dbmigrate.api.labels import APPROVE_ANNOTATION
from dbmigrate.api.lint import LintFinding, LintReport
from dbmigrate.api.plan import PlanResult
from dbmigrate.engine.lint import RULES

MARKER = "<!-- dbmigrate:plan -->"
BLOCKING_CATEGORY = "blocking"
STATUS_MARK = {"ok": "✅", "warn": "⚠️", "fail": "❌"}
SEVERITY_MARK = {"error": "❌ error", "warning": "⚠️ warning", "info": "ℹ️ info"}  # noqa: RUF001
_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Text as literal Markdown inside a table cell: HTML's ``& < >`` become entities, the
    punctuation Markdown would read is backslash-escaped, line breaks become spaces (a cell is
    one line)."""
    flat = "".join(_HTML.get(c, c) for c in " ".join(text.split()))
    return _SPECIAL.sub(r"\\\1", flat)


def code(text: str) -> str:
    """Text as an inline code span inside a table cell (no backticks, pipes escaped for GFM)."""
    flat = " ".join(text.split()).replace("`", "'").replace("|", "\\|")
    return f"`{flat}`"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _qualified(schema: str, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _where(f: LintFinding) -> str:
    return code(f"{f.file}:{f.line}:{f.column}")


def is_blocking(f: LintFinding) -> bool:
    """A statement that holds a lock blocking reads or writes for its whole run (waived or not:
    a waiver says it is acceptable, not that it does not block)."""
    rule = RULES.get(f.rule)
    return rule is not None and rule.category == BLOCKING_CATEGORY


def _verdicts(
    plan: PlanResult, lint: LintReport | None, preflight: PreflightResult | None
) -> list[str]:
    parts = [f"**{len(plan.pending)} pending**"]
    if plan.drift_errors:
        parts.append(f"❌ drift ({len(plan.drift_errors)})")
    if lint is not None and lint.policy != "off":
        verdict = "passed" if lint.passed else "**refused**"
        parts.append(
            f"lint ({lint.policy}): {lint.error_count} error(s), {lint.warning_count} "
            f"warning(s), {lint.suppressed_count} waived, {verdict}"
        )
    if preflight is not None:
        parts.append(f"preflight: {'passed' if preflight.passed else '**failed**'}")
    return parts


def _pending(plan: PlanResult) -> list[str]:
    if not plan.pending:
        return ["Nothing pending: the database has every version of the migration set."]
    lines = ["| Version | Name | sha256 | Note |", "| ---: | --- | --- | --- |"]
    for p in plan.pending:
        note = f"resumes after statement {p.resume_from}" if p.resume_from else ""
        lines.append(f"| {p.version} | {escape(p.name)} | `{p.checksum[:12]}` | {note} |")
    return lines


def _drift(plan: PlanResult) -> list[str]:
    if not plan.drift_errors:
        return []
    return ["", "### ❌ Drift", "", *(f"- {escape(e.message)}" for e in plan.drift_errors)]


def _blocking(lint: LintReport) -> list[str]:
    found = [f for f in lint.findings if is_blocking(f)]
    if not found:
        return ["", "### Blocking statements", "", "None found by the linter."]
    lines = [
        "",
        "### Blocking statements",
        "",
        "Statements that hold a lock blocking reads or writes of a table while they run:",
        "",
        "| Where | Rule | What | Waived |",
        "| --- | --- | --- | --- |",
    ]
    for f in found:
        waived = escape(f.suppression_reason or "yes") if f.suppressed else "no"
        lines.append(f"| {_where(f)} | {f.rule} | {escape(f.message)} | {waived} |")
    return lines


def _findings(lint: LintReport) -> list[str]:
    if lint.policy == "off":
        return ["", "### Lint", "", "Not run (policy off)."]
    if not lint.findings:
        return ["", "### Lint", "", f"No findings in {lint.files} file(s)."]
    lines = [
        "",
        "### Lint",
        "",
        "| Severity | Where | Rule | Message | Hint |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in lint.findings:
        severity = f"~~{f.severity}~~ waived" if f.suppressed else SEVERITY_MARK[f.severity]
        lines.append(
            f"| {severity} | {_where(f)} | {f.rule} {escape(f.name)} | {escape(f.message)} "
            f"| {escape(f.hint)} |"
        )
    return lines


def _preflight(r: PreflightResult | None) -> list[str]:
    lines = ["", "### Preflight estimates", ""]
    if r is None:
        return [*lines, "Not run (add `--preflight` to check privileges, sizes and build times)."]
    lines.append(
        f"Role {code(r.role)}, PostgreSQL {escape(r.server_version)}, database "
        f"{_size(r.database_size_bytes)}; new indexes ~{_size(r.estimated_disk_bytes)} on disk, "
        f"~{_seconds(r.estimated_build_seconds)} to build."
    )
    if r.new_indexes:
        lines += [
            "",
            "| Index | Table | Rows | Size | Build | Concurrently |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for i in r.new_indexes:
            lines.append(
                f"| {escape(i.name or '(unnamed)')} | {escape(_qualified(i.schema_name, i.table))} "
                f"| {i.estimated_rows:,} | {_size(i.estimated_size_bytes)} "
                f"| {_seconds(i.estimated_build_seconds)} | {'yes' if i.concurrently else 'no'} |"
            )
    if r.tables:
        lines += ["", "| Table | Rows (estimate) | Size | Large |", "| --- | ---: | ---: | --- |"]
        for t in r.tables:
            created = " (created by the SQL)" if not t.exists else ""
            lines.append(
                f"| {escape(_qualified(t.schema_name, t.name))}{created} | {t.estimated_rows:,} "
                f"| {_size(t.size_bytes)} | {'yes' if t.large else 'no'} |"
            )
    if r.checks:
        lines += ["", "| Check | Result |", "| --- | --- |"]
        lines += [
            f"| {STATUS_MARK[c.status]} {escape(c.name)} | {escape(c.message)} |" for c in r.checks
        ]
    return lines


def plan_markdown(
    plan: PlanResult, lint: LintReport | None = None, preflight: PreflightResult | None = None
) -> str:
    """The plan, the lint report and the preflight result (each optional but the plan) as one
    Markdown document."""
    target = f" to version {plan.target}" if plan.target is not None else ""
    lines = [
        MARKER,
        f"## dbmigrate plan: {code(plan.database)}{target}",
        "",
        " · ".join(_verdicts(plan, lint, preflight)),
        "",
        "### Pending versions",
        "",
        *_pending(plan),
        *_drift(plan),
    ]
    if lint is not None:
        lines += [*_blocking(lint), *_findings(lint)]
    lines += _preflight(preflight)
    lines += [
        "",
        "### Plan hash",
        "",
        f"`{plan.plan_hash}`",
        "",
        "An approval binds to this hash: `kubectl annotate dbm/<name> "
        f"{APPROVE_ANNOTATION}={plan.plan_hash}`. A change to a pending file or the target "
        "changes it.",
    ]
    return "\n".join(lines) + "\n"
