"""The options of ``dbmigrate plan | apply | status | history``, declared in one table.

Durations are written like the DatabaseMigration spec writes them (``500ms``, ``5s``, ``2m``) or
as a plain number of milliseconds; ``0`` turns a timeout off.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from dbmigrate.api.durations import InvalidDuration, parse_duration
from dbmigrate.api.exitcodes import help_text

EXIT_CODES = help_text()


def duration_ms(text: str) -> int:
    """``5s``, ``500ms``, ``2m`` or a plain number of milliseconds."""
    if text.strip().isdigit():
        return int(text)
    try:
        return round(parse_duration(text, allow_zero=True).total_seconds() * 1000)
    except InvalidDuration as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


APPLY_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--lock-timeout",), {"type": duration_ms, "default": 5000, "metavar": "D",
        "help": "lock_timeout of every statement, e.g. 5s (default 5s)"}),
    (("--concurrent-lock-timeout",), {"type": duration_ms, "default": None, "metavar": "D",
        "help": "lock_timeout of CONCURRENTLY and other autocommit statements, whose waits "
        "block no reads or writes (default: --lock-timeout)"}),
    (("--statement-timeout",), {"type": duration_ms, "default": 0, "metavar": "D",
        "help": "statement_timeout of every statement; 0 = none (default)"}),
    (("--lock-retries", "--max-retries"), {"dest": "lock_retries", "type": int, "default": 3,
        "metavar": "N", "help": "retries after a lock timeout or deadlock (default 3)"}),
    (("--retry-backoff",), {"type": duration_ms, "default": 2000, "metavar": "D",
        "help": "first wait between retries, doubling each time (default 2s)"}),
    (("--lock-wait",), {"type": duration_ms, "default": 60000, "metavar": "D",
        "help": "how long to wait for another run's migration lock (default 60s)"}),
    (("--auto-concurrently",), {"action": argparse.BooleanOptionalAction, "default": False,
        "help": "rewrite CREATE INDEX on existing tables to CREATE INDEX CONCURRENTLY "
        "(default off)"}),
    (("--lint-policy",), {"choices": ("strict", "warn", "off"), "default": "strict",
        "help": "strict: lint errors refuse the run before anything runs; warn: print them; "
        "off: skip the linter"}),
    (("--plan-hash",), {"metavar": "HASH",
        "help": "refuse to apply unless the plan has this hash (the approved plan)"}),
    (("--run-id",), {"help": "id recorded as applied_by (default: generated)"}),
)  # fmt: skip


def add_common(
    parser: argparse.ArgumentParser, migrations: str | None, outputs: tuple[str, ...] = ()
) -> None:
    """--database-url, --output (text, json and ``outputs``) and (required, optional or absent)
    --migrations."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL URL (default: env DATABASE_URL); the password is never printed",
    )
    if migrations is not None:
        parser.add_argument(
            "--migrations",
            metavar="DIR",
            required=migrations == "required",
            help="folder of NNN_name.sql files",
        )
    parser.add_argument("--output", choices=("text", "json", *outputs), default="text")


def add_plan_report_options(parser: argparse.ArgumentParser) -> None:
    """What ``plan --output markdown`` adds to the plan: the lint report and the preflight."""
    parser.add_argument(
        "--lint-policy",
        choices=("strict", "warn", "off"),
        default="strict",
        help="markdown: lint the pending files under this policy (default strict)",
    )
    parser.add_argument(
        "--auto-concurrently",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="markdown: lint as an apply with --auto-concurrently will run (plain CREATE INDEX "
        "is rewritten, so its finding is moot)",
    )
    parser.add_argument(
        "--preflight",
        action="store_true",
        help="markdown: also run the read-only preflight checks (sizes, index build estimates, "
        "privileges, long transactions)",
    )


def add_target(parser: argparse.ArgumentParser) -> None:
    """--target VERSION (alias --target-version, as the operator's Jobs pass it)."""
    parser.add_argument(
        "--target",
        "--target-version",
        dest="target",
        type=int,
        metavar="VERSION",
        help="apply up to and including this version (default: the newest)",
    )


def add_apply_options(parser: argparse.ArgumentParser) -> None:
    """Timeouts, retries, lock wait, CONCURRENTLY rewrite, lint policy, plan hash, run id."""
    for flags, options in APPLY_OPTIONS:
        parser.add_argument(*flags, **options)
