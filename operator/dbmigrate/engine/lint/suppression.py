"""In-file suppressions: ``-- dbmigrate:ignore DM201 reason: the table is empty at this point``.

A suppression comment waives the named rules (ids or names, separated by commas or spaces) for
one statement: the statement it sits in, or else the next one (so the usual place is the line
right before the statement). A reason is required: without one the comment waives nothing and is
itself an error (DM002), so every waiver in the history says why it was safe. The text of a
comment is not SQL, so reading it with plain string operations is right here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from dbmigrate.engine.lint.context import RawFinding
from dbmigrate.engine.lint.rules import find_rule
from dbmigrate.engine.lint.source import Comment, Statement

MARKER = "dbmigrate:ignore"
REASON = "reason:"
NOT_SUPPRESSIBLE = frozenset({"DM001", "DM002", "DM003", "DM009"})


@dataclass
class Suppression:
    """One suppression comment and the statement it applies to (None: after the last one)."""

    location: int
    statement: int | None
    keys: list[str]
    reason: str | None
    rules: set[str] = field(default_factory=set)
    used: bool = False


def _body(text: str) -> str:
    if text.startswith("--"):
        return text[2:]
    return text.removeprefix("/*").removesuffix("*/")


def parse_comment(comment: Comment) -> tuple[list[str], str | None] | None:
    """The rule keys and reason of a suppression comment, or None for an ordinary comment."""
    body = _body(comment.text)
    at = body.lower().find(MARKER)
    if at < 0:
        return None
    rest = body[at + len(MARKER) :]
    split = rest.lower().find(REASON)
    rules_part, reason = (rest, None) if split < 0 else (rest[:split], rest[split + len(REASON) :])
    keys = [key for key in rules_part.replace(",", " ").split() if key]
    return keys, (reason.strip() or None) if reason is not None else None


def collect(comments: list[Comment], statements: list[Statement]) -> list[Suppression]:
    """Every suppression comment, attached to the statement it waives findings of."""
    ends = [s.end for s in statements]
    found = []
    for comment in comments:
        parsed = parse_comment(comment)
        if parsed is None:
            continue
        keys, reason = parsed
        position = bisect.bisect_right(ends, comment.start)
        statement = statements[position].index if position < len(statements) else None
        rules = {rule.id for rule in map(find_rule, keys) if rule is not None}
        found.append(Suppression(comment.start, statement, keys, reason, rules))
    return found


def comment_findings(suppressions: list[Suppression]) -> list[RawFinding]:
    """Findings about the comments themselves: no reason, no rule, unknown rules."""
    findings = []
    for item in suppressions:
        if item.reason is None:
            findings.append(
                RawFinding(
                    "DM002",
                    item.location,
                    -1,
                    "This dbmigrate:ignore comment has no `reason: ...`, so it waives nothing.",
                )
            )
        if not item.keys:
            findings.append(
                RawFinding(
                    "DM003", item.location, -1, "This dbmigrate:ignore comment names no rule."
                )
            )
        for key in item.keys:
            if find_rule(key) is None:
                findings.append(
                    RawFinding(
                        "DM003",
                        item.location,
                        -1,
                        f"Unknown rule {key!r} in a dbmigrate:ignore comment.",
                    )
                )
    return findings


def match(finding: RawFinding, suppressions: list[Suppression]) -> Suppression | None:
    """The suppression with a reason that waives this finding, if any (marked as used)."""
    if finding.rule in NOT_SUPPRESSIBLE:
        return None
    for item in suppressions:
        if item.reason and item.statement == finding.statement and finding.rule in item.rules:
            item.used = True
            return item
    return None


def unused_findings(suppressions: list[Suppression]) -> list[RawFinding]:
    """Valid suppressions that waived nothing: probably on the wrong line, or stale."""
    return [
        RawFinding(
            "DM004",
            item.location,
            -1,
            f"This dbmigrate:ignore comment ({', '.join(sorted(item.rules))}) waives no finding "
            "of the statement it applies to.",
        )
        for item in suppressions
        if item.reason and item.rules and not item.used
    ]
