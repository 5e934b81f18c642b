"""Findings point at the right line and column: comments, multi-byte UTF-8, parse errors."""

from __future__ import annotations

from dbmigrate.engine.lint import lint_sql
from dbmigrate.engine.lint.source import SourceMap, parse_file


def only(sql: str, rule: str) -> tuple[int, int]:
    (finding,) = [f for f in lint_sql(sql, "t.sql") if f.rule == rule]
    return finding.line, finding.column


def test_source_map_counts_lines_and_characters() -> None:
    source = SourceMap("ab\nçé\n\nx")
    assert source.position(0) == (1, 1)
    assert source.position(3) == (2, 1)
    assert source.position(4) == (2, 2)
    assert source.position(6) == (3, 1)
    assert source.position(7) == (4, 1)
    assert source.position(99) == (4, 2)


def test_statement_start_skips_comments_before_it() -> None:
    sql = "SELECT 1;\n-- a comment\n/* another\n   one */\n  TRUNCATE page_views;\n"
    assert only(sql, "DM104") == (5, 3)


def test_first_statement_after_leading_comments() -> None:
    sql = "-- header\n\n   DROP TABLE IF EXISTS t;"
    assert only(sql, "DM101") == (3, 4)


def test_multibyte_characters_before_a_finding_count_once() -> None:
    sql = '/* café ☕ 日本 */ DROP TABLE IF EXISTS "ñandú";'
    assert only(sql, "DM101") == (1, sql.index("DROP") + 1)
    node_sql = (
        "SELECT 'ééé';\nALTER TABLE users ADD COLUMN IF NOT EXISTS k float8 DEFAULT random();"
    )
    line, column = only(node_sql, "DM205")
    assert line == 2
    assert column == node_sql.split("\n")[1].index("random") + 1


def test_multibyte_characters_on_earlier_lines() -> None:
    sql = "-- 日本語のコメント 🎉\nSELECT '🎉🎉';\nDELETE FROM t;"
    assert only(sql, "DM105") == (3, 1)


def test_parse_error_is_a_finding_with_position() -> None:
    sql = "SELECT 1;\nSELECT 'é' FRO x;"
    (finding,) = lint_sql(sql, "bad.sql")
    assert finding.rule == "DM001" and finding.severity == "error"
    assert (finding.line, finding.column) == (2, sql.split("\n")[1].index("x") + 1)
    assert 'syntax error at or near "x"' in finding.message


def test_parse_error_at_end_of_input() -> None:
    sql = "CREATE TABLE t (\n  id bigint"
    (finding,) = lint_sql(sql, "bad.sql")
    assert finding.rule == "DM001"
    assert finding.line == 2


def test_unterminated_string_is_a_finding() -> None:
    (finding,) = lint_sql("SELECT 1;\nSELECT 'oops;", "bad.sql")
    assert (finding.rule, finding.line, finding.column) == ("DM001", 2, 8)


def test_text_that_is_not_utf8_is_a_finding() -> None:
    sql = "SELECT 1;\nSELECT '\udcff';"
    (finding,) = lint_sql(sql, "bad.sql")
    assert (finding.rule, finding.line, finding.column) == ("DM001", 2, 9)
    assert "UTF-8" in finding.message


def test_nul_character_is_a_finding() -> None:
    (finding,) = lint_sql("SELECT 1;\x00", "bad.sql")
    assert (finding.rule, finding.column) == ("DM001", 10)


def test_empty_and_comment_only_files_have_no_findings() -> None:
    assert lint_sql("", "e.sql") == []
    assert lint_sql("-- nothing\n/* here */\n", "e.sql") == []


def test_statement_spans_cover_their_tokens() -> None:
    sql = "SELECT 1; -- trailing\nCREATE TABLE IF NOT EXISTS t (a int);\n\nDROP TABLE t"
    parsed = parse_file(sql)
    spans = [sql[s.start : s.end] for s in parsed.statements]
    assert spans == ["SELECT 1", "CREATE TABLE IF NOT EXISTS t (a int)", "DROP TABLE t"]
