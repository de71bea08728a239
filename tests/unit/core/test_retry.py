"""core.retry: start-up steps tried again while the broker is away, anything else raised."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)
from mode import Service

from app.broker import free_port
from core.retry import Backoff, StartupRetry, describe, retriable
from tables.topics import existing_topics

QUICK = Backoff(first=0.01, cap=0.02)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [Backoff().delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_what_is_retriable() -> None:
    assert retriable(KafkaConnectionError("Unable to bootstrap"))
    assert retriable(NodeNotReadyError())
    assert retriable(RequestTimedOutError())
    assert retriable(ConnectionRefusedError(111, "refused"))
    assert retriable(TimeoutError())
    assert not retriable(TopicAuthorizationFailedError())  # the broker answered "no"
    assert not retriable(ValueError("bad setting"))


async def test_a_closed_port_is_a_retriable_failure() -> None:
    """What aiokafka really raises when nothing listens: the kind of error retried."""
    with pytest.raises(KafkaConnectionError) as caught:
        await existing_topics(f"127.0.0.1:{free_port()}")
    assert retriable(caught.value), describe(caught.value)


async def test_retries_until_the_step_succeeds_and_logs_each_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = [KafkaConnectionError("Unable to bootstrap"), NodeNotReadyError()]

    async def step() -> str:
        if failures:
            raise failures.pop(0)
        return "created"

    with caplog.at_level(logging.INFO, logger="core.retry"):
        result = await StartupRetry("127.0.0.1:9", backoff=QUICK)("create the topics", step)
    assert result == "created"
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "start-up: create the topics failed: broker 127.0.0.1:9 unreachable or not ready "
        "(KafkaConnectionError: Unable to bootstrap); try 2 in 0.0 s"
    )
    assert lines[1].startswith("start-up: create the topics failed: broker 127.0.0.1:9")
    assert "NodeNotReadyError" in lines[1]
    assert "try 3" in lines[1]
    assert lines[2].startswith("start-up: create the topics done after 3 tries")


async def test_other_errors_are_raised_at_once() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        await StartupRetry("127.0.0.1:9", backoff=QUICK)("create the topics", step)
    assert calls == 1


async def test_a_stopping_service_stops_waiting() -> None:
    service = Service()
    await service.start()

    async def step() -> None:
        if not service.should_stop:
            await service.stop()  # the worker got SIGTERM while the broker was away
        raise KafkaConnectionError("Unable to bootstrap")

    retry = StartupRetry("127.0.0.1:9", service, backoff=Backoff(first=30.0, cap=30.0))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(retry("reach the broker", step), 5)  # not the 30 s pause


async def test_a_step_run_later_than_the_start_is_logged_as_its_phase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A producer renewed mid-run is not a start-up: its retries say what they are."""
    failures = [KafkaConnectionError("Unable to bootstrap")]

    async def step() -> None:
        if failures:
            raise failures.pop(0)

    with caplog.at_level(logging.INFO, logger="core.retry"):
        await StartupRetry("127.0.0.1:9", backoff=QUICK)("start it", step, "producer renewal")
    assert caplog.messages[0].startswith(
        "producer renewal: start it failed: broker 127.0.0.1:9 unreachable or not ready"
    )
    assert caplog.messages[1].startswith("producer renewal: start it done after 2 tries")
