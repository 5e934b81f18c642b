"""One command per step: ``dbmigrate <step>`` by hand and in the Job, ``dbmigrate job <step>`` its
alias with the old defaults; every old spelling accepted; the database reached the same way."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dbmigrate.api.exitcodes import EXIT_OK, EXIT_USAGE
from dbmigrate.cli.main import build_parser, main
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner import apply as apply_step
from dbmigrate.runner import rollback as rollback_step
from dbmigrate.runner.context import LIBPQ_ENV, StepContext, conninfo_from
from dbmigrate.runner.options import duration_ms

pytestmark = pytest.mark.unit

URL = "postgresql://app:secret-pw@db.example:5432/analytics"
HASH = "a" * 64

# The command lines the operator built before the steps had one command each.
OLD_JOB_LINES = {
    "plan": "--lint-policy warn --no-auto-concurrently --large-table-rows 10 --target-version 5 "
    "--explain-analyze",
    "backup": "--backup-dir /b/ns/r --backup-name r1 --backup-format directory --backup-jobs 4 "
    "--keep 3",
    "apply": f"--plan-hash {HASH} --lock-timeout 3s --statement-timeout 6h --lock-retries 5 "
    "--retry-backoff 2s --no-auto-concurrently --target-version 5",
    "verify": "--no-analyze --explain-analyze --statement-timeout 6h --target-version 5",
    "rollback": "--strategy RestoreBackup --lock-timeout 3s --statement-timeout 6h "
    "--backup-path /b/ns/r/x.dump --restore-jobs 2",
}
COMMON = ["--report-to", "ns/r", "--run-id", "r1", "--migrations", "/migrations"]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize("step", sorted(OLD_JOB_LINES))
def test_the_old_job_lines_parse_under_the_alias_and_as_the_step(step: str) -> None:
    """The alias and the step command are the same parser: the old line means the same to both,
    apart from the alias's own defaults (``JOB_DEFAULTS``) where the line leaves them unset."""
    from dbmigrate.cli.job import STEP_MODULES

    (module,) = [m for m in STEP_MODULES if step == m.STEP]
    old = parse("job", step, *COMMON, *OLD_JOB_LINES[step].split())
    new = parse(step, *COMMON, *OLD_JOB_LINES[step].split())
    assert old.func.__doc__ == new.func.__doc__ and old.step == new.step == step
    skip = {"command", "func", "log_format", *module.JOB_DEFAULTS}
    assert {k: v for k, v in vars(old).items() if k not in skip} == {
        k: v for k, v in vars(new).items() if k not in skip
    }
    assert old.log_format == "text" and new.log_format is None


def test_every_spelling_reaches_the_same_option() -> None:
    backup = parse("backup", "--backup-dir", "/x", "--backup-name", "n", "--backup-jobs", "3")
    assert (backup.dir, backup.name, backup.jobs) == ("/x", "n", 3)
    short = parse("backup", "--dir", "/x", "--name", "n", "--jobs", "3", "--format", "directory")
    assert (short.dir, short.name, short.jobs, short.format) == ("/x", "n", 3, "directory")
    rollback = parse("rollback", "--backup-path", "/b.dump", "--restore-jobs", "2")
    assert (rollback.backup, rollback.jobs) == ("/b.dump", 2)
    assert parse("plan", "--target-version", "4").target == parse("plan", "--target", "4").target


@pytest.mark.parametrize(
    ("spelling", "strategy"),
    [
        ("drop", "dropCreatedObjects"),
        ("DropCreatedObjects", "dropCreatedObjects"),
        ("restore", "restoreBackup"),
        ("RestoreBackup", "restoreBackup"),
    ],
)
def test_both_spellings_of_the_strategy(spelling: str, strategy: str) -> None:
    args = parse("rollback", "--strategy", spelling)
    assert rollback_step.STRATEGIES[args.strategy] == strategy


def test_the_alias_keeps_the_old_job_defaults() -> None:
    hand = parse("apply", "--migrations", "m")
    job = parse("job", "apply", "--migrations", "m", "--run-id", "r", "--plan-hash", HASH)
    assert (hand.lock_retries, hand.statement_timeout, hand.auto_concurrently) == (3, 0, False)
    assert hand.lint_policy == "strict"
    assert (job.lock_retries, job.statement_timeout, job.auto_concurrently) == (5, 21_600_000, True)
    assert job.lint_policy == "warn"
    plan = parse("job", "plan", "--migrations", "m", "--run-id", "r")
    assert (plan.lint_policy, plan.preflight, plan.auto_concurrently) == ("strict", True, True)
    assert parse("plan").lint_policy is None and parse("plan").preflight is False
    assert parse("job", "rollback", "--run-id", "r", "--strategy", "drop").lock_timeout == 5000
    assert parse("rollback").lock_timeout == 10_000


