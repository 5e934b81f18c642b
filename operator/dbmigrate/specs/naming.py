"""Deterministic names and labels of the objects the operator creates for a DatabaseMigration.

Restart safety rests on these names: after a crash the operator computes the same Job name again,
finds the Job (or gets AlreadyExists) and never starts a step twice. Every name is a valid DNS-1123
label (at most 63 characters, lowercase alphanumerics and '-') because Job names end up in the
``job-name`` label of their Pods. A name that would be too long, or that had to be changed (a '.'
in the resource name), keeps a readable prefix and gets a hash suffix of the full name, so two
different resources never share a name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from dbmigrate.api.labels import (
    APP_NAME,
    LABEL_ATTEMPT,
    LABEL_GENERATION,
    LABEL_MANAGED_BY,
    LABEL_MIGRATION,
    LABEL_NAME,
    LABEL_STEP,
    MANAGER,
)

MAX_NAME = 63
HASH_LENGTH = 8

_LABEL_CHARS = re.compile(r"[^a-z0-9-]")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def short_hash(text: str, length: int = HASH_LENGTH) -> str:
    """The first ``length`` hex digits of the sha256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def is_dns_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 label (what Job, ConfigMap and label values accept)."""
    return len(name) <= MAX_NAME and bool(_DNS_LABEL.match(name))


def dns_label(prefix: str, suffix: str = "") -> str:
    """``prefix + suffix`` as a DNS-1123 label; the prefix is cut and hashed when needed.

    ``suffix`` (such as ``-apply-g3``) is kept whole so the step and generation stay readable.
    """
    full = prefix + suffix
    if is_dns_label(full):
        return full
    cleaned = _LABEL_CHARS.sub("-", prefix.lower())
    room = MAX_NAME - len(suffix) - HASH_LENGTH - 1
    if room < 1:
        raise ValueError(f"name suffix {suffix!r} leaves no room for a name within 63 characters")
    head = cleaned[:room].strip("-") or "x"
    return f"{head}-{short_hash(full)}{suffix}"


def job_name(resource: str, step: str, generation: int, attempt: int = 1) -> str:
    """``<resource>-<step>-g<generation>``, shortened to 63 characters with a hash if needed.

    A later attempt of the same step in the same run (a plan made again after waiting for the
    database lock) gets ``-a<attempt>`` appended: ``orders-plan-g3-a2``.
    """
    return dns_label(resource, f"-{step}-g{generation}{_attempt_suffix(attempt)}")


def _attempt_suffix(attempt: int) -> str:
    return f"-a{attempt}" if attempt > 1 else ""


def attempt_of(name: str, step: str, generation: int) -> int:
    """The attempt number ``job_name`` put into ``name`` (1 without an ``-a<n>`` suffix)."""
    found = re.search(rf"-{re.escape(step)}-g{generation}(?:-a([0-9]+))?$", name)
    return int(found.group(1)) if found and found.group(1) else 1


def latest_attempt(names: Iterable[str], step: str, generation: int) -> int:
    """The highest attempt among the Job ``names`` of ``step`` in ``generation`` (1 if none)."""
    return max((attempt_of(n, step, generation) for n in names), default=1)


def inline_config_map_name(resource: str) -> str:
    """The ConfigMap the operator writes from ``spec.source.inline``."""
    return dns_label(resource, "-migrations")


def run_spec_config_map_name(resource: str) -> str:
    """The ConfigMap keeping the spec the run under way started with (``pinning``)."""
    return dns_label(resource, "-run-spec")


def step_service_account_name(resource: str) -> str:
    """The service account of the step pods when ``spec.jobs.serviceAccountName`` is unset."""
    return dns_label(resource, "-dbmigrate-step")


def status_role_name(resource: str) -> str:
    """The Role (and RoleBinding) that lets the step pods report into this resource's status."""
    return dns_label(resource, "-dbmigrate-status")


def label_value(value: str) -> str:
    """``value`` usable as a label value (63 characters at most; hashed when longer)."""
    return dns_label(value)


def run_id(resource: str, uid: str, generation: int, run: int = 1) -> str:
    """The identity of one run, written to the history table: readable and unique. A retry of
    the same generation (its ``run`` 2, 3, ...) gets ``-r<run>`` appended."""
    suffix = f"-r{run}" if run > 1 else ""
    return f"{resource}-g{generation}-{uid.replace('-', '')[:8]}{suffix}"


def common_labels(resource: str) -> dict[str, str]:
    """Labels on every object created for ``resource`` (the runtime selects Jobs by them)."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_MANAGED_BY: MANAGER,
        LABEL_MIGRATION: label_value(resource),
    }


def job_selector(resource: str) -> str:
    """The label selector of every Job of ``resource``, for a list call."""
    return f"{LABEL_MIGRATION}={label_value(resource)},{LABEL_MANAGED_BY}={MANAGER}"


def step_labels(resource: str, step: str, generation: int, attempt: int = 1) -> dict[str, str]:
    """The labels of a step Job and its Pods (a later attempt also carries its number)."""
    labels = {**common_labels(resource), LABEL_STEP: step, LABEL_GENERATION: str(generation)}
    if attempt > 1:
        labels[LABEL_ATTEMPT] = str(attempt)
    return labels
