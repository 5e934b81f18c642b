"""Kubernetes Events on every transition, so ``kubectl describe dbm`` tells the story.

Events are core/v1 Events about the DatabaseMigration, with ``source.component`` set to the
operator. They are a courtesy: a failure to post one is logged and never fails the reconcile.
The reconcile posts an Event only after the status patch that records the transition succeeded,
so a restart does not repeat it (at most it loses one, never doubles the status).
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from typing import Any, Literal

from dbmigrate import API_GROUP, API_VERSION, KIND
from dbmigrate.api.conditions import EventReason
from dbmigrate.api.status import ConditionReason
from dbmigrate.controller.kube import ApiError, Kube

log = logging.getLogger("dbmigrate.events")

COMPONENT = "dbmigrate-operator"
MAX_MESSAGE = 1024
EventType = Literal["Normal", "Warning"]


def event_body(
    resource: dict[str, Any],
    event_type: EventType,
    reason: ConditionReason | EventReason,
    message: str,
    *,
    now: datetime,
    instance: str = "",
) -> dict[str, Any]:
    """The core/v1 Event object about ``resource`` (a DatabaseMigration as a dict)."""
    meta = resource["metadata"]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": resource.get("kind") or KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": event_type,
        "reason": reason,
        "message": text,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """Posts Events through the API; never raises."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.instance = socket.gethostname()[:128]

    def emit(
        self,
        resource: dict[str, Any],
        event_type: EventType,
        reason: ConditionReason | EventReason,
        message: str,
    ) -> None:
        body = event_body(
            resource, event_type, reason, message, now=datetime.now(UTC), instance=self.instance
        )
        meta = resource["metadata"]
        try:
            self.kube.create(body)
        except ApiError as exc:
            log.warning(
                "could not post Event %s for %s/%s: %s",
                reason,
                meta["namespace"],
                meta["name"],
                exc,
            )
