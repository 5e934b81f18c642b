"""The pure state machine of a DatabaseMigrationRollout: ``decide_rollout(observed) ->
RolloutDecision``, no I/O, no clock but ``observed.now``.

What it reads: the rollout (spec, status, annotations, generation), its targets (Secret names and
labels) and its children as one list call found them, each reduced to a ``Child`` (its target,
wave, template hash, state and cause). What it returns: the whole status, the children to create
(or bring to the current template), the children to ask for a rollback, Events, and when to look
again. Nothing else is kept between reconciles than what the status and the children say, so a
restarted operator goes on where it was.

One reconcile:

1. Targets are placed in waves (``waves.assign``); a child keeps its wave.
2. Every target is counted by state, per wave and overall: a target without a child of the
   current template is pending; a child is running, waiting (at a gate, or stalled), succeeded
   or failed (Failed, RolledBack, or a performance watch that says ``Regressed``).
3. The failure budgets (``spec.failureBudget``, each wave's ``failureBudget``): when one is
   exceeded the rollout stops (phase Stopped, Stalled=True, ``FailureBudgetExceeded``), names the
   failed targets, starts nothing more, and with ``rollbackOnFailure`` asks the succeeded
   children of the failing wave to roll back (annotation ``dbmigrate.io/rollback``). A new
   generation starts over.
4. Otherwise the current wave starts its pending targets, at most ``maxParallel`` at a time
   (a waiting child holds its slot). Once all its children ended (and, when the template has a
   performance watch, every succeeded one that applied something has its verdict: NoRegression,
   or Inconclusive or Unavailable, which never fail a migration; Regressed is a failure), the
   wave's pause runs: a soak of ``duration`` counted from the wave's end, or ``{}``: until the
   ``dbmigrate.io/promote`` annotation carries a token not handled yet. Then the next wave
   starts in the same reconcile. After the last wave the rollout is Completed (Ready=True); a
   target that appears later joins the last wave and the rollout goes back to Progressing.

A new template (its hash changed) starts the waves over from the first: each child is brought to
the new template only when its wave comes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from dbmigrate.api.conditions import (
    READY,
    RECONCILING,
    STALLED,
    Condition,
    ConditionStatus,
    ConditionType,
    EventReason,
    Reason,
    set_condition,
)
from dbmigrate.api.durations import InvalidDuration, parse_duration
from dbmigrate.api.labels import (
    LABEL_WAVE,
    PROMOTE_ANNOTATION,
    ROLLBACK_ANNOTATION,
    TARGET_ANNOTATION,
    TEMPLATE_HASH_ANNOTATION,
)
from dbmigrate.api.rollout import (
    MAX_FAILED_LISTED,
    DatabaseMigrationRolloutSpec,
    DatabaseMigrationRolloutStatus,
    FailedTarget,
    FailureBudget,
    RolloutPhase,
    Totals,
    WaveState,
    WaveStatus,
)
from dbmigrate.api.status import TERMINAL_PHASES
from dbmigrate.decision.promotion import PERFORMANCE_VERIFIED, REGRESSED
from dbmigrate.decision.waves import Target, assign

ChildState = Literal["running", "waiting", "succeeded", "failed"]
EventType = Literal["Normal", "Warning"]
MAX_REQUEUE = 300.0
ANALYSIS_REQUEUE = 10.0


@dataclass(frozen=True)
class Child:
    """A child DatabaseMigration, reduced to what the rollout needs (``current``: it has the
    current template and its status is of its current generation)."""

    target: str
    name: str
    wave: str
    template_hash: str
    state: ChildState
    reason: str = ""
    message: str = ""
    rollback_token: str | None = None
    verified: bool = False  # its performance verdict is in (not Regressed), or none will come


@dataclass(frozen=True, kw_only=True)
class RolloutObserved:
    """Everything ``decide_rollout`` may look at."""

    name: str
    namespace: str
    generation: int
    spec: DatabaseMigrationRolloutSpec
    status: DatabaseMigrationRolloutStatus
    template_hash: str
    now: datetime
    annotations: Mapping[str, str] = field(default_factory=dict)
    targets: Sequence[Target] = ()
    children: Sequence[Child] = ()
    watch: bool = False  # the template has a performance watch (the analysis gate applies)


@dataclass(frozen=True)
class RolloutEvent:
    """An Event to post on the rollout (each is also sent to spec.notifications)."""

    type: EventType
    reason: Reason | EventReason
    message: str
    wave: str | None = None


@dataclass(frozen=True)
class ChildToStart:
    """A child to create, or to bring to the current template (same name: its target)."""

    target: str
    wave: str


@dataclass(frozen=True)
class RolloutDecision:
    """What the operator must do now: patch the status, then create, annotate, post Events."""

    status: DatabaseMigrationRolloutStatus
    start: tuple[ChildToStart, ...] = ()
    rollback: tuple[str, ...] = ()  # child names to annotate with status.rollbackToken
    events: tuple[RolloutEvent, ...] = ()
    requeue_after: float | None = None


@dataclass
class _Wave:
    """A wave's members during one decision."""

    index: int
    name: str
    pending: list[str] = field(default_factory=list)  # targets without a current child
    children: list[Child] = field(default_factory=list)

    def count(self, state: ChildState) -> int:
        return sum(1 for c in self.children if c.state == state)

    def totals(self) -> Totals:
        states = Counter(c.state for c in self.children)
        return Totals(
            total=len(self.pending) + len(self.children),
            succeeded=states["succeeded"],
            running=states["running"],
            waiting=states["waiting"],
            failed=states["failed"],
            pending=len(self.pending),
        )


