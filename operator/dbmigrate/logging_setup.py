"""Logging of the operator and the step commands: text or JSON lines, never a password.

``configure_logging`` installs one stream handler on the root logger. Every record passes a
redaction filter first: passwords inside URIs (``postgresql://user:***@host``), ``password=``
settings of conninfo strings, JSON and env assignments, and the literal values of the
password-bearing environment variables a step Job receives (``PGPASSWORD``, ``DATABASE_URL``).
The same filter sits on Kopf's ``kopf.objects`` logger, whose records Kopf also posts as
Kubernetes Events, so Events are redacted too. Records about a resource carry its name:
Kopf's object loggers attach ``k8s_ref``, and our code may pass ``extra={"resource": "ns/name"}``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import unquote

MASK = "***"
# scheme://user:password@host: keep scheme and user, mask the password.
_URI_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):(?P<pw>[^@/\s]*)@")
# password=..., PGPASSWORD=..., "password": "...", ?password=... (quoted or bare values).
_KEY_VALUE_PASSWORD = re.compile(
    r"(?P<head>(?i:\b(?:pg)?pass(?:word|wd))[\"']?\s*(?:=|:)\s*)"
    r"(?P<pw>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&,;}]+)"
)
SECRET_ENV_VARS = ("PGPASSWORD", "DATABASE_URL")
MIN_LITERAL_LENGTH = 4  # shorter literals would mask ordinary words; the patterns still apply
_literals: set[str] = set()
RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
SKIPPED_EXTRAS = {"k8s_ref", "k8s_skip", "settings", "dbmigrate_prefix"}


def register_secret(value: str | None) -> None:
    """Mask this literal value wherever it appears in a log message from now on."""
    if value and len(value) >= MIN_LITERAL_LENGTH:
        _literals.add(value)


def passwords_in(conninfo: str) -> set[str]:
    """Every value that may be the password of a URL or libpq string, whatever its shape.

    Parsing cannot be trusted here: the strings that most need masking are the malformed ones
    (``postgres:PASSWORD@host``, a port that is not a number, a lost ``//``), which no parser
    reads. So every stretch between a ``:`` and a later ``@`` counts (the userinfo's password in
    any shape, percent-decoded too), and every ``password=`` value."""
    found: set[str] = set()
    for match in _KEY_VALUE_PASSWORD.finditer(conninfo):
        value = match.group("pw")
        found.add(value)
        if value[:1] in ("'", '"'):
            found.add(value[1:-1].replace("\\" + value[0], value[0]))
    colons = [i for i, ch in enumerate(conninfo) if ch == ":"]
    ats = [i for i, ch in enumerate(conninfo) if ch == "@"]
    found.update(conninfo[i + 1 : j] for i in colons for j in ats if j > i + 1)
    found.update({unquote(value) for value in found})
    return {value for value in found if value}


def register_conninfo(conninfo: str | None) -> None:
    """Mask every password candidate of this URL or libpq string from now on."""
    for value in passwords_in(conninfo or ""):
        register_secret(value)


def register_env_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Register the password of PGPASSWORD and of DATABASE_URL (the step Jobs' credentials)."""
    env = os.environ if environ is None else environ
    register_secret(env.get("PGPASSWORD"))
    register_conninfo(env.get("DATABASE_URL"))


def _mask_key_value(match: re.Match[str]) -> str:
    value = match.group("pw")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('head')}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    """``text`` with every password removed (URIs, key=value settings, registered values)."""
    text = _URI_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    text = _KEY_VALUE_PASSWORD.sub(_mask_key_value, text)
    for literal in sorted(_literals, key=len, reverse=True):
        text = text.replace(literal, MASK)
    return text


def redact_tree(value: Any) -> Any:
    """A JSON-shaped value (dicts, lists, strings) with every string redacted; for the status
    patches a step sends, which carry error messages too."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_tree(item) for item in value]
    return value


class RedactingStream:
    """A text stream that redacts every write before passing it on: what a command prints on
    stdout and stderr (results, errors, JSON, progress) goes through ``redact`` like the logs."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` without passwords; returns the length the caller asked to write."""
        self.stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class RedactionFilter(logging.Filter):
    """Rewrites each record's message (and exception text) without passwords; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the raw template instead
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def resource_of(record: logging.LogRecord) -> str | None:
    """``namespace/name`` of the resource the record is about, if any."""
    explicit = getattr(record, "resource", None)
    if isinstance(explicit, str):
        return explicit
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, dict) and ref.get("name"):
        namespace = ref.get("namespace")
        return f"{namespace}/{ref['name']}" if namespace else str(ref["name"])
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, resource, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        resource = resource_of(record)
        if resource:
            entry["resource"] = resource
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            entry["object"] = {k: v for k, v in ref.items() if v is not None}
        for key, value in record.__dict__.items():
            if key not in RESERVED and key not in SKIPPED_EXTRAS and key not in entry:
                entry[key] = value if _is_json(value) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``[time] logger [LEVEL] namespace/name: message``, redacted once more as a whole."""

    def __init__(self) -> None:
        super().__init__(
            "[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(dbmigrate_prefix)s%(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        resource = resource_of(record)
        record.dbmigrate_prefix = f"{resource}: " if resource else ""
        return redact(super().format(record))


def _is_json(value: object) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | list | dict)


class _DbmigrateHandler(logging.StreamHandler[TextIO]):
    """Marks the handler ours, so configuring twice replaces it instead of doubling lines."""


def configure_logging(
    log_format: str = "text", level: str | int = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install the redacting text or JSON handler on the root logger; returns the handler."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {log_format!r}")
    register_env_secrets()
    handler = _DbmigrateHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _DbmigrateHandler)]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    objects = logging.getLogger("kopf.objects")  # Kopf posts these records as Events as well
    if not any(isinstance(f, RedactionFilter) for f in objects.filters):
        objects.addFilter(RedactionFilter())
    return handler
