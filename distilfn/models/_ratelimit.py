"""A client-side rate limit: a token bucket that tells each caller how long to wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``per_minute`` tokens refilled evenly, up to ``burst`` (default: one second's worth).

    :meth:`reserve` takes the tokens at once, letting the bucket go into debt, and returns
    how long the caller must wait; later callers wait behind the debt. It holds no lock
    and no event-loop object, so one bucket serves any number of tasks and loops.

    >>> clock = iter([0.0] * 4).__next__
    >>> bucket = TokenBucket(600, clock=clock)   # 10 per second, burst 10
    >>> bucket.reserve(10), bucket.reserve(1), bucket.reserve(2)
    (0.0, 0.1, 0.3)
    """

    def __init__(self, per_minute: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        if per_minute <= 0:
            msg = f"a rate limit must be a positive number per minute, got {per_minute!r}"
            raise ValueError(msg)
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, self.rate)
        self.tokens = self.capacity
        self._clock = clock
        self._updated = clock()

    def reserve(self, cost: float) -> float:
        """Take ``cost`` tokens now; return the seconds to wait before using them."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` tokens are ours."""
        delay = self.reserve(cost)
        if delay > 0:
            await asyncio.sleep(delay)
