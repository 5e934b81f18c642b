"""The db tier once per supported PostgreSQL major version, with one summary line per major.

    python -m testbed.pgmatrix              # every supported major, 13 to 18
    python -m testbed.pgmatrix 13 18        # only these
    make test-db-matrix PG_MAJORS="13 18"

Each major's binaries are fetched (and cached) by `testbed.pgversions` before its run, then
`pytest tests/db` runs with env DBMIGRATE_TEST_PG_MAJOR set to it (the db tier's fixture starts
that server and points dbmigrate's pg_dump and pg_restore at that major's client programs). The
runs are sequential: the tier's timing tests would be disturbed by a second run beside them on a
small machine. Exit status 0 only when every major passed; the last line is the sum of the runs,
in the form `N passed, N failed, N skipped`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed import pgversions
from testbed.proc import TestbedError

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Outcome:
    """What one major's run of the tier gave."""

    major: int
    passed: int
    failed: int
    skipped: int
    seconds: float
    exit_code: int
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0

    def line(self) -> str:
        """The summary line of this major."""
        rel = pgversions.RELEASES[self.major]
        tools = f"server {rel.server.version}, client programs {rel.client.version}"
        verdict = "ok" if self.ok else "FAILED"
        text = (
            f"PostgreSQL {self.major} ({tools}): {self.passed} passed, {self.failed} failed, "
            f"{self.skipped} skipped in {self.seconds:.0f} s: {verdict}"
        )
        return f"{text} ({self.note})" if self.note else text


def junit_counts(path: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a pytest JUnit XML report; errors count as failures."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = failures = errors = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", "0"))
        failures += int(suite.get("failures", "0"))
        errors += int(suite.get("errors", "0"))
        skipped += int(suite.get("skipped", "0"))
    return tests - failures - errors - skipped, failures + errors, skipped


def run_major(major: int, pytest_args: Sequence[str]) -> Outcome:
    """Fetch MAJOR's binaries, then run the db tier against them."""
    started = time.monotonic()
    try:
        pgversions.install(major)
    except TestbedError as exc:
        return Outcome(major, 0, 0, 0, time.monotonic() - started, 1, f"fetch failed: {exc}")
    env = dict(os.environ)
    env[pgversions.MAJOR_ENV] = str(major)
    env.pop("DBMIGRATE_TEST_DATABASE_URL", None)  # the run is against the fetched server
    with tempfile.TemporaryDirectory(prefix=f"dbmigrate-matrix-{major}-") as tmp:
        report = Path(tmp) / "junit.xml"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "tests/db",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *pytest_args,
        ]
        print(f"=== PostgreSQL {major}: {' '.join(argv[1:])}", flush=True)
        code = subprocess.run(argv, cwd=REPO, env=env, check=False).returncode
        seconds = time.monotonic() - started
        if not report.exists():
            return Outcome(major, 0, 0, 0, seconds, code or 1, f"pytest exit {code}, no report")
        passed, failed, skipped = junit_counts(report)
    note = "" if code in (0, 1) else f"pytest exit {code}"
    return Outcome(major, passed, failed, skipped, seconds, code, note)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the matrix (each --pytest-arg is passed on to every pytest run)."""
    parser = argparse.ArgumentParser(prog="python -m testbed.pgmatrix", description=__doc__)
    parser.add_argument("majors", nargs="*", type=int, help="default: every supported major")
    parser.add_argument("--pytest-arg", action="append", default=[], help="passed to pytest")
    args = parser.parse_args(argv)
    majors: list[int] = args.majors or list(pgversions.SUPPORTED_MAJORS)
    unknown = [m for m in majors if m not in pgversions.RELEASES]
    if unknown:
        supported = ", ".join(map(str, pgversions.SUPPORTED_MAJORS))
        parser.error(f"not a supported major: {unknown} (supported: {supported})")
    started = time.monotonic()
    outcomes = [run_major(major, args.pytest_arg) for major in majors]
    print(f"\n=== db tier per PostgreSQL major ({time.monotonic() - started:.0f} s in all)")
    for outcome in outcomes:
        print(outcome.line())
    passed = sum(o.passed for o in outcomes)
    failed = sum(o.failed for o in outcomes) + sum(1 for o in outcomes if not o.ok and not o.failed)
    skipped = sum(o.skipped for o in outcomes)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
