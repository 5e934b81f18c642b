"""The migration linter: PostgreSQL's own parser (pglast), rules with ids, policy, suppressions.

``lint_sql`` lints one file; ``lint_migrations`` lints a migration set and judges it by a policy
(strict: unsuppressed errors stop the run; warn: everything is reported, nothing stops; off: no
linting). The rule table and the comparison with squawk are in this package's README.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from dbmigrate.api.lint import LintFinding, LintPolicy, LintReport
from dbmigrate.engine.lint.doblocks import IN_DO_BLOCK
from dbmigrate.engine.lint.rules import RULES, Rule, find_rule
from dbmigrate.engine.lint.runner import lint_sql

POLICIES: tuple[LintPolicy, ...] = ("strict", "warn", "off")


class SqlFile(Protocol):
    """Anything with a file name and its SQL, such as ``dbmigrate.engine.sources.Migration``."""

    @property
    def filename(self) -> str: ...

    @property
    def sql(self) -> str: ...


def build_report(findings: list[LintFinding], policy: LintPolicy, files: int) -> LintReport:
    """Count the unsuppressed findings and judge them by the policy."""
    active = [f for f in findings if not f.suppressed]
    errors = sum(1 for f in active if f.severity == "error")
    return LintReport(
        policy=policy,
        files=files,
        findings=findings,
        error_count=errors,
        warning_count=sum(1 for f in active if f.severity == "warning"),
        suppressed_count=len(findings) - len(active),
        passed=policy != "strict" or errors == 0,
    )


def lint_migrations(
    migrations: Iterable[SqlFile],
    policy: LintPolicy = "strict",
    existing_tables: set[str] | None = None,
) -> LintReport:
    """Lint every migration (each file on its own) and judge the result by ``policy``."""
    if policy not in POLICIES:
        raise ValueError(f"unknown lint policy {policy!r}: use one of {', '.join(POLICIES)}")
    files = list(migrations)
    if policy == "off":
        return build_report([], policy, len(files))
    findings = [f for m in files for f in lint_sql(m.sql, m.filename, existing_tables)]
    return build_report(findings, policy, len(files))


__all__ = [
    "IN_DO_BLOCK",
    "POLICIES",
    "RULES",
    "LintFinding",
    "LintReport",
    "Rule",
    "SqlFile",
    "build_report",
    "find_rule",
    "lint_migrations",
    "lint_sql",
]
