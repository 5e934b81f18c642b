"""The plugin's talk with the person at the terminal: questions, and screens that follow a run.

A question reads one line from stdin (a terminal, or a pipe in a script); end of input is a no.
``--yes`` answers yes to a question, never to a confirmation that must be typed. A watched
screen is redrawn in place on a terminal, and printed again only when it changed elsewhere (a
CI log, a pipe), so ``-w`` reads well in both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from dbmigrate.api.exitcodes import EXIT_USAGE
from dbmigrate.kubectl.client import PluginError

CLEAR = "\x1b[H\x1b[2J"


def ask(question: str, assume_yes: bool) -> bool:
    """A yes/no question; ``assume_yes`` (--yes) answers yes without asking."""
    if assume_yes:
        return True
    sys.stdout.write(f"{question} [y/N]: ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stdout.write("\n")
    return answer.strip().lower() in ("y", "yes")


def ask_typed(prompt: str, expected: str) -> bool:
    """A confirmation the person must type (the migration's name); True when it matches."""
    sys.stdout.write(f"{prompt}: ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stdout.write("\n")
    return answer.strip() == expected


def watch(
    draw: Callable[[], tuple[list[str], bool]],
    *,
    interval: float,
    timeout: float | None,
) -> bool:
    """Draw the screen every ``interval`` seconds until ``draw`` says it is done (True), or
    ``timeout`` seconds passed (False). ``draw`` returns (lines, done)."""
    if interval <= 0:
        raise PluginError("--interval must be more than 0 seconds", EXIT_USAGE)
    tty = sys.stdout.isatty()
    deadline = None if timeout is None else time.monotonic() + timeout
    last: list[str] | None = None
    while True:
        lines, done = draw()
        if lines != last:
            if tty:
                sys.stdout.write(CLEAR)
            elif last is not None:
                sys.stdout.write("\n")
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            last = lines
        if done:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(interval)
