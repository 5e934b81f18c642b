"""Go-like durations (``500ms``, ``5s``, ``2m``, ``1h30m``, ``1.5h``), parsed in one place.

The spec writes every time span this way (lock and statement timeouts, the retry backoff, the
maintenance window's length), and the CRD's CEL rules accept the same grammar. The operator
(window gate) and the step commands (timeouts handed to PostgreSQL) both parse with this module,
so a value the API server admitted always means the same thing everywhere.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$")


class InvalidDuration(ValueError):
    """A duration string that does not follow the 500ms / 5s / 2m / 1h30m grammar."""


def parse_duration(text: str, *, allow_zero: bool = False) -> timedelta:
    """Parse ``text`` such as ``1h30m`` into a timedelta; raises InvalidDuration if malformed.

    Units are ms, s, m (minutes) and h; parts add up (``1h30m``) and may be decimal (``1.5h``).
    Zero is refused unless ``allow_zero``: a zero timeout or window is almost always a mistake.
    """
    value = text.strip()
    if not _WHOLE.match(value):
        raise InvalidDuration(
            f"invalid duration {text!r}: use a number with a unit (ms, s, m, h), "
            "such as 500ms, 5s, 2m or 1h30m"
        )
    seconds = sum(float(number) * UNIT_SECONDS[unit] for number, unit in _PART.findall(value))
    if seconds == 0 and not allow_zero:
        raise InvalidDuration(f"invalid duration {text!r}: it must be longer than zero")
    return timedelta(seconds=seconds)


def duration_seconds(text: str) -> float:
    """The duration in seconds, such as 90.0 for ``1m30s``."""
    return parse_duration(text).total_seconds()


def duration_milliseconds(text: str) -> int:
    """The duration in whole milliseconds, as PostgreSQL's lock_timeout takes it (rounded up)."""
    micros = parse_duration(text) // timedelta(microseconds=1)
    return -(-micros // 1000)


def format_duration(span: timedelta) -> str:
    """A short human form of ``span`` in the same grammar, such as ``1h30m`` or ``500ms``."""
    millis = round(span.total_seconds() * 1000)
    if millis < 0:
        raise InvalidDuration(f"cannot format a negative duration ({span})")
    if millis == 0:
        return "0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")]
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount)
