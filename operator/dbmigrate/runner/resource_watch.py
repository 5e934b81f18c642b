"""``dbmigrate watch`` as the operator's watch step: the baseline from the resource's status, and
every sample and the verdict reported back into it.

With ``--report-to`` (and no ``--baseline FILE``) the before window is the run's own:
``status.watch.runStart`` (the plan step's sample) and ``.beforeApply`` (the apply step's,
``runner.baseline``); the new indexes are those the run's apply created. ``StatusSink`` reports
``status.watch`` (state Watching) with each sample's comparison, so ``kubectl describe`` shows
the watch as it goes, and the verdict at the end (state Done), which the operator turns into the
PerformanceVerified condition. Before each report it checks that the resource is still at this
run: a watch whose resource started another run meanwhile stops (``RunChanged``) rather than
write its verdict into the new run's status. A watch without a baseline reports Unavailable,
saying why: the watch never fails a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbmigrate.api.stepnames import KEY_APPLY, KEY_WATCH
from dbmigrate.runner.context import StepContext

if TYPE_CHECKING:
    from dbmigrate.api.status import WatchProgress
    from dbmigrate.api.watch import Baseline, WatchReport, WatchThresholds


class RunChanged(Exception):
    """The resource started another run while this watch sampled."""


def baseline_from_status(ctx: StepContext) -> tuple[Baseline | None, str]:
    """The run's before window from its status, or None and why there is none."""
    from dbmigrate.api.watch import Baseline, Snapshot

    watch = ctx.resource_status().get(KEY_WATCH) or {}
    start, end = watch.get("runStart"), watch.get("beforeApply")
    if not start or not end:
        why = watch.get("baselineNote") or (
            "no baseline: the plan and apply steps did not sample the database "
            "(status.watch.runStart and .beforeApply are missing)"
        )
        return None, str(why)
    return Baseline(start=Snapshot.model_validate(start), end=Snapshot.model_validate(end)), ""


def run_new_indexes(status: dict[str, Any]) -> list[tuple[str, str]] | None:
    """(schema, index) of every index the run's apply created; None when it reported none."""
    apply = status.get(KEY_APPLY)
    if not apply:
        return None
    return [
        (obj.get("schema") or "public", obj["name"])
        for version in apply.get("versions") or []
        if version.get("status") == "applied"
        for obj in version.get("createdObjects") or []
        if obj.get("kind") == "index"
    ]


class StatusSink:
    """Reports the watch into ``status.watch``: started, each sample, the verdict."""

    def __init__(self, ctx: StepContext, duration: float, interval: float) -> None:
        from dbmigrate.api.status import WatchProgress

        self.ctx = ctx
        started = datetime.now(UTC)
        self.progress: WatchProgress = WatchProgress(
            state="Watching",
            started_at=started,
            ends_at=started + timedelta(seconds=duration),
            interval_seconds=interval,
        )

    def start(self) -> None:
        """The watch has started (state Watching, no sample yet)."""
        self.ctx.report(KEY_WATCH, self.progress)

    def sample(self, report: WatchReport) -> None:
        """One more sample's comparison (its verdict provisional); RunChanged when the
        resource is at another run now."""
        self._still_this_run()
        update = {"samples": report.samples, "last_sample_at": datetime.now(UTC)}
        self.ctx.progress(KEY_WATCH, self.progress.model_copy(update={**update, "report": report}))

    def finish(self, report: WatchReport) -> None:
        """The verdict (state Done): what the operator acts on."""
        done = {"state": "Done", "samples": report.samples, "report": report}
        self.ctx.report(KEY_WATCH, self.progress.model_copy(update=done))

    def unavailable(self, why: str, thresholds: WatchThresholds) -> WatchReport:
        """Report (and return) the Unavailable verdict of a watch that cannot compare."""
        from dbmigrate.api.watch import WatchReport

        report = WatchReport(
            verdict="Unavailable", reason=why, thresholds=thresholds, decided_at=datetime.now(UTC)
        )
        self.finish(report)
        return report

    def _still_this_run(self) -> None:
        read = getattr(self.ctx.reporter, "read_status", None)
        if read is None or self.ctx.run_id is None:
            return
        status = read()
        if status is not None and status.get("runId") not in (None, self.ctx.run_id):
            raise RunChanged(f"the resource is at run {status.get('runId')} now")
