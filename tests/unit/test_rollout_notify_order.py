"""A rollout's notifications leave in the order its Events were posted, even with two sender
threads and a slow first delivery; another rollout's do not wait behind them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dbmigrate.controller.rollouts import RolloutReconciler

pytestmark = pytest.mark.unit


def test_notifications_of_one_rollout_keep_their_order() -> None:
    reconciler = RolloutReconciler(kube=None)  # type: ignore[arg-type]
    sent: list[tuple[str, str]] = []
    other_sent = threading.Event()

    def send(resource: Any, target: Any, body: str) -> None:
        if body == "first":
            assert other_sent.wait(5), "another rollout's notification waited behind this one"
            time.sleep(0.2)
        sent.append((resource, body))
        if resource == "other":
            other_sent.set()

    reconciler._send = send  # type: ignore[method-assign]
    key = ("apps", "fleet")
    for body in ("first", "second", "third"):
        reconciler._enqueue(key, ("fleet", None, body))  # type: ignore[arg-type]
    reconciler._enqueue(("apps", "other"), ("other", None, "only"))  # type: ignore[arg-type]
    reconciler._senders.shutdown(wait=True)
    assert [body for who, body in sent if who == "fleet"] == ["first", "second", "third"]
    assert sent[0] == ("other", "only")
    assert reconciler._outbox == {}
