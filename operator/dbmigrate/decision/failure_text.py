"""What a failed step Job's message says: the step's own words first, the Job controller's last.

A person reading ``status.message``, the Stalled/Ready condition or the Warning Event at night
needs the cause ("password authentication failed", "probe by-email does not use idx_x"), not the
Job controller's "BackoffLimitExceeded". So the message of a failed step is, in this order:

1. what the step reported in the status (``status.apply.error``, the failing checks of
   ``status.verification``), when it did;
2. else what its pod said when it ended (``JobObservation.termination_message``: the error the
   step wrote as its termination message, or the end of its log after a crash);
3. the Job controller's reason and message, as a suffix in parentheses.

Where the words name a cause the spec can fix, a hint says where: a refused login names the
Secret and its key (never a value: the operator never reads one).
"""

from __future__ import annotations

from dbmigrate.api.evidence import VerificationResult
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.decision.model import JobObservation

MAX_WORDS = 600  # of the step's own words in a message


def step_words(job: JobObservation) -> str:
    """The last line the step's pod left as its termination message ('' if none)."""
    lines = [line.strip() for line in job.termination_message.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= MAX_WORDS else last[: MAX_WORDS - 3] + "..."


def credentials_hint(spec: DatabaseMigrationSpec, words: str) -> str:
    """A hint naming the Secret and key behind a login the database refused ('' otherwise)."""
    if "authentication failed" not in words.lower():
        return ""
    ref = spec.database.secret_ref
    keys = f"key {ref.uri_key}" if ref.uri_key else f"keys {ref.user_key}, {ref.password_key}"
    return (
        f"; the database refused the credentials from Secret {ref.name} ({keys}, "
        "spec.database.secretRef): correct them in the Secret"
    )


def verification_words(result: VerificationResult) -> str:
    """Each failed index and probe, by name, with the index it expected and why it failed."""
    parts = [f"index {i.name}: {i.message}" for i in result.indexes if not i.passed]
    parts += [
        f"probe {p.name} (expects index {p.expected_index}): {p.message}"
        for p in result.probes
        if not p.passed
    ]
    return "; ".join(parts) or result.message


def job_failed(
    spec: DatabaseMigrationSpec, step: str, job: JobObservation, reported: str | None = None
) -> str:
    """``the STEP Job NAME failed: WORDS[; hint] (JOB CONTROLLER'S REASON)``."""
    words = reported or step_words(job)
    hint = credentials_hint(spec, words)
    if not words:
        return f"the {step} Job {job.name} failed: {job.message or 'see its logs'}"
    suffix = f" ({job.message})" if job.message else ""
    return f"the {step} Job {job.name} failed: {words}{hint}{suffix}"
