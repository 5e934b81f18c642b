"""A migration file as the linter sees it: statements, comments and positions.

pglast (libpg_query) parses the text; pglast already turns the parser's UTF-8 byte offsets
(``location``, ``stmt_location``, the error cursor) into indexes of characters in the Python
string, so a finding's column counts characters, not bytes. ``stmt_location`` may point at the
whitespace or comments before a statement (it does in older parser versions), so the start of a
statement is taken from the scanner: its first token that is not a comment.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError, scan

COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})


class SqlSyntaxError(Exception):
    """The file cannot be parsed; ``index`` is the character where the parser gave up."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


@dataclass(frozen=True)
class Statement:
    """One top-level statement: its parse tree and where its tokens start and end."""

    index: int
    node: ast.Node
    start: int
    end: int


@dataclass(frozen=True)
class Comment:
    """A ``--`` or ``/* */`` comment and where it starts."""

    start: int
    text: str


class SourceMap:
    """Turns a character index into a 1-based (line, column) pair."""

    def __init__(self, text: str) -> None:
        self._length = len(text)
        self._line_starts = [0]
        self._line_starts.extend(i + 1 for i, char in enumerate(text) if char == "\n")

    def position(self, index: int) -> tuple[int, int]:
        """The line and column of the character at ``index`` (clamped to the text)."""
        index = max(0, min(index, self._length))
        line = bisect.bisect_right(self._line_starts, index) - 1
        return line + 1, index - self._line_starts[line] + 1


@dataclass(frozen=True)
class ParsedFile:
    """The statements and comments of one file, in order."""

    text: str
    statements: list[Statement]
    comments: list[Comment]
    source_map: SourceMap


def _check_text(text: str) -> None:
    """Refuse what the parser cannot take: text that is not valid UTF-8, or NUL characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SqlSyntaxError("the file is not valid UTF-8 text", exc.start) from exc
    nul = text.find("\x00")
    if nul >= 0:
        raise SqlSyntaxError("NUL character in the file (PostgreSQL does not accept it)", nul)


def _parse(text: str) -> tuple[ast.RawStmt, ...]:
    try:
        return tuple(parse_sql(text))
    except ParseError as exc:
        message = str(exc.args[0]) if exc.args else "syntax error"
        index = exc.args[1] if len(exc.args) > 1 and exc.args[1] is not None else len(text)
        raise SqlSyntaxError(message, int(index)) from exc


def parse_file(text: str, tree: Sequence[ast.RawStmt] | None = None) -> ParsedFile:
    """Parse a file into statements with exact spans; raises ``SqlSyntaxError``. ``tree`` is the
    text's parse tree when the caller has it already (the apply parses each file once)."""
    _check_text(text)
    raw_statements = _parse(text) if tree is None else tuple(tree)
    try:
        tokens = scan(text)
    except ParseError as exc:  # the parser accepted the text, so this is not expected
        raise SqlSyntaxError(f"scanner error: {exc.args[0] if exc.args else exc}", 0) from exc
    comments = [
        Comment(t.start, text[t.start : t.end + 1]) for t in tokens if t.name in COMMENT_TOKENS
    ]
    code = [t for t in tokens if t.name not in COMMENT_TOKENS]
    starts = [t.start for t in code]
    statements = []
    for number, raw in enumerate(raw_statements):
        location = raw.stmt_location or 0
        limit = location + raw.stmt_len if raw.stmt_len else len(text)
        first = bisect.bisect_left(starts, location)
        last = bisect.bisect_left(starts, limit) - 1
        start = code[first].start if first < len(code) else location
        end = code[last].end + 1 if 0 <= last < len(code) and last >= first else limit
        if raw.stmt is not None:
            statements.append(Statement(number, raw.stmt, start, end))
    return ParsedFile(text, statements, comments, SourceMap(text))
