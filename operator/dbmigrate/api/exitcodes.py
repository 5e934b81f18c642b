"""The exit codes of every ``dbmigrate`` command, with their meaning: defined here and nowhere else.

The operator's Jobs depend on them (a podFailurePolicy fails the Job at once on 1 and 2 and lets
it retry 3), so do scripts and init containers. ``dbmigrate --help`` prints ``HELP``.
"""

from __future__ import annotations

import textwrap

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE

MEANINGS: dict[int, str] = {
    EXIT_OK: "success: the step did what was asked, or there was nothing to do",
    EXIT_FAILED: "the step ran and found a failure: drift, lint errors under --lint-policy "
    "strict, a failing statement, an index left invalid, a changed plan hash, a failed check, "
    "a failed migration (wait), a Regressed performance verdict (watch), the operator lost its "
    "leader Lease",
    EXIT_USAGE: "bad input or usage: a missing or unparsable database URL, bad migration file "
    "names, duplicate versions, SQL that does not parse, an unknown option value",
    EXIT_UNAVAILABLE: "unavailable, may heal: cannot connect, the migration lock is held by "
    "another run, a lock or statement timeout after the retries, the step's pod was stopped "
    "(rerun later; a rerun resumes)",
    EXIT_BROKEN_PIPE: "the reader of the output went away (as for a process killed by SIGPIPE)",
}


def help_text() -> str:
    """The exit codes as the epilog of ``--help``."""
    lines = ["exit codes:"]
    for code, meaning in MEANINGS.items():
        wrapped = textwrap.wrap(meaning, width=88)
        lines.append(f"  {code:<4} {wrapped[0]}")
        lines += [f"       {more}" for more in wrapped[1:]]
    return "\n".join(lines)
