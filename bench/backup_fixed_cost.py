"""Benchmark: the fixed cost `dbmigrate backup` and `dbmigrate rollback --strategy restore` add
to raw pg_dump / pg_restore with the same flags.

On a 10 M-row database the dump itself takes tens of seconds and machine noise hides a second or
so; what our commands add does not grow with the data (Python start-up, version checks, the
read-back, hashing, retention), so it is measured here on a small database, many times, with raw
and ours interleaved (alternating which goes first), and reported as medians of the per-round
difference. Run from the repository root:

    python3 -m bench.backup_fixed_cost --rows 100000 --rounds 9

It starts a throwaway server (or uses DBMIGRATE_BENCH_DATABASE_URL) and a work folder outside
/tmp; `--out` writes the timings as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.backup_restore import our_backup, our_restore, prepare, raw_dump, raw_restore
from bench.common import database, median, server

DB = "bench_fixed_cost"


def startup_seconds() -> float:
    """Seconds for `dbmigrate backup --help`: interpreter start and the command's imports."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "dbmigrate.cli.main", "backup", "--help"],
        capture_output=True,
        check=True,
    )
    return time.monotonic() - started


def interleave(
    raw: Callable[[int], float], ours: Callable[[int], float], rounds: int
) -> dict[str, list[float]]:
    """Run RAW and OURS ROUNDS times each, alternating which goes first; their timings."""
    times: dict[str, list[float]] = {"raw": [], "ours": [], "difference": []}
    for n in range(rounds):
        if n % 2 == 0:
            first_raw, first_ours = raw(n), ours(n)
        else:
            first_ours, first_raw = ours(n), raw(n)
        times["raw"].append(first_raw)
        times["ours"].append(first_ours)
        times["difference"].append(first_ours - first_raw)
    return times


def measure(admin_url: str, url: str, work: Path, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved timings of backup (custom) and restore (custom, into a new database)."""
    results: dict[str, dict[str, list[float]]] = {}
    results["backup custom"] = interleave(
        lambda n: raw_dump(url, work / f"raw-{n}.dump", "custom", 1),
        lambda n: our_backup(url, work, "custom", 1)[0],
        rounds,
    )
    _, artefact = our_backup(url, work, "custom", 1)
    results["restore custom"] = interleave(
        lambda n: raw_restore(admin_url, url, artefact, 1, "bench_raw_restore"),
        lambda n: our_restore(admin_url, url, artefact, 1, "bench_our_restore"),
        rounds,
    )
    results["startup"] = {"ours": [startup_seconds() for _ in range(rounds)]}
    return results


def table(results: dict[str, dict[str, list[float]]]) -> str:
    """Medians as a Markdown table."""
    lines = [
        "| step | raw median (s) | dbmigrate median (s) | median difference (s) |",
        "|---|---:|---:|---:|",
    ]
    for step, times in results.items():
        cells = [f"{median(times[k]):.3f}" if k in times else "-" for k in ("raw", "ours")]
        diff = f"{median(times['difference']):.3f}" if "difference" in times else "-"
        lines.append(f"| {step} | {cells[0]} | {cells[1]} | {diff} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="page_views rows")
    parser.add_argument("--rounds", type=int, default=9, help="pairs per step")
    parser.add_argument("--out", help="write the timings as JSON here")
    parser.add_argument("--work", default="/var/tmp", help="where the dumps go")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="backup-fixed-cost-", dir=args.work))
    try:
        with server() as admin_url, database(admin_url, DB) as url:
            prepare(url, args.rows)
            results = measure(admin_url, url, work, args.rounds)
        print(table(results))
        if args.out:
            Path(args.out).write_text(json.dumps({"rows": args.rows, "seconds": results}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
