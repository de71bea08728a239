"""Fixtures of the integration tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.support.worker import Worker


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test starts go in this list; every one still running is killed afterwards, pass
    or fail. SIGKILL to its process group: the test is over and its state is thrown away, so a
    graceful shutdown (seconds per worker: leaving the group, flushing) would buy nothing. A test
    that wants the graceful stop calls ``worker.stop()`` itself."""
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop(signal.SIGKILL)
