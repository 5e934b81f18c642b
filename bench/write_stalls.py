"""Write stalls while migration 005 builds its indexes: `dbmigrate apply` versus `psql -f`.

One run: a database with ROWS page_views (default 10 million) and 500k sessions, under a steady
pgbench write load (bench/write_load.sql, rate-limited so a blocked write shows as latency). First
the guide's path: `psql -f` of 005's index definitions WITHOUT CONCURRENTLY (generated from 005's
parse tree); the indexes are then dropped. Then `dbmigrate apply` runs 005 as written
(CONCURRENTLY). For each path, from pgbench's per-transaction log: the longest write latency
(stall), p99 and p50 latency, and the longest gap without any completed write.

    python3 -m bench.write_stalls [ROWS]      # prints a Markdown table; takes minutes
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pglast import ast, parse_sql
from pglast.stream import RawStream

from bench.common import MIGRATIONS, PG_BIN, database, psql, server
from dbmigrate.engine.apply import apply_migrations
from dbmigrate.engine.settings import ApplySettings
from dbmigrate.engine.sources import load_directory

LOAD = Path(__file__).with_name("write_load.sql")
SESSIONS = 500_000
RATE = 300  # transactions per second of the write load
SETUP = [
    "ALTER SYSTEM SET maintenance_work_mem = '256MB'",
    "ALTER SYSTEM SET max_wal_size = '8GB'",
    "SELECT pg_reload_conf()",
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def plain_005() -> str:
    """005's index definitions without CONCURRENTLY, deparsed from the parse tree."""
    sql = (MIGRATIONS / "005_add_performance_indexes.sql").read_text()
    out = []
    for raw in parse_sql(sql):
        node = raw.stmt
        assert isinstance(node, ast.IndexStmt)
        node.concurrent = False
        out.append(RawStream()(node) + ";")
    return "\n".join(out) + "\n"


def seed(url: str, rows: int) -> None:
    """001-004 by the engine, then sessions and page views in chunks (FK triggers off)."""
    migrations = load_directory(MIGRATIONS).up_to(4)
    assert apply_migrations(url, migrations, ApplySettings(lint_policy="off")).status == "succeeded"
    psql(url, extra=("-c", SETUP[0], "-c", SETUP[1], "-c", SETUP[2]))
    fill = (
        "SET session_replication_role = replica;"
        f"INSERT INTO visitor_sessions (visitor_id, started_at, last_activity_at, ended_at)"
        f" SELECT 'v' || g, now() - g * interval '1 s', now() - g * interval '1 s',"
        f" CASE WHEN g % 10 = 0 THEN NULL ELSE now() END FROM generate_series(1, {SESSIONS}) g;"
    )
    psql(url, extra=("-c", fill))
    chunk = 1_000_000
    for start in range(0, rows, chunk):
        count = min(chunk, rows - start)
        insert = (
            "SET session_replication_role = replica;"
            "INSERT INTO page_views (session_id, path, timestamp, duration_ms, status_code)"
            f" SELECT 1 + (g::bigint * 7919) % {SESSIONS}, '/page/' || (g % 200),"
            f" now() - (g % 8000000) * interval '1 s', g % 3000, 200"
            f" FROM generate_series({start + 1}, {start + count}) g;"
        )
        psql(url, extra=("-c", insert))
        log(f"seeded {start + count} page_views")
    psql(url, extra=("-c", "VACUUM ANALYZE page_views", "-c", "VACUUM ANALYZE visitor_sessions"))


class Load:
    """pgbench running the write load until stopped (SIGALRM ends a -T run cleanly)."""

    def __init__(self, url: str, folder: Path, name: str) -> None:
        self.prefix = folder / name
        argv = [
            str(PG_BIN / "pgbench"),
            "-n",
            "-c",
            "4",
            "-j",
            "2",
            "-R",
            str(RATE),
            "-T",
            "36000",
            "-l",
            f"--log-prefix={self.prefix}",
            "-f",
            str(LOAD),
            url,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGALRM)
        self.proc.wait(timeout=120)

    def samples(self) -> list[tuple[float, float]]:
        """(completion time in s since the epoch, latency in ms) of every transaction."""
        result = []
        for path in self.prefix.parent.glob(self.prefix.name + ".*"):
            for line in path.read_text().splitlines():
                fields = line.split()
                latency_us, epoch, micros = int(fields[2]), int(fields[4]), int(fields[5])
                result.append((epoch + micros / 1e6, latency_us / 1000))
        return sorted(result)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def measure(samples: list[tuple[float, float]], start: float, end: float) -> dict[str, float]:
    """Latency figures of the writes that were in flight while [start, end] ran."""
    inside = [(t, lat) for t, lat in samples if t >= start and t - lat / 1000 <= end]
    latencies = [lat for _, lat in inside]
    times = [start] + [t for t, _ in inside] + [end]
    return {
        "seconds": end - start,
        "writes": len(inside),
        "max_ms": max(latencies, default=float("nan")),
        "p99_ms": percentile(latencies, 0.99),
        "p50_ms": percentile(latencies, 0.50),
        "gap_ms": max(b - a for a, b in itertools.pairwise(times)) * 1000,
    }


def under_load(url: str, folder: Path, name: str, action: list[str]) -> dict[str, float]:
    load = Load(url, folder, name)
    time.sleep(5)
    started = time.time()
    done = subprocess.run(action, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        load.stop()
        raise RuntimeError(f"{name} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr}")
    ended = time.time()
    time.sleep(3)
    load.stop()
    return measure(load.samples(), started, ended)


def main(rows: int) -> None:
    with (
        server() as admin_url,
        database(admin_url, "bench_stalls") as url,
        tempfile.TemporaryDirectory(prefix="dbmigrate-bench-") as scratch,  # pgbench logs: ~1 GB
    ):
        log(f"seeding {rows} page_views")
        seed(url, rows)
        folder = Path(scratch)
        plain = folder / "plain_005.sql"
        plain.write_text(plain_005())
        log("psql -f without CONCURRENTLY under load")
        results = {
            "psql -f (no CONCURRENTLY)": under_load(
                url,
                folder,
                "plain",
                [
                    str(PG_BIN / "psql"),
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    url,
                    "-f",
                    str(plain),
                ],
            )
        }
        stmts = (r.stmt for r in parse_sql(plain.read_text()))
        names = [n.idxname for n in stmts if isinstance(n, ast.IndexStmt)]
        psql(url, extra=tuple(a for n in names for a in ("-c", f"DROP INDEX {n}")))
        log("dbmigrate apply under load")
        cli = [
            sys.executable,
            "-m",
            "dbmigrate.cli.main",
            "apply",
            "--migrations",
            str(MIGRATIONS),
            "--database-url",
            url,
            "--output",
            "json",
        ]
        results["dbmigrate apply (CONCURRENTLY)"] = under_load(url, folder, "engine", cli)
    print(f"page_views rows: {rows:,}; write load: pgbench -c 4 -R {RATE} ({LOAD.name})\n")
    print("| path | build s | writes | longest write ms | p99 ms | p50 ms | longest gap ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path, r in results.items():
        print(
            f"| {path} | {r['seconds']:.1f} | {r['writes']:.0f} | {r['max_ms']:.0f} | "
            f"{r['p99_ms']:.1f} | {r['p50_ms']:.1f} | {r['gap_ms']:.0f} |"
        )


if __name__ == "__main__":
    os.environ.setdefault("PGAPPNAME", "dbmigrate-bench")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
