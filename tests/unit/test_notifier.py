"""Webhook delivery against a real HTTP server on 127.0.0.1: retries, backoff, timeouts, and a
URL that never shows up in an error or a log line."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from dbmigrate.api.spec import UrlSecretRef
from dbmigrate.controller.webhooks import Delivery, Notifier, RetryPolicy, post_with_retries
from dbmigrate.decision.notifications import DeliveryKey, DeliveryResult, Target
from tests.webhook_receiver import TOKEN, Receiver, free_port, running_receiver

BODY = {"event": "Succeeded", "name": "orders"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


class Waits:
    """Records the backoff waits (and waits for real, shortly)."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)
        await asyncio.sleep(0)


def post(url: str, policy: RetryPolicy, waits: Waits) -> DeliveryResult:
    return asyncio.run(post_with_retries(url, BODY, policy, sleep=waits))


def test_500_then_200_is_delivered_on_the_second_attempt(receiver: Receiver) -> None:
    receiver.script = [(500, 0.0), (200, 0.0)]
    waits = Waits()
    result = post(receiver.url(), RetryPolicy(attempts=4, timeout=2, backoff=1.5), waits)
    assert result == DeliveryResult(True, 2)
    assert waits.seen == [1.5]
    assert receiver.received() == [BODY, BODY]
    assert receiver.requests[0]["type"] == "application/json"
    assert receiver.requests[0]["path"] == f"/hooks/{TOKEN}"


def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(
    receiver: Receiver,
) -> None:
    receiver.script = [(503, 0.0)] * 5
    waits = Waits()
    result = post(receiver.url(), RetryPolicy(attempts=4, backoff=1, max_backoff=3), waits)
    assert result == DeliveryResult(False, 4, "the receiver answered HTTP 503")
    assert waits.seen == [1, 2, 3]  # doubling, capped
    assert len(receiver.requests) == 4


def test_a_permanent_refusal_is_not_retried(receiver: Receiver) -> None:
    receiver.script = [(404, 0.0), (200, 0.0)]
    waits = Waits()
    result = post(receiver.url(), RetryPolicy(attempts=4), waits)
    assert result == DeliveryResult(False, 1, "the receiver answered HTTP 404")
    assert waits.seen == [] and len(receiver.requests) == 1


def test_a_receiver_that_is_down_refuses_every_attempt() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"
    waits = Waits()
    result = post(url, RetryPolicy(attempts=3, backoff=0.5), waits)
    assert result == DeliveryResult(False, 3, "cannot connect (ConnectionRefusedError)")
    assert waits.seen == [0.5, 1.0]


def test_a_slow_receiver_exceeds_the_timeout_of_each_attempt(receiver: Receiver) -> None:
    receiver.script = [(200, 1.5), (200, 1.5)]
    began = time.monotonic()
    result = post(receiver.url(), RetryPolicy(attempts=2, timeout=0.3, backoff=0.1), Waits())
    elapsed = time.monotonic() - began
    assert result == DeliveryResult(False, 2, "no answer within 0.3s")
    assert elapsed < 1.4  # both attempts gave up before the receiver answered either
    assert len(receiver.requests) == 2


def test_the_real_backoff_waits(receiver: Receiver) -> None:
    receiver.script = [(500, 0.0), (429, 0.0), (200, 0.0)]
    began = time.monotonic()
    result = asyncio.run(
        post_with_retries(receiver.url(), BODY, RetryPolicy(attempts=3, backoff=0.2))
    )
    assert result == DeliveryResult(True, 3)
    assert time.monotonic() - began >= 0.6  # 0.2 + 0.4


def _notifier(
    url: str | None, results: list[tuple[Delivery, DeliveryResult]], done: threading.Event
) -> Notifier:
    def read_secret(namespace: str, name: str, key: str) -> str | None:
        assert (namespace, name, key) == ("apps", "hooks", "url")
        return url

    def on_result(delivery: Delivery, result: DeliveryResult) -> None:
        results.append((delivery, result))
        done.set()

    return Notifier(read_secret, on_result, RetryPolicy(attempts=2, timeout=2, backoff=0.05))


def _delivery(target: Target | None = None) -> Delivery:
    target = target or Target(name="hook", source="Resource", secret_ref=UrlSecretRef(name="hooks"))
    key = DeliveryKey("orders-g1-3f2c1a9e", "Succeeded", target.source, target.name)
    return Delivery("apps", "orders", key, target, BODY)


def test_notifier_delivers_once_in_the_background_and_reports(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.script = [(200, 0.5)]
    results: list[tuple[Delivery, DeliveryResult]] = []
    done = threading.Event()
    notifier = _notifier(receiver.url(), results, done)
    try:
        began = time.monotonic()
        future = notifier.submit(_delivery())
        assert time.monotonic() - began < 0.2  # submit does not wait for the receiver
        assert isinstance(future, Future)
        assert notifier.submit(_delivery()) is None  # already under way in this process
        assert done.wait(10)
        future.result(timeout=5)
    finally:
        notifier.close()
    assert [r for _, r in results] == [DeliveryResult(True, 1)]
    assert receiver.received() == [BODY]
    assert TOKEN not in caplog.text
    assert "delivered after 1 attempt(s)" in caplog.text


def test_notifier_reports_a_missing_url_without_sending(receiver: Receiver) -> None:
    results: list[tuple[Delivery, DeliveryResult]] = []
    done = threading.Event()
    notifier = _notifier(None, results, done)
    try:
        notifier.submit(_delivery())
        assert done.wait(10)
        environ_target = Target(name="ops", source="Operator", url_env="NOT_SET_ANYWHERE")
        done.clear()
        notifier.environ = {}
        notifier.submit(_delivery(environ_target))
        assert done.wait(10)
        done.clear()
        notifier.submit(Delivery("apps", "orders", _delivery().key, None, BODY))
        assert done.wait(10)
    finally:
        notifier.close()
    assert [r for _, r in results] == [
        DeliveryResult(False, 0, "Secret hooks has no key url (or it is empty)"),
        DeliveryResult(False, 0, "the operator's environment variable NOT_SET_ANYWHERE is not set"),
        DeliveryResult(False, 0, "target hook is no longer configured"),
    ]
    assert receiver.requests == []


def test_notifier_reads_an_operator_target_from_its_environment(receiver: Receiver) -> None:
    results: list[tuple[Delivery, DeliveryResult]] = []
    done = threading.Event()
    notifier = _notifier(None, results, done)
    notifier.environ = {"OPS_URL": receiver.url()}
    try:
        notifier.submit(_delivery(Target(name="ops", source="Operator", url_env="OPS_URL")))
        assert done.wait(10)
    finally:
        notifier.close()
    assert [r for _, r in results] == [DeliveryResult(True, 1)]
    assert len(receiver.requests) == 1
