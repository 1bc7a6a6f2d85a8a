"""Client-side limits: a token bucket for request/token budgets, and the adaptive (AIMD)
concurrency limit of one endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["AdaptiveLimit", "TokenBucket"]


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


class AdaptiveLimit:
    """How many requests one endpoint may have in flight, found by AIMD.

    It starts at ``start``. While the limit is what holds requests back, each success adds
    one (slow start, until the first overload) or ``1 / limit`` (one per round trip after
    it), up to ``ceiling`` (none: no ceiling of its own). Each overload signal (a 429, a
    503, a timeout) takes off half a request, never going below 1: a round trip in which
    every request is pushed back halves the limit, while a few scattered 429s (a quota's
    bad luck, not a full server) only dent it. Pure bookkeeping: no clock, no lock, no
    event-loop object.

    >>> limit = AdaptiveLimit(4, ceiling=6)
    >>> for _ in range(4):
    ...     limit.acquire()
    >>> limit.room()
    False
    >>> for _ in range(4):
    ...     limit.release(overload=True)   # a whole round trip pushed back: halved
    >>> limit.value, limit.room()
    (2.0, True)
    >>> limit.acquire(); limit.acquire(); limit.release(ok=True)  # saturated: grows by 1 / limit
    >>> limit.value, limit.peak, limit.cuts
    (2.5, 4, 4)
    """

    __slots__ = ("value", "ceiling", "in_flight", "peak", "cuts", "slow_start")

    def __init__(self, start: int, *, ceiling: int | None = None):
        if start < 1 or (ceiling is not None and ceiling < 1):
            msg = f"a concurrency limit must be at least 1, got start={start!r}, ceiling={ceiling!r}"
            raise ValueError(msg)
        self.ceiling = ceiling
        self.value = float(min(start, ceiling) if ceiling is not None else start)
        self.in_flight = 0
        self.peak = 0  # the most requests in flight at once
        self.cuts = 0  # overload signals taken
        self.slow_start = True

    def room(self) -> bool:
        """Whether one more request may go now."""
        return self.in_flight < int(self.value)

    def acquire(self) -> None:
        """Count a request in flight."""
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def release(self, *, ok: bool = False, overload: bool = False) -> None:
        """A request is over: it succeeded (``ok``), was pushed back (``overload``), or neither."""
        saturated = self.in_flight >= int(self.value)
        self.in_flight -= 1
        if overload:
            self.value = max(1.0, self.value - 0.5)
            self.cuts += 1
            self.slow_start = False
        elif ok and saturated:
            grown = self.value + (1.0 if self.slow_start else 1.0 / self.value)
            self.value = grown if self.ceiling is None else min(grown, float(self.ceiling))

    def reset(self, start: int) -> None:
        """Forget the requests in flight (their event loop is gone) and start again from ``start``."""
        self.in_flight = 0
        self.value = float(min(start, self.ceiling) if self.ceiling is not None else start)
        self.slow_start = True
