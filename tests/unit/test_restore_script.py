"""A restore by pg_restore 17+ into an older server: its script, filtered, run by psql (stand-ins
for the two programs here; tests/db/test_restore_fidelity.py restores for real)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from dbmigrate.engine.undo import pgtools, restore

PREAMBLE = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n"
    b"SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET transaction_timeout = 0;\n"
    b"SET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\n"
    b"BEGIN;\n"
)
BODY = (
    b"CREATE TABLE public.notes (body text);\n"
    b"COPY public.notes (body) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n"
    b"COMMIT;\n"
)


def _tool(major: int) -> pgtools.Tool:
    return pgtools.Tool(f"/pg{major}/bin/pg_restore", major, 0, "")


@pytest.mark.parametrize(
    ("tool_major", "server_major", "fails"),
    [(17, 16, True), (18, 13, True), (17, 17, False), (18, 17, False), (16, 13, False)],
)
def test_which_pg_restore_fails_on_which_server(
    tool_major: int, server_major: int, fails: bool
) -> None:
    assert pgtools.restore_sets_unknown_setting(_tool(tool_major), server_major) is fails


def test_only_the_preambles_setting_is_left_out() -> None:
    out = io.BytesIO()
    left_out = restore.copy_script(io.BytesIO(PREAMBLE + BODY), out)
    assert left_out == 1
    expected = PREAMBLE.replace(b"SET transaction_timeout = 0;\n", b"") + BODY
    assert out.getvalue() == expected  # the same line as table data stays


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_script_reaches_psql_filtered(tmp_path: Path) -> None:
    script, received = tmp_path / "script.sql", tmp_path / "received.sql"
    script.write_bytes(PREAMBLE + BODY)
    writer = _py(f"import sys; sys.stdout.buffer.write(open({str(script)!r}, 'rb').read())")
    runner = _py(f"import sys; open({str(received)!r}, 'wb').write(sys.stdin.buffer.read())")
    assert restore.run_script_restore(writer, runner, {}, lambda: "meanwhile") == "meanwhile"
    assert received.read_bytes() == PREAMBLE.replace(b"SET transaction_timeout = 0;\n", b"") + BODY


def test_a_failing_psql_is_reported_with_its_error(tmp_path: Path) -> None:
    big = tmp_path / "big.sql"
    big.write_bytes(PREAMBLE + BODY * 20_000)  # more than a pipe holds: psql stops reading
    writer = _py(f"import sys; sys.stdout.buffer.write(open({str(big)!r}, 'rb').read())")
    runner = _py(
        "import sys; sys.stdin.buffer.read(10); print('ERROR: boom', file=sys.stderr); sys.exit(3)"
    )
    with pytest.raises(pgtools.ToolFailed, match=r"psql .* failed: ERROR: boom"):
        restore.run_script_restore(writer, runner, {}, pgtools.nothing)


def test_a_failing_pg_restore_is_reported_with_its_error() -> None:
    writer = _py(
        "import sys; sys.stdout.write('BEGIN;\\nCREATE TABLE t (x int);\\n'); sys.stdout.flush();"
        " print('pg_restore: error: could not read from input file', file=sys.stderr); sys.exit(1)"
    )
    runner = _py("import sys; sys.stdin.buffer.read()")
    with pytest.raises(pgtools.ToolFailed, match=r"pg_restore failed: .*could not read"):
        restore.run_script_restore(writer, runner, {}, pgtools.nothing)


def test_a_missing_program_is_reported() -> None:
    with pytest.raises(pgtools.ToolNotFound, match="cannot run /nonexistent/psql"):
        restore.run_script_restore(["true"], ["/nonexistent/psql"], {}, pgtools.nothing)
