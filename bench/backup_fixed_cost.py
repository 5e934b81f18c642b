"""Benchmark: the fixed cost `dbmigrate backup` and `dbmigrate rollback --strategy restore` add
to raw pg_dump / pg_restore with the same flags.

On a 10 M-row database the dump itself takes tens of seconds and machine noise hides a second or
so; what our commands add does not grow with the data (Python start-up, version checks, the
read-back, hashing, retention), so it is measured here on a small database, many times, with raw
and ours interleaved (alternating which goes first), and reported as medians of the per-round
difference. The CPU seconds of each command's own processes are recorded too: on a shared
machine they vary much less than the wall clock (the server's CPU is not in them). Run from the
repository root:

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
import resource
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
Samples = dict[str, list[float]]


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


def children_cpu() -> float:
    """CPU seconds (user and system) of the finished child processes and their children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def interleave(runners: dict[str, Runner], rounds: int) -> dict[str, Samples]:
    """Run each runner ROUNDS times, rotating which goes first each round; the wall-clock
    seconds each reports and the CPU seconds of its processes (not the server's)."""
    samples: dict[str, Samples] = {name: {"wall": [], "cpu": []} for name in runners}
    names = list(runners)
    for n in range(rounds):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            cpu = children_cpu()
            samples[name]["wall"].append(runners[name](n))
            samples[name]["cpu"].append(children_cpu() - cpu)
    return samples


def measure(
    admin_url: str, url: str, work: Path, rounds: int, envs: dict[str, dict[str, str] | None]
) -> dict[str, dict[str, Samples]]:
    """Interleaved timings of backup (custom) and restore (custom, into a new database) for raw
    and for each `dbmigrate` in ENVS; and the start-up of each."""

    def backup(env: dict[str, str] | None) -> Runner:
        return lambda n: our_backup(url, work, "custom", 1, env)[0]

    def restore(env: dict[str, str] | None) -> Runner:
        return lambda n: our_restore(admin_url, url, artefact, 1, "bench_our_restore", env)

    def startup(env: dict[str, str] | None) -> Runner:
        return lambda n: startup_seconds(env)

    results: dict[str, dict[str, Samples]] = {}
    dumps: dict[str, Runner] = {"raw": lambda n: raw_dump(url, work / f"raw-{n}.dump", "custom", 1)}
    results["backup custom"] = interleave(dumps | {k: backup(e) for k, e in envs.items()}, rounds)
    _, artefact = our_backup(url, work, "custom", 1)
    restores: dict[str, Runner] = {
        "raw": lambda n: raw_restore(admin_url, url, artefact, 1, "bench_raw_restore")
    }
    results["restore custom"] = interleave(
        restores | {k: restore(e) for k, e in envs.items()}, rounds
    )
    starts = {k: startup(e) for k, e in envs.items()}
    results["start-up (backup --help)"] = interleave(starts, rounds)
    return results


def _paired(samples: dict[str, Samples], name: str, key: str) -> str:
    """The median of the per-round differences of NAME to raw."""
    if "raw" not in samples or name == "raw":
        return "-"
    pairs = zip(samples[name][key], samples["raw"][key], strict=True)
    return f"{median([ours - raw for ours, raw in pairs]):.3f}"


def table(results: dict[str, dict[str, Samples]]) -> str:
    """Medians, and the medians of the per-round differences to raw, as a Markdown table."""
    lines = [
        "| step | command | wall median (s) | wall minus raw (s) | CPU median (s) |"
        " CPU minus raw (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for step, samples in results.items():
        for name, got in samples.items():
            lines.append(
                f"| {step} | {name} | {median(got['wall']):.3f} | {_paired(samples, name, 'wall')}"
                f" | {median(got['cpu']):.3f} | {_paired(samples, name, 'cpu')} |"
            )
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
