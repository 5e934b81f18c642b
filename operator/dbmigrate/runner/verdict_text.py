"""What ``dbmigrate watch`` prints for a person: a line per sample, then the verdict and its
evidence (the JSON form, ``--output json``, is the report model itself)."""

from __future__ import annotations

from dbmigrate.api.watch import QueryComparison, WatchReport


def _query_line(row: QueryComparison) -> str:
    text = " ".join(row.query.split())
    how = " [matched by text]" if row.matched_by == "text" else ""
    how += "" if row.t_score is None else f", t {row.t_score:g}"
    return (
        f"    {row.mean_before_ms:g} -> {row.mean_after_ms:g} ms/call (x{row.ratio:g}), "
        f"calls {row.calls_before} -> {row.calls_after}, {row.extra_ms_per_hour / 1000:+.1f} s/h,"
        f" {row.share_percent:g}% of the time{how}"
        f"\n      {text[:120]}"
    )


def progress_line(report: WatchReport) -> str:
    """One line per sample: the verdict so far."""
    seconds = report.after.seconds if report.after else 0.0
    return (
        f"  sample {report.samples} (+{seconds:.0f}s): {report.verdict} so far; "
        f"{report.compared} compared, {len(report.offenders)} slower"
    )


def report_text(report: WatchReport) -> list[str]:
    """The verdict, why, and the evidence."""
    lines = [f"verdict: {report.verdict}: {report.reason}"]
    if report.before and report.after:
        lines.append(
            f"  windows: before {report.before.seconds:.0f}s, after {report.after.seconds:.0f}s "
            f"({report.samples} samples); {report.compared} queries compared"
        )
    ex = report.excluded
    if ex.evicted or ex.reset or ex.unmatched or ex.too_few_calls:
        lines.append(
            f"  left out: {ex.too_few_calls} with too few calls, {ex.unmatched} in one window "
            f"only, {ex.evicted} evicted, {ex.reset} reset"
        )
    if report.offenders:
        lines.append("  slower:")
        lines += [_query_line(r) for r in report.offenders]
    if report.improved:
        lines.append("  faster:")
        lines += [_query_line(r) for r in report.improved]
    for index in report.new_indexes:
        scans = "not found" if index.scans is None else f"{index.scans} scans"
        lines.append(f"  new index {index.schema_name}.{index.index}: {scans}")
    for probe in report.probes:
        before = "-" if probe.before_ms is None else f"{probe.before_ms:g}"
        after = "-" if probe.after_ms is None else f"{probe.after_ms:g}"
        flag = " SLOWER" if probe.regressed else ""
        lines.append(f"  probe {probe.probe}: {before} -> {after} ms (median){flag}")
    if report.database:
        b, a = report.database.before, report.database.after
        lines.append(
            f"  database: commits/s {b.commits_per_second:g} -> {a.commits_per_second:g}, "
            f"blocks read/s {b.blks_read_per_second:g} -> {a.blks_read_per_second:g}, "
            f"temp bytes/s {b.temp_bytes_per_second:g} -> {a.temp_bytes_per_second:g}, "
            f"deadlocks {b.deadlocks} -> {a.deadlocks}"
        )
    lines += [f"  missing: {note}" for note in report.missing]
    return lines
