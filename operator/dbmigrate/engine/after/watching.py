"""The watch after a migration: sample the counters through a window and compare with the baseline.

``take_baseline`` samples the before window (two snapshots ``window`` apart); ``watch`` samples the
after window every ``interval`` for ``duration`` and returns the verdict (``compare``). Each sample
opens its own short connection (a watch of hours must survive a server restart or a network
blip between samples), and the probes are timed once, in the first sample after the migration.
A Regressed verdict ends the watch early unless asked to watch to the end: a regression is acted
on at once, while NoRegression needs the whole window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import psycopg

from dbmigrate.api.watch import Baseline, Snapshot, WatchReport, WatchThresholds
from dbmigrate.engine.after.compare import compare
from dbmigrate.engine.after.probes import Probe
from dbmigrate.engine.after.snapshot import take_snapshot

log = logging.getLogger(__name__)

KEPT_SAMPLES = 20
"""Samples kept besides the first: an entry's delta may start at any kept sample holding it."""

Connector = Callable[[], AbstractContextManager[psycopg.Connection]]


@dataclass(frozen=True)
class WatchSettings:
    """How long and how often to sample, and what to judge by."""

    duration_seconds: float
    interval_seconds: float
    thresholds: WatchThresholds = field(default_factory=WatchThresholds)
    probes: Sequence[Probe] = ()
    new_indexes: Sequence[tuple[str, str]] | None = None
    stop_on_regression: bool = True


def _sample(
    connect: Connector,
    thresholds: WatchThresholds,
    probes: Sequence[Probe] = (),
    track: Sequence[int] = (),
) -> Snapshot:
    with connect() as conn:
        return take_snapshot(conn, thresholds, probes, track)


def _tracked(*snapshots: Snapshot) -> list[int]:
    """The queryids the snapshots hold: the next sample keeps them even below the top-N."""
    return sorted({s.queryid for snap in snapshots for s in snap.statements})


def take_baseline(
    connect: Connector,
    window_seconds: float,
    thresholds: WatchThresholds | None = None,
    probes: Sequence[Probe] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> Baseline:
    """The before window: a snapshot now and another ``window_seconds`` later (with the probes'
    timings)."""
    limits = thresholds or WatchThresholds()
    start = _sample(connect, limits)
    sleep(window_seconds)
    end = _sample(connect, limits, probes, _tracked(start))
    return Baseline(start=start, end=end)


def watch(
    connect: Connector,
    baseline: Baseline,
    settings: WatchSettings,
    on_sample: Callable[[WatchReport], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WatchReport:
    """Sample every ``interval`` until ``duration`` has passed (at least twice), comparing each
    time; ``on_sample`` sees every report (the last one is the verdict)."""
    limits = settings.thresholds
    deadline = clock() + settings.duration_seconds
    samples = [_sample(connect, limits, settings.probes, _tracked(baseline.end))]
    taken = 1
    while True:
        sleep(max(min(settings.interval_seconds, deadline - clock()), 0.0))
        samples.append(_sample(connect, limits, (), _tracked(baseline.end, samples[-1])))
        taken += 1
        samples = [samples[0], *samples[1:][-KEPT_SAMPLES:]]
        report = compare(baseline, samples, limits, new_indexes=settings.new_indexes)
        report.samples = taken
        log.info("watch sample %d: %s (%s)", taken, report.verdict, report.reason)
        if on_sample is not None:
            on_sample(report)
        if report.verdict == "Regressed" and settings.stop_on_regression:
            return report
        if clock() >= deadline:
            return report
