"""How much slower is `dbmigrate apply` than `psql -f` on the worked example (001-005)?

Each round applies 001-005 to a fresh, empty database: with psql -f of the five files (one
process); with psql -f of the same files plus the least SQL the engine's records need, without and
with the checks around CONCURRENTLY builds (lower bounds for any engine that keeps those records,
see ``bench.bookkeeping_floor``); with the engine in-process (apply_migrations, lint off and
strict); and with the `dbmigrate apply` command (a new Python process).
Prints a Markdown table of the medians.

    python3 -m bench.engine_overhead [ROUNDS]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.bookkeeping_floor import floor_script
from bench.common import MIGRATIONS, database, median, psql, server
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.settings import ApplySettings, LintPolicy
from dbmigrate.engine.sources import load_directory


def _timed(admin_url: str, name: str, action: Callable[[str], None]) -> float:
    with database(admin_url, name) as url:
        started = time.perf_counter()
        action(url)
        return time.perf_counter() - started


def _engine(policy: LintPolicy) -> Callable[[str], None]:
    def run(url: str) -> None:
        result = apply_migrations(
            url, load_directory(MIGRATIONS), ApplySettings(lint_policy=policy)
        )
        assert result.status == "succeeded", result.error

    return run


def _cli(url: str) -> None:
    argv = [sys.executable, "-m", "dbmigrate.cli.main", "apply", "--migrations", str(MIGRATIONS)]
    subprocess.run([*argv, "--database-url", url], check=True, capture_output=True)


def main(rounds: int) -> None:
    files = sorted(MIGRATIONS.glob("*.sql"))
    folder = Path(tempfile.mkdtemp(prefix="dbmigrate-floor-"))
    history_only, floor = folder / "history.sql", folder / "floor.sql"
    history_only.write_text(floor_script(load_directory(MIGRATIONS), index_checks=False))
    floor.write_text(floor_script(load_directory(MIGRATIONS)))
    ways: dict[str, Callable[[str], None]] = {
        "psql -f 001..005": lambda url: psql(url, *files),
        "psql -f 001..005 + history rows": lambda url: psql(url, history_only),
        "psql -f 001..005 + history rows + index checks": lambda url: psql(url, floor),
        "engine, lint off": _engine("off"),
        "engine, lint strict": _engine("strict"),
        "dbmigrate apply (new process)": _cli,
    }
    timings: dict[str, list[float]] = {way: [] for way in ways}
    with server() as admin_url:
        for i in range(rounds):
            for n, (way, action) in enumerate(ways.items()):
                timings[way].append(_timed(admin_url, f"bench_overhead_{i}_{n}", action))
    base = median(timings["psql -f 001..005"])
    print(f"| way | median of {rounds} (ms) | vs psql -f |")
    print("|---|---:|---:|")
    for way, values in timings.items():
        print(f"| {way} | {median(values) * 1000:.1f} | {median(values) / base:.2f}x |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
