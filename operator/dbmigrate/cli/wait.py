"""``dbmigrate wait``: hold an application's pod in its init container until its schema is there.

Two sources of truth. By default the database's history table (``engine/after/readiness.py``): every
version up to ``--version N``, or every version of the ``--migrations`` folder mounted into the
pod, applied and not rolled back. With ``--resource NS/NAME`` the DatabaseMigration's status
(``controller/resource_wait.py``), for pods that cannot reach the history.

It prints what it waits for, then a line whenever the state changes, and checks again with a
backoff that doubles from ``--interval`` up to ``--max-interval``. Exit codes: 0 ready; 1 a
failure a person must look at (a needed version failed or was rolled back, the resource is
Failed, RolledBack or Stalled); 2 bad input; 3 the ``--timeout`` passed while the migration was
still under way or the database or API server could not be reached (may heal: the kubelet runs
the init container again).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from dbmigrate.engine.after.readiness import Verdict
from dbmigrate.runner.options import duration_ms

CONNECT_TIMEOUT_SECONDS = 10  # a host that drops packets must not hold one check for minutes


class WaitUsageError(ValueError):
    """The command line does not say what to wait for."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dbmigrate wait``."""
    parser = subparsers.add_parser(
        "wait",
        help="wait until the schema an application needs is applied (an init container)",
        description="Wait until the database's history has every version up to --version N (or "
        "every version of --migrations DIR) applied and not rolled back; or, with --resource, "
        "until the DatabaseMigration is Ready. Exit 0: ready; 1: a needed version failed or was "
        "rolled back, or the resource is Failed/RolledBack/Stalled; 2: bad usage; 3: timed out "
        "while the migration was under way or the database/API server was unreachable.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL URL (default: env DATABASE_URL, else libpq's PG* variables); the "
        "password is never printed",
    )
    parser.add_argument("--version", dest="version", type=int, metavar="N", help="wait for 1..N")
    parser.add_argument(
        "--migrations",
        metavar="DIR",
        help="wait for every version of this folder (up to --version)",
    )
    parser.add_argument(
        "--resource",
        metavar="NAMESPACE/NAME",
        help="wait for this DatabaseMigration to be Ready instead of reading the database",
    )
    parser.add_argument("--kubeconfig", help="with --resource: kubeconfig (default: in-cluster)")
    parser.add_argument(
        "--timeout",
        type=duration_ms,
        default=600_000,
        metavar="D",
        help="give up after this long, exit 3 (default 10m; 0: wait forever)",
    )
    parser.add_argument(
        "--interval", type=duration_ms, default=2000, metavar="D", help="first wait (default 2s)"
    )
    parser.add_argument(
        "--max-interval",
        type=duration_ms,
        default=5_000,
        metavar="D",
        help="longest wait between checks, reached by doubling (default 5s: the application "
        "starts within seconds of its migration; one cheap query per pod each time)",
    )
    parser.set_defaults(func=run_wait)


@dataclass(frozen=True)
class Backoff:
    """How long to wait between checks, and for how long in all (seconds; timeout 0: forever)."""

    timeout: float
    interval: float
    max_interval: float

    def delays(self) -> Callable[[], float]:
        """A function giving the next delay: interval, doubled each time up to max_interval."""
        current = [self.interval]

        def next_delay() -> float:
            delay = current[0]
            current[0] = min(current[0] * 2, self.max_interval)
            return delay

        return next_delay


def wait_for(
    check: Callable[[], Verdict],
    backoff: Backoff,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Verdict, bool]:
    """Check until ready or failed, or the timeout passes: (the last verdict, timed out). Every
    change of the verdict's message is said, with the seconds since the start."""
    start = clock()
    next_delay = backoff.delays()
    last = ""
    while True:
        verdict = check()
        if verdict.message != last:
            say(f"[{clock() - start:6.1f}s] {verdict.state}: {verdict.message}")
            last = verdict.message
        if verdict.state != "waiting":
            return verdict, False
        left = backoff.timeout - (clock() - start) if backoff.timeout else None
        if left is not None and left <= 0:
            return verdict, True
        delay = next_delay()
        sleep(delay if left is None else min(delay, left))


