"""core.stop.finish: work on a store in a thread is waited for to its end even when the caller
is cancelled meanwhile (the store's close must not run under it); the cancellation comes after."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.stop import finish


async def test_a_cancelled_caller_still_waits_for_the_thread() -> None:
    release, ended = threading.Event(), threading.Event()

    def work() -> None:
        release.wait(10)
        ended.set()

    future = asyncio.ensure_future(asyncio.to_thread(work))
    waiter = asyncio.ensure_future(finish(future))
    await asyncio.sleep(0.05)
    waiter.cancel()  # twice: each is absorbed until the work ends
    await asyncio.sleep(0.05)
    waiter.cancel()
    await asyncio.sleep(0.05)
    assert not waiter.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert ended.is_set()


async def test_the_work_s_error_is_raised() -> None:
    def work() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await finish(asyncio.ensure_future(asyncio.to_thread(work)))
