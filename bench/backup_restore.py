"""Benchmark: `dbmigrate backup` / `dbmigrate rollback --strategy restore` versus raw pg_dump /
pg_restore with the same flags, on the analytics database with >= 10 M page_views rows, and the
guide's custom format versus the parallel directory format.

Run from the repository root (takes a while; run it in the background):

    nohup python3 -m bench.backup_restore --rows 10000000 > bench/backup_restore.log 2>&1 &

It starts a throwaway server (or uses DBMIGRATE_BENCH_DATABASE_URL), applies 001-004 with the
engine, loads the sample data, then times each pair in one run, alternating which goes first.
Results are printed as a Markdown table and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import MIGRATIONS, PG_BIN, database, server
from dbmigrate.engine.apply import ApplySettings, apply_migrations
from dbmigrate.engine.sources import load_directory
from dbmigrate.engine.undo import pgtools
from dbmigrate.engine.undo.archive import size_of
from tests.db.data import load_sample_data

DB = "bench_backup"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds a command takes (it must succeed)."""
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took


def prepare(url: str, rows: int) -> int:
    """001-004 applied by the engine, sample data loaded, vacuumed; the database size."""
    result = apply_migrations(url, load_directory(MIGRATIONS), ApplySettings(target=4))
    assert result.status == "succeeded", result.error
    with psycopg.connect(url, autocommit=True) as conn:
        load_sample_data(conn, users=10_000, sessions=rows // 10, views=rows)
        conn.execute("VACUUM (ANALYZE)")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert size is not None
    return int(size[0])


def drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_db(admin_url: str, name: str) -> None:
    drop_db(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def raw_dump(url: str, target: Path, fmt: str, jobs: int) -> float:
    conninfo, env = pgtools.libpq_args(url)
    argv = [str(PG_BIN / "pg_dump"), f"--format={fmt}", f"--file={target}",
            "--lock-wait-timeout=60s", "--no-password", f"--dbname={conninfo}"]  # fmt: skip
    if fmt == "directory":
        argv.append(f"--jobs={jobs}")
    return timed(argv, env)


def our_backup(
    url: str, folder: Path, fmt: str, jobs: int, env: dict[str, str] | None = None
) -> tuple[float, Path]:
    """`dbmigrate backup` (ENV: e.g. another source tree on PYTHONPATH); seconds, artefact."""
    out = folder / f"ours-{fmt}-{time.monotonic_ns()}"
    out.mkdir()
    took = timed([sys.executable, "-m", "dbmigrate.cli.main", "backup", "--database-url", url,
                  "--dir", str(out), "--name", "bench", "--format", fmt, "--jobs", str(jobs),
                  "--output", "json"], env)  # fmt: skip
    return took, next(out.iterdir())


def raw_restore(admin_url: str, url: str, artefact: Path, jobs: int, name: str) -> float:
    started = time.monotonic()
    create_db(admin_url, name)
    conninfo, env = pgtools.libpq_args(url, dbname=name)
    argv = [str(PG_BIN / "pg_restore"), "--exit-on-error", "--no-password", f"--dbname={conninfo}"]
    argv += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
    timed([*argv, str(artefact)], env)
    took = time.monotonic() - started
    drop_db(admin_url, name)
    return took


def our_restore(
    admin_url: str,
    url: str,
    artefact: Path,
    jobs: int,
    name: str,
    env: dict[str, str] | None = None,
) -> float:
    """`dbmigrate rollback --strategy restore` into a new database NAME, dropped afterwards."""
    took = timed([sys.executable, "-m", "dbmigrate.cli.main", "rollback", "--database-url", url,
                  "--strategy", "restore", "--backup", str(artefact), "--into-database", name,
                  "--jobs", str(jobs), "--versions", "4", "--output", "json"], env)  # fmt: skip
    drop_db(admin_url, name)
    return took


def bench_backups(
    url: str, work: Path, jobs: int, formats: list[str], rounds: int
) -> tuple[dict[str, list[float]], dict[str, Path]]:
    times: dict[str, list[float]] = {}
    artefacts: dict[str, Path] = {}
    for fmt in formats:
        fmt_jobs = jobs if fmt == "directory" else 1
        raw, ours = (
            times.setdefault(f"backup {fmt} raw", []),
            times.setdefault(f"backup {fmt} ours", []),
        )
        for r in range(rounds):  # raw, ours, ours, raw: neither side always goes first
            raw.append(raw_dump(url, work / f"raw-{fmt}-{r}-1", fmt, fmt_jobs))
            took, artefacts[fmt] = our_backup(url, work, fmt, fmt_jobs)
            ours.append(took)
            ours.append(our_backup(url, work, fmt, fmt_jobs)[0])
            raw.append(raw_dump(url, work / f"raw-{fmt}-{r}-2", fmt, fmt_jobs))
            shutil.rmtree(work / f"raw-{fmt}-{r}-1", ignore_errors=True)
            shutil.rmtree(work / f"raw-{fmt}-{r}-2", ignore_errors=True)
        print(f"backup {fmt}: raw {_runs(raw)}, ours {_runs(ours)}", flush=True)
    return times, artefacts


def _runs(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values) + "s"


def bench_restores(
    admin_url: str, url: str, artefacts: dict[str, Path], jobs: int, rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for fmt, artefact in artefacts.items():
        fmt_jobs = jobs if fmt == "directory" else 1
        raw, ours = [], []
        for _round in range(rounds):  # raw, ours, ours, raw
            raw.append(raw_restore(admin_url, url, artefact, fmt_jobs, "bench_raw_restore"))
            ours.append(our_restore(admin_url, url, artefact, fmt_jobs, "bench_our_restore"))
            ours.append(our_restore(admin_url, url, artefact, fmt_jobs, "bench_our_restore"))
            raw.append(raw_restore(admin_url, url, artefact, fmt_jobs, "bench_raw_restore"))
        times[f"restore {fmt} raw"], times[f"restore {fmt} ours"] = raw, ours
        print(f"restore {fmt} (jobs {fmt_jobs}): raw {_runs(raw)}, ours {_runs(ours)}", flush=True)
    return times


def table(times: dict[str, list[float]], sizes: dict[str, int]) -> str:
    lines = ["| step | raw runs (s) | dbmigrate runs (s) | ratio of fastest | ratio of means |"
             " artefact |", "|---|---|---|---|---|---|"]  # fmt: skip
    for step in ("backup custom", "backup directory", "restore custom", "restore directory"):
        if f"{step} raw" not in times:
            continue
        raw, ours = times[f"{step} raw"], times[f"{step} ours"]
        size = sizes.get(step.split()[1], 0) / 1048576
        fastest = min(ours) / min(raw)
        means = (sum(ours) / len(ours)) / (sum(raw) / len(raw))
        lines.append(
            f"| {step} | {' / '.join(f'{t:.1f}' for t in raw)} | "
            f"{' / '.join(f'{t:.1f}' for t in ours)} | {fastest:.3f} | {means:.3f} | "
            f"{size:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000, help="page_views rows")
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs for directory format")
    parser.add_argument("--out", default="bench/backup_restore.json")
    parser.add_argument(
        "--backups-only", action="store_true", help="skip the restores (a quicker rerun)"
    )
    parser.add_argument("--formats", default="custom,directory", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="raw-ours-ours-raw rounds per step")
    parser.add_argument(
        "--work", default="/var/tmp", help="where the dumps go (outside /tmp, which others clean)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="backup-restore-bench-", dir=args.work))
    try:
        with server() as admin_url, database(admin_url, DB) as url:
            started = time.monotonic()
            size = prepare(url, args.rows)
            print(f"loaded {args.rows:,} page_views rows: database {size / 1048576:.0f} MiB in "
                  f"{time.monotonic() - started:.0f}s", flush=True)  # fmt: skip
            formats = args.formats.split(",")
            times, artefacts = bench_backups(url, work, args.jobs, formats, args.rounds)
            if not args.backups_only:
                times.update(bench_restores(admin_url, url, artefacts, args.jobs, args.rounds))
            sizes = {f: size_of(p) for f, p in artefacts.items()}
            print(table(times, sizes))
            Path(args.out).write_text(json.dumps(
                {"rows": args.rows, "database_bytes": size, "jobs": args.jobs, "seconds": times,
                 "artefact_bytes": sizes}, indent=2))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