def _database_check(args: argparse.Namespace) -> tuple[str, Callable[[], Verdict]]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from dbmigrate.engine.after.readiness import Wanted, check_database
    from dbmigrate.engine.connect import database_label
    from dbmigrate.engine.sources import load_directory

    if args.migrations:
        wanted = Wanted.from_set(load_directory(args.migrations), args.version)
    elif args.version is not None:
        if args.version < 1:
            raise WaitUsageError("--version wants a version number of 1 or more")
        wanted = Wanted(up_to=args.version)
    else:
        raise WaitUsageError("say what to wait for: --version N, --migrations DIR or --resource")
    url = args.database_url or ""  # empty: libpq reads its PG* variables
    try:
        if "connect_timeout" not in conninfo_to_dict(url):
            url = make_conninfo(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.ProgrammingError:
        raise WaitUsageError(
            "--database-url (or DATABASE_URL) is not a PostgreSQL URL or conninfo string"
        ) from None
    target = database_label(url) if url else "the database of the PG* variables"
    return f"{target}: {wanted.describe()}", lambda: check_database(url, wanted)


def _resource_check(args: argparse.Namespace) -> tuple[str, Callable[[], Verdict]]:
    from kubernetes.config import ConfigException

    from dbmigrate.cli.resource_state import ResourceReader, judge_resource
    from dbmigrate.controller.kube import ApiError

    namespace, _, name = str(args.resource).partition("/")
    if not namespace or not name or "/" in name:
        raise WaitUsageError(f"--resource wants NAMESPACE/NAME, got {args.resource!r}")
    if args.migrations:
        raise WaitUsageError("--resource reads the resource's status; drop --migrations")
    try:
        reader = ResourceReader(namespace, name, args.kubeconfig)
    except ConfigException as exc:
        raise WaitUsageError(f"no way to reach the API server: {exc}") from exc
    label = f"databasemigration {namespace}/{name}"

    def check() -> Verdict:
        try:
            obj = reader.read()
        except ApiError as exc:
            if exc.status in (401, 403):
                return Verdict("failed", f"the API server refused to read {label}: {exc}")
            return Verdict("waiting", f"cannot read {label}: {exc}")
        return judge_resource(obj, label, args.version)

    wanted = f" at version {args.version} or above" if args.version is not None else ""
    return f"{label} to be Ready{wanted}", check


def run_wait(args: argparse.Namespace) -> int:
    """Entry point of ``dbmigrate wait``."""
    import psycopg

    from dbmigrate.engine.errors import from_database_error
    from dbmigrate.engine.sources import MigrationSourceError

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        what, check = _resource_check(args) if args.resource else _database_check(args)
    except (WaitUsageError, MigrationSourceError, ValueError) as exc:
        print(f"dbmigrate wait: {exc}", file=sys.stderr)
        return EXIT_USAGE
    backoff = Backoff(args.timeout / 1000, max(args.interval, 1) / 1000, args.max_interval / 1000)
    forever = "no timeout" if not backoff.timeout else f"timeout {backoff.timeout:g}s"
    say(f"dbmigrate wait: waiting for {what} ({forever})")
    try:
        verdict, timed_out = wait_for(check, backoff, say)
    except psycopg.Error as exc:
        error = from_database_error(exc, "reading the history table")
        print(f"dbmigrate wait: {error}", file=sys.stderr)
        return error.exit_code
    if timed_out:
        say(f"dbmigrate wait: gave up after {backoff.timeout:g}s, still waiting: {verdict.message}")
        return EXIT_UNAVAILABLE
    if verdict.state == "failed":
        say(f"dbmigrate wait: FAILED: {verdict.message}")
        return EXIT_FAILED
    say("dbmigrate wait: ready")
    return EXIT_OK
