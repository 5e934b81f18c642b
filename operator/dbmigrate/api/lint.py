"""Results of the lint step, as written into a DatabaseMigration's status.

``dbmigrate lint`` and the plan step produce a ``LintReport``: every finding of the SQL linter
(``dbmigrate.engine.lint``) with its rule, position and fix hint, the policy it was judged by and
whether the run may go on. Suppressed findings stay in the report (with the reason given in the
file) so a reviewer sees what was waived and why.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dbmigrate.api.base import ApiModel

LintSeverity = Literal["error", "warning", "info"]
LintPolicy = Literal["strict", "warn", "off"]


class LintFinding(ApiModel):
    """One problem the linter found in one statement of a migration file."""

    rule: str = Field(
        description="Stable rule id, such as DM201; `dbmigrate lint --help` and the linter's "
        "README list every rule.",
    )
    name: str = Field(description="Readable name of the rule, such as create-index-blocking.")
    severity: LintSeverity = Field(
        description="error stops a strict run; warning and info are reported only."
    )
    file: str = Field(description="Migration file the finding is in.")
    line: int = Field(ge=1, description="1-based line of the finding in the file.")
    column: int = Field(ge=1, description="1-based column (in characters) of the finding.")
    message: str = Field(description="What is wrong and why it matters.")
    hint: str = Field(description="How to fix it, or how to waive it when it is safe.")
    suppressed: bool = Field(
        default=False,
        description="True when a `-- dbmigrate:ignore RULE reason: ...` comment waives it.",
    )
    suppression_reason: str | None = Field(
        default=None, description="The reason written in the suppression comment."
    )
    check_query: str | None = Field(
        default=None,
        description="A read-only query that checks the risk before applying (for example the "
        "duplicate check of a unique index); the preflight step runs it.",
    )


class LintReport(ApiModel):
    """The linter's verdict on a set of migration files under a policy."""

    policy: LintPolicy = Field(
        description="strict: errors stop the run; warn: everything is reported, nothing stops; "
        "off: the linter did not run."
    )
    files: int = Field(default=0, ge=0, description="Number of migration files linted.")
    findings: list[LintFinding] = Field(
        default_factory=list, description="Every finding, suppressed ones included, in file order."
    )
    error_count: int = Field(
        default=0, ge=0, description="Errors that are not suppressed (these stop a strict run)."
    )
    warning_count: int = Field(default=0, ge=0, description="Warnings that are not suppressed.")
    suppressed_count: int = Field(
        default=0, ge=0, description="Findings waived by a suppression comment with a reason."
    )
    passed: bool = Field(
        description="False only under the strict policy when an unsuppressed error remains."
    )