def observe_child(item: Mapping[str, Any]) -> Child | None:
    """A child DatabaseMigration (a dict from the list call) reduced to a ``Child``; None when it
    is not one of a rollout's children. Its status is read as plain data, never validated whole:
    the rollout only needs its phase and conditions."""
    meta = item.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    target = notes.get(TARGET_ANNOTATION)
    if not target or LABEL_WAVE not in labels:
        return None
    status = item.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    stalled = conditions.get(STALLED) or {}
    common = {
        "target": target, "name": meta.get("name", ""), "wave": labels[LABEL_WAVE],
        "template_hash": notes.get(TEMPLATE_HASH_ANNOTATION, ""),
        "rollback_token": notes.get(ROLLBACK_ANNOTATION),
    }  # fmt: skip
    phase = status.get("phase")
    if status.get("observedGeneration") != meta.get("generation") or not phase:
        return Child(state="running", **common)
    if phase == "Succeeded":
        verdict = conditions.get(PERFORMANCE_VERIFIED) or {}
        if verdict.get("reason") == REGRESSED:
            return Child(
                state="failed", reason=REGRESSED, message=str(verdict.get("message") or ""),
                **common,
            )  # fmt: skip
        # the analysis is over once a verdict is in (Inconclusive or Unavailable never fail a
        # migration), or when the run applied nothing: then no watch runs and none will come
        over = bool(verdict.get("reason")) or not status.get("apply")
        return Child(state="succeeded", verified=over, **common)
    if phase in TERMINAL_PHASES:
        message = str(stalled.get("message") or status.get("message") or "")
        return Child(state="failed", reason=str(stalled.get("reason") or phase), message=message,
                     **common)  # fmt: skip
    if phase.startswith("WaitingFor") or stalled.get("status") == "True":
        ready = conditions.get(READY) or {}
        return Child(state="waiting", reason=str(ready.get("reason") or phase), **common)
    return Child(state="running", **common)


def watch_enabled(template: Mapping[str, Any]) -> bool:
    """Whether the template (in wire form) has a performance watch, so each child gets a
    ``PerformanceVerified`` verdict the analysis gate waits for."""
    watch = template.get("watch")
    return isinstance(watch, dict) and bool(watch) and watch.get("enabled", True) is not False


def decide_rollout(observed: RolloutObserved) -> RolloutDecision:
    """The next step of the rollout in ``observed`` (see the module docstring)."""
    spec, old = observed.spec, observed.status
    restart = old.template_hash != observed.template_hash
    current = 0 if restart else min(old.current_wave, len(spec.waves) - 1)
    waves = _members(observed, current)
    previous = [] if restart else old.waves
    stopped_before = old.phase == "Stopped" and old.observed_generation == observed.generation
    base = DatabaseMigrationRolloutStatus(
        observed_generation=observed.generation,
        conditions=old.conditions,
        template_hash=observed.template_hash,
        last_handled_promote=old.last_handled_promote,
        rollback_token=None if restart else old.rollback_token,
    )
    plan = _Plan(observed, waves, previous, base)
    budget = _budget_exceeded(observed, waves, current)
    if budget is not None or stopped_before:
        return plan.stop(current, budget)
    return plan.advance(current)


