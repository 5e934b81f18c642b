"""What ``kubectl dbmigrate status`` draws: one screen from many sources, as pure functions.

A person who is paged wants, on one screen, where the migration is, why, and what to type next:
the phase and conditions, the plan and its hash, lint, preflight, the backup's evidence, the
apply's progress, the verification, the watch verdict when the resource has one, the step Jobs
and pods, the last Events, and the exact next command when the run waits for something. Every
function here reads a ``Snapshot`` (plain API objects) and returns text lines, so the screen is
unit-tested without a cluster. Sections the status does not carry yet are left out; keys the
plugin does not know (newer operators) are shown generically rather than hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dbmigrate.api.conditions import STALLED
from dbmigrate.api.labels import APPROVE_ANNOTATION, PAUSE_ANNOTATION
from dbmigrate.api.status import TERMINAL_PHASES
from dbmigrate.kubectl.objects import Snapshot, StepJob, meta, pod_state

PLUGIN = "kubectl dbmigrate"
WATCH_CONDITION = "PerformanceVerified"
PERSON_PHASES = ("WaitingForApproval",)  # a run that waits for a person, not for time
RUNNING_PHASES = ("Planning", "BackingUp", "Migrating", "Verifying", "RollingBack")
EVENTS_SHOWN = 8


def _parse_time(text: object) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def age(text: object, now: datetime) -> str:
    """``2026-12-07T10:00:00Z`` as kubectl writes an age: 45s, 3m, 2h, 4d."""
    when = _parse_time(text)
    if when is None:
        return "-"
    seconds = max(0, int((now - when.astimezone(UTC)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _size(n: object) -> str:
    value = float(n) if isinstance(n, int | float) else 0.0
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _yes(value: object) -> str:
    return "yes" if value is True else "no" if value is False else "-"


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows as aligned columns (the first row is the header)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A JSON value as ``key.path: value`` pairs, for sections the plugin draws generically."""
    if isinstance(value, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs += flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(value, list):
        if all(not isinstance(v, Mapping | list) for v in value):
            return [(prefix, ", ".join(str(v) for v in value) or "[]")]
        pairs = []
        for i, item in enumerate(value):
            pairs += flatten(item, f"{prefix}[{i}]")
        return pairs
    return [(prefix, str(value))]


def ref(snap: Snapshot) -> str:
    """``NAME -n NAMESPACE``, as the next command names the resource."""
    return f"{snap.name} -n {snap.namespace}"


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for item in status.get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == kind:
            return item
    return None


def paused(snap: Snapshot) -> bool:
    return PAUSE_ANNOTATION in (meta(snap.migration).get("annotations") or {})


# --- the next command ------------------------------------------------------------------------


def next_step(snap: Snapshot) -> list[str]:
    """What the person should do next, with the exact command, when there is something to do or
    to wait for; empty when the run goes on by itself and there is nothing to add."""
    status = snap.status
    phase = str(status.get("phase") or "Pending")
    approval = status.get("approval") or {}
    who = ref(snap)
    if paused(snap):
        return [
            "paused: the operator starts no new step for this resource.",
            f"resume: {PLUGIN} resume {who}",
        ]
    if phase == "WaitingForApproval":
        plan_hash = approval.get("planHash") or (status.get("plan") or {}).get("planHash")
        lines = [
            f"waits for approval of plan {plan_hash}.",
            f"approve: {PLUGIN} approve {who}",
        ]
        if plan_hash:
            lines.append(
                f"    (or: kubectl annotate dbm/{snap.name} -n {snap.namespace} "
                f"{APPROVE_ANNOTATION}={plan_hash} --overwrite)"
            )
        return lines
    if phase == "WaitingForWindow":
        window = status.get("window") or {}
        opens = window.get("nextOpen") or "its next opening"
        return [f"waits for the maintenance window: it starts by itself at {opens}."]
    if phase == "WaitingForLock":
        holder = str(status.get("waitingFor") or "")
        if "/" in holder:
            ns, name = holder.split("/", 1)
            return [
                f"waits for {holder}, which is changing the same database.",
                f"see it: {PLUGIN} status {name} -n {ns}",
            ]
        return ["waits for another migration of the same database to finish."]
    stalled = condition(status, STALLED)
    failed_step = status.get("failedStep")
    if phase in ("Failed", "RolledBack"):
        lines = []
        retry_at = (status.get("retry") or {}).get("nextAttemptAt")
        if retry_at:
            lines.append(f"retries by itself at {retry_at} (the cause was outside the migration)")
        if failed_step:
            lines.append(f"read why: {PLUGIN} logs {who} --step {failed_step}")
        lines += [
            "fix the cause, then change the spec (a new generation runs), or run it again:",
            f"retry: {PLUGIN} retry {who}",
            f"support bundle: {PLUGIN} report {who}",
        ]
        return lines
    if stalled is not None and stalled.get("status") == "True":
        return [
            f"stalled ({stalled.get('reason')}): {stalled.get('message') or ''}".rstrip(),
            f"it goes on by itself once fixed; follow it: {PLUGIN} status {who} -w",
        ]
    if phase in RUNNING_PHASES:
        step = next((j.step for j in reversed(snap.jobs) if j.state in ("Running", "Pending")), "")
        lines = [f"follow it: {PLUGIN} status {who} -w"]
        if step:
            lines.append(f"its log: {PLUGIN} logs {who} --step {step} -f")
        return lines
    if phase == "Succeeded":
        return [f"undo, if it causes issues: {PLUGIN} rollback {who} --dry-run"]
    return []


# --- the sections ----------------------------------------------------------------------------


def _header(snap: Snapshot, now: datetime) -> list[str]:
    status = snap.status
    metadata = meta(snap.migration)
    phase = str(status.get("phase") or "Pending")
    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    lines = [
        f"DatabaseMigration {snap.namespace}/{snap.name}",
        f"  phase:    {phase}{'  (paused)' if paused(snap) else ''}",
    ]
    if status.get("message"):
        lines.append(f"  message:  {status['message']}")
    versions = f"current {status.get('currentVersion') or '-'}, target "
    versions += str(status.get("targetVersion") or "-")
    lines.append(f"  version:  {versions}")
    lines.append(
        f"  run:      {status.get('runId') or '-'}  (generation {generation}, observed "
        f"{observed if observed is not None else '-'})"
    )
    if status.get("startedAt"):
        finished = status.get("finishedAt")
        lines.append(
            f"  started:  {status['startedAt']} ({age(status['startedAt'], now)} ago)"
            + (f", finished {finished}" if finished else "")
        )
    return lines


def _conditions(snap: Snapshot, now: datetime) -> list[str]:
    items = [c for c in snap.status.get("conditions") or [] if isinstance(c, Mapping)]
    if not items:
        return []
    rows = [["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]]
    rows += [
        [
            str(c.get("type", "")),
            str(c.get("status", "")),
            str(c.get("reason", "")),
            age(c.get("lastTransitionTime"), now),
            str(c.get("message", ""))[:100],
        ]
        for c in items
    ]
    return ["Conditions:", *table(rows)]


def _plan(snap: Snapshot) -> list[str]:
    plan = snap.status.get("plan")
    if not isinstance(plan, Mapping):
        return []
    pending = plan.get("pending") or []
    lines = [
        f"Plan: {len(pending)} pending, {len(plan.get('applied') or [])} applied"
        f" (target {plan.get('target') if plan.get('target') is not None else 'latest'})",
        f"  hash: {plan.get('planHash', '-')}",
    ]
    lines += [
        f"  pending {p.get('version', '?'):>4} {p.get('name', '')}"
        + (f" (resumes after statement {p['resumeFrom']})" if p.get("resumeFrom") else "")
        for p in pending
    ]
    lines += [f"  DRIFT: {d.get('message', '')}" for d in plan.get("driftErrors") or []]
    approval = snap.status.get("approval") or {}
    if approval.get("required"):
        approved = approval.get("approvedHash")
        lines.append(
            "  approval: "
            + (f"approved {approved} at {approval.get('approvedAt')}" if approved else "required")
        )
    return lines


def _lint(snap: Snapshot) -> list[str]:
    lint = snap.status.get("lint")
    if not isinstance(lint, Mapping):
        return []
    verdict = "passed" if lint.get("passed") else "FAILED"
    lines = [
        f"Lint ({lint.get('policy', '?')}): {verdict}, {lint.get('errorCount', 0)} errors, "
        f"{lint.get('warningCount', 0)} warnings, {lint.get('suppressedCount', 0)} waived"
    ]
    for f in (lint.get("findings") or [])[:10]:
        if f.get("suppressed"):
            continue
        lines.append(
            f"  {f.get('severity', '?')} {f.get('rule', '?')} {f.get('file', '?')}:"
            f"{f.get('line', '?')} {f.get('message', '')}"
        )
    return lines


def _preflight(snap: Snapshot) -> list[str]:
    preflight = snap.status.get("preflight")
    if not isinstance(preflight, Mapping):
        return []
    verdict = "passed" if preflight.get("passed") else "FAILED"
    lines = [
        f"Preflight: {verdict} (server {preflight.get('serverVersion') or '?'}, role "
        f"{preflight.get('role') or '?'}, est. build {preflight.get('estimatedBuildSeconds', 0)}s,"
        f" disk {_size(preflight.get('estimatedDiskBytes', 0))})"
    ]
    lines += [
        f"  {c.get('status', '?'):<4} {c.get('name', '')}: {c.get('message', '')}"
        for c in preflight.get("checks") or []
        if c.get("status") != "ok"
    ]
    return lines


def _backup(snap: Snapshot) -> list[str]:
    backup = snap.status.get("backup")
    if not isinstance(backup, Mapping):
        return []
    return [
        f"Backup: {backup.get('path', '?')} ({backup.get('format', '?')}, "
        f"{_size(backup.get('sizeBytes', 0))}), read back: {_yes(backup.get('verified'))}",
        f"  sha256 {backup.get('sha256', '-')}",
        f"  pg_dump {backup.get('pgDumpVersion', '?')}, server {backup.get('serverVersion', '?')},"
        f" {backup.get('restoreListEntries', '?')} entries, finished {backup.get('finishedAt')}",
    ]


def _apply(snap: Snapshot) -> list[str]:
    lines: list[str] = []
    progress = snap.status.get("progress")
    phase = snap.status.get("phase")
    if isinstance(progress, Mapping) and phase == "Migrating":
        percent = progress.get("percent")
        done = f" {percent:.0f}%" if isinstance(percent, int | float) else ""
        lines.append(
            f"Apply progress: version {progress.get('version')} {progress.get('name', '')}, "
            f"statement {progress.get('statementIndex')}/{progress.get('statementsTotal')}"
            f"{' ' + str(progress['phase']) if progress.get('phase') else ''}{done}"
        )
        lines.append(f"  running: {progress.get('statement', '')}")
        if progress.get("waiting"):
            lines.append("  WAITING for a lock, held by:")
            lines += [
                f"    pid {b.get('pid')} {b.get('state') or '?'} "
                f"app={b.get('applicationName') or '-'}"
                for b in progress.get("blockers") or []
            ]
    result = snap.status.get("apply")
    if isinstance(result, Mapping):
        lines.append(f"Apply: {result.get('status', '?')} (run {result.get('runId', '?')})")
        for v in result.get("versions") or []:
            took = v.get("durationSeconds")
            lines.append(
                f"  {v.get('version', '?'):>4} {v.get('name', ''):<34} {v.get('status', '?'):<8}"
                f" {v.get('statementsDone', 0)}/{v.get('statementsTotal', 0)} statements"
                + (f", {took:.2f}s" if isinstance(took, int | float) else "")
            )
        if result.get("error"):
            lines.append(f"  error [{result.get('errorCode') or '?'}]: {result['error']}")
    return lines


def _verification(snap: Snapshot) -> list[str]:
    verification = snap.status.get("verification")
    if not isinstance(verification, Mapping):
        return []
    verdict = "passed" if verification.get("passed") else "FAILED"
    lines = [f"Verification: {verdict}. {verification.get('message', '')}".rstrip()]
    for index in verification.get("indexes") or []:
        lines.append(
            f"  index {index.get('name')}: "
            + ("ok" if index.get("passed") else f"FAILED {index.get('message', '')}")
        )
    for probe in verification.get("probes") or []:
        lines.append(
            f"  probe {probe.get('name')}: "
            + ("uses " if probe.get("passed") else "does NOT use ")
            + str(probe.get("expectedIndex"))
        )
    return lines


def _rollback(snap: Snapshot) -> list[str]:
    record = snap.status.get("rollback")
    asked = snap.status.get("requestedRollback") or {}
    request = snap.status.get("rollbackRequest")
    lines: list[str] = []
    if isinstance(record, Mapping):
        lines += [
            f"Rollback ({record.get('strategy', '?')}): verified {_yes(record.get('verified'))}, "
            f"versions {', '.join(str(v) for v in record.get('versions') or []) or '-'}",
            f"  {record.get('message', '')}",
        ]
    if request:
        if not lines:
            lines.append("Rollback:")
        who = f" by {asked['requestedBy']}" if asked.get("requestedBy") else ""
        why = f": {asked['reason']}" if asked.get("reason") else ""
        lines.append(f"  on demand: migrationrollback/{request}{who}{why}")
    return lines


def _watch(snap: Snapshot) -> list[str]:
    """The watch verdict (``status.watch``, condition PerformanceVerified) drawn generically:
    another part of the operator writes it, and its fields may grow."""
    watch = snap.status.get("watch")
    verdict = condition(snap.status, WATCH_CONDITION)
    if watch is None and verdict is None:
        return []
    lines = ["Watch:"]
    if verdict is not None:
        lines.append(
            f"  {WATCH_CONDITION}={verdict.get('status')} ({verdict.get('reason', '')}): "
            f"{verdict.get('message', '')}".rstrip()
        )
    if isinstance(watch, Mapping | list):
        lines += [f"  {key}: {value}" for key, value in flatten(watch)[:20]]
    return lines


def _retries(snap: Snapshot) -> list[str]:
    """The runs of this generation (``status.retry``) and the last retry request handled."""
    retry = snap.status.get("retry")
    handled = snap.status.get("lastHandledRetry")
    if not isinstance(retry, Mapping) and not handled:
        return []
    lines = ["Retries:"]
    if isinstance(retry, Mapping):
        lines.append(
            f"  run {retry.get('run', 1)} of this generation, {retry.get('automatic', 0)}/"
            f"{retry.get('limit', '?')} automatic retries"
            + (f", next at {retry['nextAttemptAt']}" if retry.get("nextAttemptAt") else "")
        )
        if retry.get("cause"):
            lines.append(f"  last cause: {retry['cause']}")
    if handled:
        lines.append(f"  last retry request handled: {handled}")
    return lines


def _jobs(jobs: Sequence[StepJob], now: datetime) -> list[str]:
    if not jobs:
        return []
    rows = [["STEP", "JOB / POD", "STATE", "AGE", "RUN"]]
    for job in jobs:
        rows.append(
            [
                job.step,
                job.name,
                job.state,
                age(meta(job.job).get("creationTimestamp"), now),
                job.run_id,
            ]
        )
        rows += [
            [
                "",
                f"  {meta(pod).get('name', '')}",
                pod_state(pod),
                age(meta(pod).get("creationTimestamp"), now),
                "",
            ]
            for pod in job.pods
        ]
    return ["Jobs:", *table(rows)]


def _events(events: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    if not events:
        return []
    rows = [["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    for event in list(events)[-EVENTS_SHOWN:]:
        involved = event.get("involvedObject") or {}
        when = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
        rows.append(
            [
                age(when, now),
                str(event.get("type", "")),
                str(event.get("reason", "")),
                f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
                " ".join(str(event.get("message", "")).split())[:100],
            ]
        )
    return [f"Events (last {min(len(events), EVENTS_SHOWN)}):", *table(rows)]


def plan_sections(snap: Snapshot) -> list[str]:
    """The plan, lint and preflight sections: what a person approves."""
    lines: list[str] = []
    for section in (_plan(snap), _lint(snap), _preflight(snap)):
        lines += section
    return lines


def status_screen(snap: Snapshot, now: datetime | None = None) -> list[str]:
    """The whole screen of ``status``, section by section (empty sections left out)."""
    now = now or datetime.now(UTC)
    sections = [
        _header(snap, now),
        _conditions(snap, now),
        _plan(snap),
        _lint(snap),
        _preflight(snap),
        _backup(snap),
        _apply(snap),
        _verification(snap),
        _rollback(snap),
        _watch(snap),
        _retries(snap),
        _jobs(snap.jobs, now),
        _events(snap.events, now),
    ]
    upcoming = next_step(snap)
    if upcoming:
        sections.append(["Next:", *(f"  {line}" for line in upcoming)])
    lines: list[str] = []
    for section in sections:
        if section:
            lines += [*section, ""]
    return lines[:-1] if lines else lines


def status_document(snap: Snapshot) -> dict[str, Any]:
    """``status -o json``: the resource, its Jobs and pods with their state, the Events and the
    next command, for scripts."""
    return {
        "migration": snap.migration,
        "jobs": [
            {
                "name": job.name,
                "step": job.step,
                "runId": job.run_id,
                "generation": job.generation,
                "attempt": job.attempt,
                "state": job.state,
                "pods": [{"name": meta(p).get("name"), "state": pod_state(p)} for p in job.pods],
            }
            for job in snap.jobs
        ],
        "events": [
            {
                "type": e.get("type"),
                "reason": e.get("reason"),
                "message": e.get("message"),
                "object": (e.get("involvedObject") or {}).get("name"),
                "lastTimestamp": e.get("lastTimestamp") or e.get("eventTime"),
            }
            for e in snap.events
        ],
        "next": next_step(snap),
    }


def settled(snap: Snapshot) -> bool:
    """Whether a watch can stop: the run ended, waits for a person, or is paused."""
    phase = str(snap.status.get("phase") or "Pending")
    generation = meta(snap.migration).get("generation")
    current = snap.status.get("observedGeneration") == generation
    return paused(snap) or (current and (phase in TERMINAL_PHASES or phase in PERSON_PHASES))
