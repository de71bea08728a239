"""A circuit breaker per source: after ``failures`` consecutive failed calls it opens (calls fail
at once, no timeout waited); after ``reset`` seconds it lets one probe through (half-open); a
success closes it, a failure opens it again."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    def __init__(
        self, failures: int, reset: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.reset = reset
        self.clock = clock
        self.state = State.CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.opens = 0
        self._probing = False

    def allow(self) -> bool:
        """Whether a call may go to the source now (the half-open probe counts as one)."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN and self.clock() - self.opened_at >= self.reset:
            self.state = State.HALF_OPEN
            self._probing = False
        if self.state is State.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.state = State.CLOSED
        self.consecutive = 0
        self._probing = False

    def failure(self) -> None:
        self.consecutive += 1
        self._probing = False
        if self.state is State.HALF_OPEN or self.consecutive >= self.threshold:
            if self.state is not State.OPEN:
                self.opens += 1
            self.state = State.OPEN
            self.opened_at = self.clock()

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "consecutive_failures": self.consecutive,
            "opens": self.opens,
        }
