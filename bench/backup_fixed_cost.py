"""Benchmark: the fixed cost `dbmigrate backup` and `dbmigrate rollback --strategy restore` add
to raw pg_dump / pg_restore with the same flags.

On a 10 M-row database the dump itself takes tens of seconds and machine noise hides a second or
so; what our commands add does not grow with the data (Python start-up, version checks, the
read-back, hashing, retention), so it is measured here on a small database, many times, with raw
and ours interleaved (alternating which goes first), and reported as medians of the per-round
difference. Run from the repository root:

    python3 -m bench.backup_fixed_cost --rows 100000 --rounds 9

To compare with an earlier version in the same run (the machine's load changes from minute to
minute), extract it and pass it as ``--baseline``; its commands are interleaved too:

    git archive COMMIT | tar -x -C /var/tmp/before
    python3 -m bench.backup_fixed_cost --baseline /var/tmp/before

It starts a throwaway server (or uses DBMIGRATE_BENCH_DATABASE_URL) and a work folder outside
/tmp; `--out` writes the timings as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
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
Runner = Callable[[int], float]


def tree_env(tree: str | None) -> dict[str, str] | None:
    """The environment that runs the `dbmigrate` of another source tree (None: this one)."""
    if tree is None:
        return None
    return {**os.environ, "PYTHONPATH": str(Path(tree).resolve() / "operator")}


def startup_seconds(env: dict[str, str] | None) -> float:
    """Seconds for `dbmigrate backup --help`: interpreter start and the command's imports."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "dbmigrate.cli.main", "backup", "--help"],
        capture_output=True,
        check=True,
        env=env,
    )
    return time.monotonic() - started


def interleave(runners: dict[str, Runner], rounds: int) -> dict[str, list[float]]:
    """Run each runner ROUNDS times, rotating which goes first each round; their timings."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for n in range(rounds):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(runners[name](n))
    return times


def measure(
    admin_url: str, url: str, work: Path, rounds: int, envs: dict[str, dict[str, str] | None]
) -> dict[str, dict[str, list[float]]]:
    """Interleaved timings of backup (custom) and restore (custom, into a new database) for raw
    and for each `dbmigrate` in ENVS; and the start-up of each."""

    def backup(env: dict[str, str] | None) -> Runner:
        return lambda n: our_backup(url, work, "custom", 1, env)[0]

    def restore(env: dict[str, str] | None) -> Runner:
        return lambda n: our_restore(admin_url, url, artefact, 1, "bench_our_restore", env)

    results: dict[str, dict[str, list[float]]] = {}
    dumps: dict[str, Runner] = {"raw": lambda n: raw_dump(url, work / f"raw-{n}.dump", "custom", 1)}
    results["backup custom"] = interleave(dumps | {k: backup(e) for k, e in envs.items()}, rounds)
    _, artefact = our_backup(url, work, "custom", 1)
    restores: dict[str, Runner] = {
        "raw": lambda n: raw_restore(admin_url, url, artefact, 1, "bench_raw_restore")
    }
    results["restore custom"] = interleave(
        restores | {k: restore(e) for k, e in envs.items()}, rounds
    )
    starts = {k: (lambda n, e=e: startup_seconds(e)) for k, e in envs.items()}
    results["start-up (backup --help)"] = interleave(starts, rounds)
    return results


def table(results: dict[str, dict[str, list[float]]]) -> str:
    """Medians, and the median of the per-round differences to raw, as a Markdown table."""
    lines = [
        "| step | command | median (s) | median difference to raw (s) |",
        "|---|---|---:|---:|",
    ]
    for step, times in results.items():
        for name, seconds in times.items():
            diff = "-"
            if "raw" in times and name != "raw":
                diff = f"{median([a - b for a, b in zip(seconds, times['raw'], strict=True)]):.3f}"
            lines.append(f"| {step} | {name} | {median(seconds):.3f} | {diff} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="page_views rows")
    parser.add_argument("--rounds", type=int, default=9, help="pairs per step")
    parser.add_argument("--out", help="write the timings as JSON here")
    parser.add_argument("--work", default="/var/tmp", help="where the dumps go")
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="also time the dbmigrate of this source tree (e.g. `git archive` of an older commit)",
    )
    args = parser.parse_args()
    envs = {"dbmigrate": tree_env(None)}
    if args.baseline:
        envs = {"baseline": tree_env(args.baseline), **envs}
    work = Path(tempfile.mkdtemp(prefix="backup-fixed-cost-", dir=args.work))
    try:
        with server() as admin_url, database(admin_url, DB) as url:
            prepare(url, args.rows)
            results = measure(admin_url, url, work, args.rounds, envs)
        print(table(results))
        if args.out:
            Path(args.out).write_text(json.dumps({"rows": args.rows, "seconds": results}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
