"""The grammar of a maintenance window's cron schedule, as the API server checks it.

The operator reads a schedule with croniter; the CRD cannot run croniter, so this module spells
what croniter accepts as one RE2 pattern per field (the ranges of minute 0-59, hour 0-23,
day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT, with ``*``, ``a-b``, steps
``/n`` and lists ``a,b``; ``?``, ``L`` and ``nW`` in day-of-month and ``d#n`` in day-of-week). The
spec turns them into CEL rules (``schedule_rules``), so ``kubectl apply`` refuses an hour 25 with
a message naming the field; the same patterns work in Python's ``re`` (``field_problem``), and
the unit tests hold them against croniter. What the patterns cannot see (a day that never comes,
such as 31 February) is still caught when the window is evaluated.
"""

from __future__ import annotations

import re

FIELD_COUNT = 5
# any 5 whitespace-separated fields of cron characters: the shape, checked first
SHAPE = "^[0-9A-Za-z*/,?#-]+( +[0-9A-Za-z*/,?#-]+){4}$"
_ANY = "[^ ]+"
_STEP = "(/[1-9][0-9]{0,2})?"


def _names(*names: str) -> str:
    return "|".join(names)


def _field(value: str, extra: str = "") -> str:
    """One field: items ``*``, ``v``, ``v-v``, each with an optional step, joined by commas."""
    ranged = f"({value})(-({value}))?"
    item = f"([*]{_STEP}|{ranged}{_STEP}{extra})"
    return f"{item}(,{item})*"


MONTHS = _names("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = _names("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name as written in messages, allowed values as said to a person, RE2 pattern of the field)
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("minute", "0-59", _field("[0-5]?[0-9]")),
    ("hour", "0-23", _field("[01]?[0-9]|2[0-3]")),
    (
        "day-of-month",
        "1-31, L, nW or ?",
        f"([?]|L|(0?[1-9]|[12][0-9]|3[01])W|{_field('0?[1-9]|[12][0-9]|3[01]')})",
    ),
    ("month", "1-12 or JAN-DEC", _field(f"0?[1-9]|1[0-2]|{MONTHS}")),
    (
        "day-of-week",
        "0-7 (0 and 7 are Sunday) or SUN-SAT, d#n, or ?",
        f"([?]|({DAYS}|[0-7])#[1-5]|{_field(f'[0-7]|{DAYS}')})",
    ),
)


def field_pattern(position: int) -> str:
    """The whole-schedule pattern that checks field ``position`` (0-based) and only its shape
    for the others (case-insensitive, for the month and day names)."""
    parts = [_ANY] * FIELD_COUNT
    parts[position] = f"({FIELDS[position][2]})"
    return "(?i)^" + " +".join(parts) + "$"


def field_message(position: int) -> str:
    """What the API server says when field ``position`` is out of range."""
    name, allowed, _ = FIELDS[position]
    return (
        f"schedule: the {name} field (field {position + 1} of 'minute hour day-of-month month "
        f"day-of-week') must be {allowed}, as a value, a range a-b, a step */n or a list a,b"
    )


def schedule_rules(field: str = "schedule") -> list[dict[str, str]]:
    """The CEL rules of a schedule in ``self.<field>``: its shape, then each field's range (a
    field's rule holds vacuously when the shape is wrong, so one mistake gives one message)."""
    value = f"self.{field}"
    rules = [
        {
            "rule": f"{value}.matches('{SHAPE}')",
            "message": "schedule must be a 5-field cron expression such as '0 2 * * 6' "
            "(minute hour day-of-month month day-of-week; macros like @daily are not "
            "supported)",
        }
    ]
    for position in range(FIELD_COUNT):
        checked = f"{value}.matches('{field_pattern(position)}')"
        rules.append(
            {
                "rule": f"!{value}.matches('{SHAPE}') || {checked}",
                "message": field_message(position),
            }
        )
    return rules


def field_problem(schedule: str) -> str | None:
    """The message the API server gives for ``schedule``, or None when it admits it."""
    if not re.match(SHAPE, schedule):
        return "schedule must be a 5-field cron expression"
    for position in range(FIELD_COUNT):
        if not re.match(field_pattern(position), schedule):
            return field_message(position)
    return None
