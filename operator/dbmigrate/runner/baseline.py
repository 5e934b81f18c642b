"""The performance watch's "before" window, sampled by the plan and the apply steps.

With ``spec.watch`` set the operator passes ``--watch-baseline`` (and the watch's settings in
env DBMIGRATE_WATCH) to the plan and apply Jobs. The plan samples the database's cumulative
counters at the start of the run (``status.watch.runStart``); the apply samples them again just
before its first statement (``status.watch.beforeApply``, with the probes timed), which closes
the window the watch compares against. When the window is shorter than
``thresholds.minBaselineSeconds`` and ``waitForBaseline`` is on, the apply first waits for it
(never longer than that minimum); otherwise it says so in ``status.watch.baselineNote``, and the
verdict can only be Inconclusive.

A baseline is evidence, never a gate: whatever goes wrong here (no pg_stat_statements, a slow
sample, a lost status write) is logged and noted, and the step goes on. The snapshots kept in the
status are bounded (``trimmed``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dbmigrate.api.labels import PROBES_ENV, WATCH_ENV
from dbmigrate.api.stepnames import KEY_WATCH
from dbmigrate.engine.undo.pgtools import StepError
from dbmigrate.runner.context import StepContext, say

if TYPE_CHECKING:  # the models load when a baseline is taken, not when the parser is built
    from dbmigrate.api.spec import WatchSpec
    from dbmigrate.api.status import WatchBeforeApply, WatchRunStart
    from dbmigrate.api.watch import Snapshot
    from dbmigrate.engine.after.probes import Probe

log = logging.getLogger("dbmigrate.watch")

RELATIONS_KEPT = 200  # tables and indexes kept per snapshot in the status (the top-N by use)


def add_watch_baseline(parser: argparse.ArgumentParser, when: str) -> None:
    """``--watch-baseline``: sample the counters for the performance watch (``when``)."""
    parser.add_argument(
        "--watch-baseline",
        action="store_true",
        help=f"sample the database's counters {when}, for the performance watch "
        f"(settings in env {WATCH_ENV}; reported in status.watch)",
    )


def watch_settings() -> WatchSpec:
    """spec.watch as the Job passes it (env DBMIGRATE_WATCH); its defaults when unset."""
    from dbmigrate.api.spec import WatchSpec

    raw = os.environ.get(WATCH_ENV)
    if not raw:
        return WatchSpec()
    try:
        return WatchSpec.model_validate(json.loads(raw))
    except ValueError as exc:
        raise StepError(f"env {WATCH_ENV} is not a valid spec.watch: {exc}") from exc


def env_probes() -> list[Probe]:
    """The probes of env DBMIGRATE_PROBES (spec.verification.probes), to time them."""
    from dbmigrate.engine.after.probes import Probe

    try:
        entries = json.loads(os.environ.get(PROBES_ENV) or "[]")
    except ValueError as exc:
        raise StepError(f"env {PROBES_ENV} is not JSON: {exc}") from exc
    return [Probe(e["name"], e["sql"], e["expectIndex"]) for e in entries]


def trimmed(snapshot: Snapshot) -> Snapshot:
    """The snapshot as kept in the status: statements are already top-N; tables and indexes
    are cut to the ``RELATIONS_KEPT`` most used (a database of thousands stays bounded)."""
    tables = sorted(snapshot.tables, key=lambda t: -(t.seq_scan + t.idx_scan))
    indexes = sorted(snapshot.indexes, key=lambda i: -i.idx_scan)
    return snapshot.model_copy(
        update={"tables": tables[:RELATIONS_KEPT], "indexes": indexes[:RELATIONS_KEPT]}
    )


def sample(
    ctx: StepContext, purpose: str, probes: Sequence[Probe] = (), track: Sequence[int] = ()
) -> Snapshot:
    """One snapshot on its own short connection (the step's own stays as it was); the
    statements of ``track`` are kept even below the top-N."""
    from dbmigrate.engine.after.snapshot import take_snapshot
    from dbmigrate.engine.connect import connect

    settings = watch_settings()
    with connect(ctx.conninfo, purpose, ctx.run_id) as conn:
        return take_snapshot(conn, settings.thresholds, probes, track)


def run_start(ctx: StepContext, purpose: str) -> WatchRunStart | None:
    """The plan step's sample: the counters at the start of the run (None: it failed, said)."""
    from dbmigrate.api.status import WatchRunStart

    try:
        snapshot = trimmed(sample(ctx, purpose))
    except Exception as exc:  # evidence, never a gate: the plan goes on
        log.warning("the performance watch's run-start sample failed: %s", exc)
        say(f"performance watch: no run-start sample ({exc}); the verdict will be Unavailable")
        return None
    _say_missing(snapshot)
    return WatchRunStart(run_start=snapshot)


def before_apply(
    ctx: StepContext,
    purpose: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """The apply step's sample, reported at once: the end of the before window."""
    from dbmigrate.api.status import WatchBeforeApply

    watch = ctx.resource_status().get(KEY_WATCH) or {}
    if watch.get("beforeApply"):
        say("performance watch: the before-apply sample was taken by an earlier attempt")
        return
    started, tracked = _run_start(watch)
    settings = watch_settings()
    minimum = settings.thresholds.min_baseline_seconds
    if started is not None and settings.wait_for_baseline:
        missing = minimum - (now() - started).total_seconds()
        if missing > 0:
            say(f"performance watch: waiting {missing:.0f}s for a {minimum}s before window")
            sleep(min(missing, float(minimum)))
    try:
        snapshot = trimmed(sample(ctx, purpose, env_probes(), tracked))
    except Exception as exc:  # evidence, never a gate: the apply goes on
        log.warning("the performance watch's before-apply sample failed: %s", exc)
        note = f"no before-apply sample ({exc}): the verdict can only be Unavailable"
        ctx.report(KEY_WATCH, WatchBeforeApply(baseline_note=note))
        say(f"performance watch: {note}")
        return
    ctx.report(KEY_WATCH, _closing(snapshot, started, minimum))
    _say_missing(snapshot)


def _run_start(watch: dict[str, object]) -> tuple[datetime | None, list[int]]:
    """When the run-start sample was taken, and the queryids it holds (to keep tracking)."""
    from dbmigrate.api.watch import Snapshot

    start = watch.get("runStart")
    if not isinstance(start, dict):
        return None, []
    snapshot = Snapshot.model_validate(start)
    return snapshot.taken_at, sorted({s.queryid for s in snapshot.statements})


def _closing(snapshot: Snapshot, started: datetime | None, minimum: int) -> WatchBeforeApply:
    """The before-apply report, with the window's length and a note when it is too short."""
    from dbmigrate.api.status import WatchBeforeApply

    if started is None:
        return WatchBeforeApply(
            before_apply=snapshot,
            baseline_note="no run-start sample: there is no before window, the verdict can only "
            "be Unavailable",
        )
    seconds = max((snapshot.taken_at - started).total_seconds(), 0.0)
    note = None
    if seconds < minimum:
        note = (
            f"the before window was {seconds:.0f}s, shorter than thresholds.minBaselineSeconds "
            f"({minimum}s): the verdict can only be Inconclusive (set waitForBaseline to wait)"
        )
    say(f"performance watch: before window {seconds:.0f}s" + (f"; {note}" if note else ""))
    return WatchBeforeApply(before_apply=snapshot, baseline_seconds=seconds, baseline_note=note)


def _say_missing(snapshot: Snapshot) -> None:
    for what in snapshot.missing:
        say(f"performance watch: {what}")
