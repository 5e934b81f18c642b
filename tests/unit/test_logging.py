"""Logs never carry a password, and every record about a resource names it (text and JSON)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dbmigrate import logging_setup
from dbmigrate.logging_setup import (
    MASK,
    RedactionFilter,
    configure_logging,
    redact,
    register_env_secrets,
)

SECRET = "Tr0ub4dor&3-horse"


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    objects = logging.getLogger("kopf.objects")
    filters = objects.filters[:]
    literals = set(logging_setup._literals)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    objects.filters[:] = filters
    logging_setup._literals.clear()
    logging_setup._literals.update(literals)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:pw1234@db:5432/shop", f"postgresql://app:{MASK}@db:5432/shop"),
        ("postgres://u:p%40ss@h/d?sslmode=require", f"postgres://u:{MASK}@h/d?sslmode=require"),
        ("host=db password=hunter22 user=app", f"host=db password={MASK} user=app"),
        ("password='two words' dbname=x", f"password='{MASK}' dbname=x"),
        ("PGPASSWORD=abc123 psql", f"PGPASSWORD={MASK} psql"),
        ('{"password": "s3cret", "user": "app"}', f'{{"password": "{MASK}", "user": "app"}}'),
        (
            "postgresql://h/d?user=a&password=zz9&x=1",
            f"postgresql://h/d?user=a&password={MASK}&x=1",
        ),
    ],
)
def test_redact_removes_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app@db:5432/shop",  # no password: nothing to hide
        "https://example.com:8443/path",  # host:port is not user:password
        "passwordKey: password",  # a Secret key name is not a password
        "lint passed: true",
    ],
)
def test_redact_keeps_harmless_text(text: str) -> None:
    assert redact(text) == text


def test_env_secrets_are_masked_anywhere() -> None:
    register_env_secrets(
        {"PGPASSWORD": SECRET, "DATABASE_URL": "postgresql://app:UrlPass99@db/shop"}
    )
    assert redact(f"auth failed for {SECRET}!") == f"auth failed for {MASK}!"
    assert redact("echo UrlPass99") == f"echo {MASK}"


def test_json_lines_name_the_resource_and_hide_the_password() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    log = logging.getLogger("dbmigrate.test")
    log.info("connecting to %s", f"postgresql://app:{SECRET}@db/shop", extra={"resource": "ns/m1"})
    try:
        raise ConnectionError(f"password={SECRET} refused")
    except ConnectionError:
        log.exception("plan failed", extra={"resource": "ns/m1", "step": "plan"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert SECRET not in stream.getvalue()
    assert [entry["resource"] for entry in lines] == ["ns/m1", "ns/m1"]
    assert lines[0]["message"] == f"connecting to postgresql://app:{MASK}@db/shop"
    assert lines[1]["level"] == "ERROR" and lines[1]["step"] == "plan"
    assert "ConnectionError" in lines[1]["exception"]


def test_kopf_object_records_carry_the_object_and_are_redacted_before_events() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    objects = logging.getLogger("kopf.objects")
    posted: list[str] = []

    class EventPoster(logging.Handler):  # stands in for Kopf's handler posting Events
        def emit(self, record: logging.LogRecord) -> None:
            posted.append(record.getMessage())

    poster = EventPoster()
    objects.addHandler(poster)
    try:
        ref = {"name": "m2", "namespace": "team-a", "kind": "DatabaseMigration"}
        objects.warning("dsn %s", f"postgres://u:{SECRET}@h/d", extra={"k8s_ref": ref})
    finally:
        objects.removeHandler(poster)
    assert posted == [f"dsn postgres://u:{MASK}@h/d"]
    assert f"team-a/m2: dsn postgres://u:{MASK}@h/d" in stream.getvalue()
    assert SECRET not in stream.getvalue()


def test_configure_twice_keeps_one_handler() -> None:
    configure_logging("text", stream=io.StringIO())
    configure_logging("json", stream=io.StringIO())
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    filters = [f for f in logging.getLogger("kopf.objects").filters]
    assert sum(isinstance(h.formatter, logging_setup.JsonFormatter) for h in ours) == 1
    assert not any(isinstance(h.formatter, logging_setup.TextFormatter) for h in ours)
    assert sum(isinstance(f, RedactionFilter) for f in filters) == 1


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        configure_logging("yaml")
