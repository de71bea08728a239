"""The circuit breaker: opens after N consecutive failures, lets one probe through after the
reset time (half-open), closes on its success, opens again on its failure."""

from __future__ import annotations

from sources.breaker import Breaker, State


def state(b: Breaker) -> State:
    return b.state  # (a call: no narrowing between the steps)


def test_breaker_states() -> None:
    now = [0.0]
    b = Breaker(failures=3, reset=2.0, clock=lambda: now[0])
    b.failure()
    b.success()  # a success resets the count
    b.failure()
    b.failure()
    assert state(b) is State.CLOSED
    assert b.allow()
    b.failure()
    assert state(b) is State.OPEN
    assert not b.allow()
    now[0] = 1.9
    assert not b.allow()
    now[0] = 2.0
    assert b.allow()  # the half-open probe
    assert state(b) is State.HALF_OPEN
    assert not b.allow()  # one probe at a time
    b.failure()  # the probe failed: open again, for another reset period
    assert state(b) is State.OPEN
    assert not b.allow()
    now[0] = 4.0
    assert b.allow()
    b.success()
    assert state(b) is State.CLOSED
    assert b.allow()
    assert b.as_dict() == {"state": "closed", "consecutive_failures": 0, "opens": 2}
