"""No input makes lint_sql raise: random text and mutated corpus SQL (hypothesis).

Beyond "no exception", the linter must not fall back to its internal-error finding (DM009), and
every finding must point inside the text it was given.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast.parser import scan

from dbmigrate.engine.lint import lint_sql

CORPUS = Path(__file__).parent / "lint_corpus"
FILES = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.sql"))]
TOKENS = [[text[t.start : t.end + 1] for t in scan(text)] for text in FILES]
ALL_TOKENS = sorted({token for tokens in TOKENS for token in tokens})
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
ANY_CHARACTER = st.characters(codec=None, categories=None) | SURROGATES
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_sane(sql: str) -> None:
    findings = lint_sql(sql, "fuzz.sql")
    lines = sql.split("\n")
    for finding in findings:
        assert finding.rule != "DM009", finding.message
        assert 1 <= finding.line <= len(lines), finding
        assert 1 <= finding.column <= len(lines[finding.line - 1]) + 1, finding


@st.composite
def mutated_sql(draw: st.DrawFn) -> str:
    """A corpus file as tokens, with tokens deleted, duplicated, swapped or replaced."""
    tokens = list(draw(st.sampled_from(TOKENS)))
    for _ in range(draw(st.integers(1, 6))):
        if not tokens:
            break
        at = draw(st.integers(0, len(tokens) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "swap", "unicode", "keyword"]))
        if action == "delete":
            del tokens[at]
        elif action == "duplicate":
            tokens.insert(at, tokens[at])
        elif action == "swap":
            other = draw(st.integers(0, len(tokens) - 1))
            tokens[at], tokens[other] = tokens[other], tokens[at]
        elif action == "unicode":
            tokens.insert(at, draw(st.text(ANY_CHARACTER, min_size=1, max_size=4)))
        else:
            tokens.insert(at, draw(st.sampled_from(ALL_TOKENS)))
    separator = draw(st.sampled_from([" ", "\n", "\t", " /* c */ ", "\n-- x\n"]))
    return separator.join(tokens)


@SETTINGS
@given(st.text(ANY_CHARACTER, max_size=300))
def test_random_text_never_raises(sql: str) -> None:
    assert_sane(sql)


@SETTINGS
@given(mutated_sql())
def test_mutated_corpus_never_raises(sql: str) -> None:
    assert_sane(sql)


@SETTINGS
@given(st.sampled_from(FILES), st.data())
def test_truncated_corpus_never_raises(text: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(text)))
    assert_sane(text[:cut])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6000), st.sampled_from(["lower(", "ARRAY[", "NOT ", "("]))
def test_deeply_nested_expressions_never_raise(depth: int, opener: str) -> None:
    closer = {"lower(": ")", "ARRAY[": "]", "(": ")"}.get(opener, "")
    predicate = opener * depth + "a > now()" + closer * depth
    assert_sane(f"CREATE INDEX i ON t (a) WHERE {predicate};")