def _members(observed: RolloutObserved, first_open: int) -> list[_Wave]:
    """Each wave's pending targets and current children."""
    spec = observed.spec
    index_of = {wave.name: i for i, wave in enumerate(spec.waves)}
    last = len(spec.waves) - 1
    children = {c.target: c for c in observed.children}
    fixed = {t: index_of.get(c.wave, last) for t, c in children.items()}
    known = {t.name for t in observed.targets}
    targets = [*observed.targets, *(Target(name) for name in children if name not in known)]
    placed = assign(targets, spec.waves, fixed, first_open)
    waves = [_Wave(i, w.name) for i, w in enumerate(spec.waves)]
    for target in sorted(placed):
        wave = waves[placed[target]]
        child = children.get(target)
        if child is not None and child.template_hash == observed.template_hash:
            wave.children.append(child)
        else:
            wave.pending.append(target)
    return waves


def _allowed(budget: FailureBudget | None, total: int) -> int | None:
    """Failures a budget tolerates among ``total`` targets (None: no limit)."""
    if budget is None:
        return None
    limits = []
    if budget.max_failures is not None:
        limits.append(budget.max_failures)
    if budget.max_failure_percent is not None:
        limits.append(budget.max_failure_percent * total // 100)
    return min(limits) if limits else None


def _budget_exceeded(
    observed: RolloutObserved, waves: list[_Wave], current: int
) -> tuple[int, str] | None:
    """(the failing wave, what was exceeded), or None while every budget holds."""
    spec = observed.spec
    for wave in waves[: current + 1]:
        allowed = _allowed(spec.waves[wave.index].failure_budget, wave.totals().total)
        failed = wave.count("failed")
        if allowed is not None and failed > allowed:
            return wave.index, (
                f"wave {wave.name}: {failed} of {wave.totals().total} targets failed, more than "
                f"its failure budget allows ({allowed})"
            )
    total = sum(w.totals().total for w in waves)
    failed = sum(w.count("failed") for w in waves)
    allowed = _allowed(spec.failure_budget, total)
    if allowed is not None and failed > allowed:
        return current, (
            f"{failed} of {total} targets failed, more than the rollout's failure budget "
            f"allows ({allowed})"
        )
    return None


@dataclass
class _Plan:
    """Builds the decision from the waves' members."""

    observed: RolloutObserved
    waves: list[_Wave]
    previous: list[WaveStatus]
    base: DatabaseMigrationRolloutStatus
    events: list[RolloutEvent] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.observed.now

    def _old(self, index: int) -> WaveStatus | None:
        if index < len(self.previous) and self.previous[index].name == self.waves[index].name:
            return self.previous[index]
        return None

    def _wave_status(self, index: int, state: WaveState, **extra: object) -> WaveStatus:
        old, wave = self._old(index), self.waves[index]
        started = old.started_at if old is not None else None
        if started is None and state != "Pending":
            started = self.now
        finished = old.finished_at if old is not None else None
        if state in ("Pending", "Running"):
            finished = None
        elif finished is None:
            finished = self.now
        if old is not None and old.state != state:
            self._wave_events(wave.name, old.state, state)
        elif old is None and state != "Pending":
            self._wave_events(wave.name, "Pending", state)
        fields: dict[str, object] = {
            "name": wave.name, "state": state, "totals": wave.totals(),
            "started_at": started, "finished_at": finished, **extra,
        }  # fmt: skip
        return WaveStatus.model_validate(fields)

    def _wave_events(self, name: str, before: WaveState, after: WaveState) -> None:
        if before == "Pending" and after != "Pending":
            started = RolloutEvent("Normal", EventReason.WAVE_STARTED, f"wave {name} started", name)
            self.events.append(started)
        if after in ("Analyzing", "Soaking", "WaitingForPromote", "Succeeded") and before in (
            "Pending",
            "Running",
        ):
            totals = next(w for w in self.waves if w.name == name).totals()
            text = f"wave {name} ended: {totals.succeeded}/{totals.total} succeeded"
            self.events.append(
                RolloutEvent(
                    "Normal", EventReason.WAVE_COMPLETED, f"{text}, {totals.failed} failed", name
                )
            )

    def _statuses(
        self, current: int, current_state: WaveState, **extra: object
    ) -> list[WaveStatus]:
        out = []
        for index in range(len(self.waves)):
            if index < current:
                out.append(self._wave_status(index, "Succeeded"))
            elif index == current:
                out.append(self._wave_status(index, current_state, **extra))
            else:
                out.append(self._wave_status(index, "Pending"))
        return out

    # --- outcomes ---------------------------------------------------------------------------

    def advance(self, current: int) -> RolloutDecision:
        spec = self.observed.spec
        last = len(self.waves) - 1
        index = current
        while True:
            wave = self.waves[index]
            active = wave.count("running") + wave.count("waiting")
            if wave.pending or active:
                room = max(spec.waves[index].max_parallel - active, 0)
                start = tuple(ChildToStart(t, wave.name) for t in wave.pending[:room])
                message = (
                    f"wave {wave.name} ({index + 1}/{len(self.waves)}): "
                    f"{wave.count('succeeded')}/{wave.totals().total} succeeded, {active} "
                    f"running, {len(wave.pending)} pending"
                )
                return self._decision(
                    index, "Running", "Progressing", Reason.WAVE_PROGRESSING, message, start=start
                )
            unverified = self._unverified(wave)
            if unverified:
                message = (
                    f"wave {wave.name} ended; waiting for the performance verdict of "
                    f"{len(unverified)} target(s): {', '.join(unverified[:5])}"
                )
                return self._decision(
                    index, "Analyzing", "Progressing", Reason.WAITING_FOR_ANALYSIS, message,
                    requeue=ANALYSIS_REQUEUE,
                )  # fmt: skip
            if index == last:
                return self._completed(index)
            pause = spec.waves[index].pause
            old = self._old(index)
            ended = (old.finished_at if old is not None else None) or self.now
            if pause is not None and pause.duration is not None:
                try:
                    soak = parse_duration(pause.duration)
                except InvalidDuration:
                    soak = timedelta(0)
                until = ended + soak
                if self.now < until:
                    left = (until - self.now).total_seconds()
                    message = f"wave {wave.name} ended; soaking until {until.isoformat()}"
                    return self._decision(
                        index, "Soaking", "Paused", Reason.SOAKING, message,
                        requeue=min(max(left, 1.0), MAX_REQUEUE), paused_until=until,
                    )  # fmt: skip
            elif pause is not None:
                token = self.observed.annotations.get(PROMOTE_ANNOTATION, "").strip()
                if not token or token == self.base.last_handled_promote:
                    message = (
                        f"wave {wave.name} ended; waiting for a person: kubectl annotate "
                        f"databasemigrationrollout {self.observed.name} -n "
                        f"{self.observed.namespace} {PROMOTE_ANNOTATION}=<new token> "
                        "--overwrite (kubectl dbmigrate promote)"
                    )
                    return self._decision(
                        index, "WaitingForPromote", "Paused", Reason.WAITING_FOR_PROMOTE, message
                    )
                self.base = self.base.model_copy(update={"last_handled_promote": token})
            index += 1

    def _unverified(self, wave: _Wave) -> list[str]:
        """Succeeded children of ``wave`` whose performance verdict is not in yet."""
        if not self.observed.watch:
            return []
        return [c.target for c in wave.children if c.state == "succeeded" and not c.verified]

    def _completed(self, index: int) -> RolloutDecision:
        totals = self._totals()
        message = f"every wave done: {totals.succeeded}/{totals.total} targets succeeded"
        if totals.failed:
            message += f", {totals.failed} failed within the failure budget"
        return self._decision(index, "Succeeded", "Completed", Reason.ROLLOUT_COMPLETE, message)

    def stop(self, current: int, budget: tuple[int, str] | None) -> RolloutDecision:
        failed = self._failed_targets()
        if budget is None:  # stopped before, in this generation: it stays stopped, saying why
            failing = current
            message = self.observed.status.message or "stopped: the failure budget was exceeded"
        else:
            failing, why = budget
            named = "; ".join(f"{f.target}: {f.reason}: {f.message}" for f in failed[:3])
            message = f"stopped: {why}. Failed: {named}"
        rollback: tuple[str, ...] = ()
        spec = self.observed.spec
        if spec.rollback_on_failure:
            token = f"{self.observed.name}-g{self.observed.generation}-{self.waves[failing].name}"
            self.base = self.base.model_copy(update={"rollback_token": token})
            rollback = tuple(
                c.name
                for c in self.waves[failing].children
                if c.state == "succeeded" and c.rollback_token != token
            )
            if rollback:
                self.events.append(
                    RolloutEvent(
                        "Warning",
                        EventReason.WAVE_ROLLBACK_REQUESTED,
                        f"rolling back {len(rollback)} target(s) of wave "
                        f"{self.waves[failing].name}",
                    )
                )
        state: WaveState = "Failed"
        return self._decision(
            current, state, "Stopped", Reason.FAILURE_BUDGET_EXCEEDED, message, rollback=rollback
        )

    # --- the decision -----------------------------------------------------------------------

    def _totals(self) -> Totals:
        parts = [w.totals() for w in self.waves]
        return Totals(
            total=sum(p.total for p in parts),
            succeeded=sum(p.succeeded for p in parts),
            running=sum(p.running for p in parts),
            waiting=sum(p.waiting for p in parts),
            failed=sum(p.failed for p in parts),
            pending=sum(p.pending for p in parts),
        )

    def _failed_targets(self) -> list[FailedTarget]:
        failed = [
            FailedTarget(
                target=c.target,
                migration=c.name,
                wave=w.name,
                reason=c.reason or "Failed",
                message=(c.message or "")[:1024],
            )
            for w in self.waves
            for c in w.children
            if c.state == "failed"
        ]
        return failed[:MAX_FAILED_LISTED]

    def _decision(
        self,
        current: int,
        state: WaveState,
        phase: RolloutPhase,
        reason: Reason,
        message: str,
        *,
        start: tuple[ChildToStart, ...] = (),
        rollback: tuple[str, ...] = (),
        requeue: float | None = None,
        paused_until: datetime | None = None,
    ) -> RolloutDecision:
        extra: dict[str, object] = {"paused_until": paused_until} if paused_until else {}
        waves = self._statuses(current, state, **extra)
        totals = self._totals()
        old_phase = self.observed.status.phase
        status = self.base.model_copy(
            update={
                "phase": phase,
                "message": message,
                "current_wave": current,
                "current_wave_name": self.waves[current].name,
                "progress": f"{totals.succeeded}/{totals.total}",
                "totals": totals,
                "waves": waves,
                "failed_targets": self._failed_targets(),
                "conditions": _conditions(self.base.conditions, phase, reason, message, self),
            }
        )
        if old_phase != phase and phase in ("Stopped", "Completed"):
            kind: EventType = "Warning" if phase == "Stopped" else "Normal"
            self.events.append(RolloutEvent(kind, reason, message))
        return RolloutDecision(
            status=status, start=start, rollback=rollback, events=tuple(self.events),
            requeue_after=requeue,
        )  # fmt: skip


def _conditions(
    current: list[Condition], phase: RolloutPhase, reason: Reason, message: str, plan: _Plan
) -> list[Condition]:
    """kstatus: Completed is Ready; Stopped is Stalled; anything else is Reconciling."""
    rows: list[tuple[ConditionType, ConditionStatus]]
    if phase == "Completed":
        rows = [(READY, "True"), (RECONCILING, "False"), (STALLED, "False")]
    elif phase == "Stopped":
        rows = [(READY, "False"), (RECONCILING, "False"), (STALLED, "True")]
    else:
        rows = [(READY, "False"), (RECONCILING, "True"), (STALLED, "False")]
    out = list(current)
    for type_, status in rows:
        shown = message if status == "True" or type_ == READY else ""
        out = set_condition(
            out, type_, status, reason, shown, now=plan.now, generation=plan.observed.generation
        )
    return out
