"""Policies, the report's counts, the `dbmigrate lint` command, and the worked example."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbmigrate.cli import lint as lint_cmds
from dbmigrate.engine.lint import lint_migrations

REPO = Path(__file__).resolve().parents[2]
UNSAFE = "CREATE INDEX IF NOT EXISTS i ON page_views (path);\nCREATE TABLE t (a int);\n"
SAFE = "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON page_views (path);\n"


@dataclass(frozen=True)
class File:
    filename: str
    sql: str


def test_strict_fails_on_errors_and_counts() -> None:
    report = lint_migrations([File("001_a.sql", UNSAFE), File("002_b.sql", SAFE)], "strict")
    assert not report.passed
    assert (report.files, report.error_count, report.warning_count) == (2, 1, 1)
    assert [f.rule for f in report.findings] == ["DM201", "DM301"]
    wire = report.to_wire()
    assert wire["errorCount"] == 1 and wire["findings"][0]["rule"] == "DM201"


def test_warn_reports_everything_and_passes() -> None:
    report = lint_migrations([File("001_a.sql", UNSAFE)], "warn")
    assert report.passed and report.error_count == 1


def test_off_does_not_lint() -> None:
    report = lint_migrations([File("001_a.sql", "SELECT FROM WHERE;")], "off")
    assert report.passed and report.findings == [] and report.files == 1


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lint policy"):
        lint_migrations([], "lenient")  # type: ignore[arg-type]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dbmigrate")
    lint_cmds.register(parser.add_subparsers())
    args = parser.parse_args(["lint", *argv])
    return int(args.func(args))


def write(folder: Path, name: str, sql: str) -> Path:
    path = folder / name
    path.write_text(sql, encoding="utf-8")
    return path


def test_cli_text_output_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "001_a.sql", UNSAFE)
    assert run([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:1:1 error DM201 CREATE INDEX i on page_views" in out
    assert "    hint: Use CREATE INDEX CONCURRENTLY" in out
    assert "policy strict: FAILED" in out
    assert run(["--policy", "warn", str(path)]) == 0
    assert run(["--policy", "off", str(path)]) == 0


def test_cli_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "001_a.sql", UNSAFE)
    write(tmp_path, "002_b.sql", SAFE)
    assert run(["--migrations", str(tmp_path), "--output", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["policy"] == "strict" and data["passed"] is False and data["files"] == 2
    assert {f["rule"] for f in data["findings"]} == {"DM201", "DM301"}


def test_cli_bad_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == 2
    assert run(["--migrations", str(tmp_path / "missing")]) == 2
    assert run([str(tmp_path / "missing.sql")]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_cli_file_that_is_not_utf8_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "001_latin1.sql"
    path.write_bytes("SELECT 'caf\xe9';\n".encode("latin-1"))
    assert run([str(path)]) == 1


def test_cli_lists_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--list-rules"]) == 0
    assert "DM201  error    create-index-blocking" in capsys.readouterr().out


def test_worked_example_migrations_pass_strict() -> None:
    folder = REPO / "database" / "migrations"
    files = sorted(folder.glob("*.sql"))
    if not files:
        pytest.fail(f"no migrations in {folder}: the worked example 001-005 is expected there")
    report = lint_migrations([File(p.name, p.read_text(encoding="utf-8")) for p in files])
    problems = [f"{f.file}:{f.line} {f.rule} {f.message}" for f in report.findings]
    assert report.passed and report.error_count == 0, "\n".join(problems)
