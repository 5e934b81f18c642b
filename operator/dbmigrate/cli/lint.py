"""``dbmigrate lint``: check migration files with PostgreSQL's parser before anything runs.

Works without a database. Exit codes: 0 the files pass the policy, 1 the policy is strict and an
unsuppressed error remains, 2 bad usage or unreadable input. Human output is one line per finding
(``file:line:col severity rule message``) followed by its fix hint; ``--output json`` prints the
``LintReport`` as written into a DatabaseMigration's status; ``--output sarif`` a SARIF 2.1.0 log
for code scanning and ``--output github`` GitHub Actions annotations (see ``lint_output``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from dbmigrate.api.lint import LintFinding, LintPolicy, LintReport
from dbmigrate.cli.ci_formats import github_lines, sarif_log
from dbmigrate.engine.lint import POLICIES, RULES, build_report, lint_sql
from dbmigrate.engine.sources import MigrationSourceError, load_directory


class LintInputError(ValueError):
    """The files to lint cannot be found or read."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dbmigrate lint``."""
    parser = subparsers.add_parser(
        "lint",
        help="check migration files for unsafe SQL (no database needed)",
        description="Lint migration files with PostgreSQL's own parser. Exit 0: passed; 1: "
        "strict policy and unsuppressed errors; 2: bad usage or unreadable files. Waive a "
        "finding with `-- dbmigrate:ignore DM201 reason: <why>` before the statement.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="SQL files to lint")
    parser.add_argument("--migrations", metavar="DIR", help="lint every *.sql file of DIR")
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default="strict",
        help="strict: errors fail (exit 1); warn: report only; off: do not lint",
    )
    parser.add_argument(
        "--output",
        choices=("text", "json", "sarif", "github"),
        default="text",
        help="text (default); json: the LintReport; sarif: a SARIF 2.1.0 log for code scanning; "
        "github: GitHub Actions annotations (::error file=...,line=...::) on the diff",
    )
    parser.add_argument("--list-rules", action="store_true", help="print the rule table and exit")
    parser.set_defaults(func=run_lint)


def collect_files(files: list[str], migrations: str | None) -> list[Path]:
    """The files to lint, in order: the folder's migrations by version (the folder read and
    refused exactly as ``apply`` reads it), then the named files."""
    paths: list[Path] = []
    if migrations:
        try:  # the folder rules of apply: names, versions, readable, non-empty files
            folder = load_directory(migrations)
        except MigrationSourceError as exc:
            raise LintInputError(str(exc)) from exc
        paths.extend(Path(migrations) / m.filename for m in folder)
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise LintInputError(f"{name!r} is not a file")
        paths.append(path)
    if not paths:
        raise LintInputError("nothing to lint: give --migrations DIR or SQL files")
    return paths


def lint_paths(paths: list[Path], policy: LintPolicy) -> LintReport:
    """Lint files from disk; bytes that are not UTF-8 become a parse-error finding."""
    if policy == "off":
        return build_report([], policy, len(paths))
    findings: list[LintFinding] = []
    for path in paths:
        try:
            text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        except OSError as exc:
            raise LintInputError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
        findings.extend(lint_sql(text, str(path)))
    return build_report(findings, policy, len(paths))


def format_finding(finding: LintFinding) -> str:
    """``file:line:col severity rule message`` and the hint on the next line."""
    state = f" (suppressed: {finding.suppression_reason})" if finding.suppressed else ""
    lines = [
        f"{finding.file}:{finding.line}:{finding.column} {finding.severity} {finding.rule} "
        f"{finding.message} [{finding.name}]{state}",
        f"    hint: {finding.hint}",
    ]
    return "\n".join(lines)


def format_verdict(report: LintReport) -> str:
    """The counts and the policy's verdict on one line."""
    verdict = "passed" if report.passed else "FAILED"
    return (
        f"{report.files} file(s): {report.error_count} error(s), {report.warning_count} "
        f"warning(s), {report.suppressed_count} suppressed; policy {report.policy}: {verdict}"
    )


def format_report(report: LintReport) -> str:
    """Every finding, then a one-line verdict."""
    lines = [format_finding(f) for f in report.findings]
    lines.append(format_verdict(report))
    return "\n".join(lines)


def format_rules() -> str:
    """The rule table, one rule per line."""
    return "\n".join(f"{r.id}  {r.severity:<7}  {r.name:<32} {r.summary}" for r in RULES.values())


def run_lint(args: argparse.Namespace) -> int:
    """Entry point of ``dbmigrate lint``."""
    if args.list_rules:
        print(format_rules())
        return EXIT_OK
    try:
        report = lint_paths(collect_files(args.files, args.migrations), args.policy)
    except LintInputError as exc:
        print(f"dbmigrate lint: {exc}", file=sys.stderr)
        return EXIT_USAGE
    code = EXIT_OK if report.passed else EXIT_FAILED
    if args.output == "json":
        print(json.dumps(report.to_wire(), indent=2))
    elif args.output == "sarif":
        print(json.dumps(sarif_log(report, code), indent=2))
    elif args.output == "github":
        print("\n".join(github_lines(report, format_verdict(report))))
    else:
        print(format_report(report))
    return code
