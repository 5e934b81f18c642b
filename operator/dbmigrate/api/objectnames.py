"""Names of Kubernetes objects a spec refers to: checked when the resource is applied.

A Secret, ConfigMap, PersistentVolumeClaim, ServiceAccount or workload name that no object can
have (``My Secret``, ``web app``) would only fail in a Job hours later, or never be found. The
API server refuses it at once: ``ObjectName`` is a string with the DNS-subdomain rule of object
names (lowercase letters, digits, ``-`` and ``.``, starting and ending with a letter or digit,
at most 253 characters) as a CEL rule with a readable message in the CRD, and as the same check
in Python, so the operator's model agrees with the API server.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_LENGTH = 253
NAME_HELP = (
    "must be a valid object name: lowercase letters, digits, '-' and '.', starting and ending "
    "with a letter or digit (a DNS subdomain, at most 253 characters)"
)
_PATTERN = re.compile(DNS_SUBDOMAIN)


def _cel_pattern() -> str:
    """DNS_SUBDOMAIN inside a single-quoted CEL string (its backslashes escaped)."""
    return DNS_SUBDOMAIN.replace("\\", "\\\\")


def _check(value: str) -> str:
    if not _PATTERN.match(value):
        raise ValueError(f"{value!r} {NAME_HELP}")
    return value


OBJECT_NAME_RULE: dict[str, str] = {
    "rule": f"self.matches('{_cel_pattern()}')",
    "message": NAME_HELP,
}

ObjectName = Annotated[
    str,
    AfterValidator(_check),
    Field(
        min_length=1,
        max_length=MAX_LENGTH,
        json_schema_extra={"x-kubernetes-validations": [dict(OBJECT_NAME_RULE)]},
    ),
]
