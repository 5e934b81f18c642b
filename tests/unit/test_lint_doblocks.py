"""The SQL inside DO blocks is linted like top-level SQL; what cannot be read is said (DM005)."""

from __future__ import annotations

import pytest

from dbmigrate.engine.apply import ApplySettings, lint_gate
from dbmigrate.engine.errors import LintRefusedError
from dbmigrate.engine.lint import IN_DO_BLOCK, lint_sql
from dbmigrate.engine.sources import load_mapping

BLOCK = """CREATE TABLE IF NOT EXISTS audit (id bigint);

DO $$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM users;
  IF n > 0 THEN
    ALTER TABLE users ALTER COLUMN email SET NOT NULL;
  END IF;
END
$$;
"""


def test_a_statement_inside_a_do_block_is_checked_and_reported_at_the_do() -> None:
    [finding] = [f for f in lint_sql(BLOCK, "007_x.sql") if f.rule == "DM203"]
    assert (finding.line, finding.column) == (3, 1)
    assert finding.message.startswith(IN_DO_BLOCK) and "users.email" in finding.message
    assert finding.severity == "error"


def test_a_waiver_before_the_do_covers_what_is_inside() -> None:
    waived = BLOCK.replace("DO $$", "-- dbmigrate:ignore DM203 reason: users is tiny\nDO $$")
    [finding] = [f for f in lint_sql(waived, "007_x.sql") if f.rule == "DM203"]
    assert finding.suppressed and finding.suppression_reason == "users is tiny"


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("DO $$ BEGIN EXECUTE format('DROP TABLE %I', 't'); END $$;", "at run time"),
        ("DO $$ BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END $$;", "could not be read"),
        ("DO LANGUAGE plpython3u $$ plpy.execute('DROP TABLE t') $$;", "plpython3u"),
        ("DO $$ BEGIN SELEC 1; END $$;", "could not be read"),
    ],
)
def test_what_cannot_be_read_is_a_warning_not_silence(sql: str, says: str) -> None:
    findings = lint_sql(sql, "007_x.sql")
    assert [(f.rule, f.severity) for f in findings] == [("DM005", "warning")]
    assert says in findings[0].message


def test_a_dynamic_loop_over_a_declared_record_is_seen_as_dynamic() -> None:
    sql = "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END $$;"
    [finding] = lint_sql(sql, "007_x.sql")
    assert finding.rule == "DM005" and "at run time" in finding.message


def test_auto_concurrently_does_not_excuse_a_blocking_build_inside_a_block() -> None:
    inside = "DO $$ BEGIN CREATE INDEX IF NOT EXISTS i ON users (email); END $$;"
    outside = "CREATE INDEX IF NOT EXISTS i ON users (email);"
    settings = ApplySettings(lint_policy="strict", auto_concurrently=True)
    assert lint_gate(list(load_mapping({"001_plain.sql": outside})), settings) == []
    with pytest.raises(LintRefusedError, match="DM201"):
        lint_gate(list(load_mapping({"001_block.sql": inside})), settings)