@pytest.mark.parametrize(
    "argv",
    [
        ["job", "apply", "--migrations", "m", "--plan-hash", HASH],  # no --run-id
        ["job", "apply", "--migrations", "m", "--run-id", "r"],  # no --plan-hash
        ["job", "rollback", "--run-id", "r"],  # no --strategy
    ],
)
def test_the_alias_still_requires_what_it_required(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(*argv)
    assert stopped.value.code == EXIT_USAGE


@pytest.mark.parametrize(
    ("text", "millis"), [("0", 0), ("0s", 0), ("250", 250), ("500ms", 500), ("1h30m", 5_400_000)]
)
def test_durations_take_the_spec_form_and_plain_milliseconds(text: str, millis: int) -> None:
    assert duration_ms(text) == millis


def test_a_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse("apply", "--statement-timeout", "soon")
    assert stopped.value.code == EXIT_USAGE
    assert "invalid duration" in capsys.readouterr().err


@pytest.mark.parametrize("alias", [[], ["job"]])
def test_statement_timeout_zero_reaches_the_engine(
    alias: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dbmigrate job apply --statement-timeout 0`` once ended in a traceback."""
    (tmp_path / "001_a.sql").write_text("SELECT 1;\n")
    seen: dict[str, Any] = {}

    def fake_apply(conninfo: str, migrations: object, settings: Any, *rest: object) -> Any:
        seen["settings"] = settings
        from dbmigrate.api.plan import ApplyResult

        now = datetime.now(UTC)
        return ApplyResult(
            status="nothing_to_do", database="db", run_id="r", started_at=now, finished_at=now
        )

    monkeypatch.setattr("dbmigrate.engine.apply.apply_migrations", fake_apply)
    argv = [*alias, "apply", "--database-url", URL, "--migrations", str(tmp_path)]
    argv += ["--run-id", "r", "--plan-hash", HASH, "--statement-timeout", "0", "--output", "json"]
    assert main(argv) == EXIT_OK
    assert seen["settings"].statement_timeout_ms == 0


def _no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", *LIBPQ_ENV):
        monkeypatch.delenv(name, raising=False)


def test_the_url_flag_wins_then_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_database_env(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@env.example/db")
    monkeypatch.setenv("PGHOST", "pg.example")
    assert conninfo_from(argparse.Namespace(database_url=URL)) == URL
    assert conninfo_from(argparse.Namespace(database_url=None)).startswith("postgresql://u@env")


@pytest.mark.parametrize("name", ["PGHOST", "PGDATABASE", "PGSERVICE", "PGUSER", "PGPORT"])
def test_libpq_variables_alone_are_enough(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_database_env(monkeypatch)
    monkeypatch.setenv(name, "5433" if name == "PGPORT" else "x")
    assert conninfo_from(argparse.Namespace(database_url=None)) == ""


def test_without_any_database_the_step_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_database_env(monkeypatch)
    with pytest.raises(StepError, match=r"DATABASE_URL.*PGHOST"):
        conninfo_from(argparse.Namespace(database_url=None))


@pytest.mark.parametrize("command", ["plan", "apply", "preflight", "verify", "status", "history"])
def test_every_command_exits_2_without_a_database(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _no_database_env(monkeypatch)
    (tmp_path / "001_a.sql").write_text("SELECT 1;\n")
    files = [] if command == "history" else ["--migrations", str(tmp_path)]
    assert main([command, *files]) == EXIT_USAGE
    assert "no database: give --database-url, set DATABASE_URL" in capsys.readouterr().err


def test_the_apply_job_takes_its_context_from_the_status() -> None:
    """With --report-to, verify and rollback take this run's versions (--this-run)."""
    from dbmigrate.runner.options import this_run

    job = parse("verify", *COMMON)
    assert this_run(job) is True
    assert this_run(parse("verify", "--migrations", "m")) is False
    assert this_run(parse("verify", *COMMON, "--no-this-run")) is False
    with pytest.raises(StepError, match="--run-id"):
        this_run(parse("verify", "--this-run"))


def test_an_explicit_sha256_wins_over_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_rollback(url: str, strategy: str, **options: Any) -> Any:
        seen.update(options)
        from dbmigrate.api.evidence import RollbackRecord

        return RollbackRecord(
            strategy=strategy,
            target_database="db",
            verified=True,
            duration_seconds=0.0,
            message="done",
        )

    monkeypatch.setattr("dbmigrate.engine.undo.rollback.rollback", fake_rollback)

    class Status:
        def result(self, key: str, model: object) -> None:
            seen[key] = model

        def read_status(self) -> dict[str, Any]:
            return {"backup": {"sha256": "from-status"}}

    for extra, expected in (([], "from-status"), (["--sha256", "given"], "given")):
        args = parse("rollback", "--strategy", "restore", "--versions", "3", *extra)
        ctx = StepContext(args=args, reporter=Status(), conninfo=URL)  # type: ignore[arg-type]
        assert rollback_step.run(ctx) == EXIT_OK
        assert seen["expected_sha256"] == expected and seen["versions"] == [3]


def test_apply_settings_refused_by_the_engine_are_bad_input() -> None:
    args = parse("apply", "--migrations", "m", "--lock-retries", "-1")
    with pytest.raises(StepError):
        apply_step.settings_from(args)
