"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.worker import Worker


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test starts go in this list; every one is stopped afterwards, pass or fail."""
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()
