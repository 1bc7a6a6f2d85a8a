"""Client-side limits: a token bucket for request/token budgets, and the adaptive (AIMD)
concurrency limit of one endpoint."""

from __future__ import annotations

import asyncio
import math
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
    """How many requests one endpoint may have in flight, found by AIMD over round trips.

    It starts at ``start`` and judges each round trip: a window of as many answers as the
    limit. When more than ``tolerance`` of a window's answers were pushed back (429, 503,
    a timeout), the limit is halved (never below 1); otherwise, if the limit was reached
    in that window, it grows by one, up to ``ceiling`` (none: no ceiling of its own).
    Until the first cut it grows by one per success instead (slow start), so a server
    with room is filled in a few round trips. The tolerance keeps a quota's scattered
    429s from cutting the limit of a server that is not full; a full server pushes back
    much more than that. It does not grow while answers come back slower than twice the
    fastest seen (plus 50 ms): a server that queues what it cannot serve (llama.cpp with
    all slots busy) says so by its latency long before requests time out. Pure
    bookkeeping: no clock, no lock, no event-loop object (the caller measures latency).

    >>> limit = AdaptiveLimit(4, ceiling=6)
    >>> for _ in range(4):
    ...     limit.acquire()
    >>> limit.room()
    False
    >>> for _ in range(4):
    ...     limit.release(overload=True)   # a whole round trip pushed back: halved
    >>> limit.value, limit.room(), limit.cuts
    (2, True, 1)
    >>> for _ in range(2):
    ...     limit.acquire()
    >>> limit.release(ok=True); limit.release(ok=True)  # a round trip at the limit, no 429: one more
    >>> limit.value, limit.peak
    (3, 4)
    """

    __slots__ = ("value", "ceiling", "tolerance", "in_flight", "peak", "cuts", "slow_start", "fastest", "_answers",
                 "_pushed", "_reached", "_queued")

    def __init__(self, start: int, *, ceiling: int | None = None, tolerance: float = 0.2):
        if start < 1 or (ceiling is not None and ceiling < 1):
            msg = f"a concurrency limit must be at least 1, got start={start!r}, ceiling={ceiling!r}"
            raise ValueError(msg)
        self.ceiling = ceiling
        self.tolerance = tolerance
        self.in_flight = 0
        self.peak = 0  # the most requests in flight at once
        self.cuts = 0  # times the limit was halved
        self.fastest = math.inf  # the shortest latency of a successful answer, in seconds
        self.reset(start)

    def room(self) -> bool:
        """Whether one more request may go now."""
        return self.in_flight < self.value

    def acquire(self) -> None:
        """Count a request in flight."""
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight
        if self.in_flight >= self.value:
            self._reached = True

    def release(self, *, ok: bool = False, overload: bool = False, latency: float | None = None) -> None:
        """A request is over: it succeeded (``ok``, in ``latency`` seconds), was pushed back
        (``overload``), or neither."""
        binding = self.in_flight >= self.value  # the limit is what holds requests back now
        self.in_flight -= 1
        if not (ok or overload):
            return
        self._answers += 1
        self._pushed += overload
        queued = False
        if ok and latency is not None:
            self.fastest = min(self.fastest, latency)
            queued = latency > 2 * self.fastest + 0.05
            self._queued = self._queued or queued
        if self.slow_start and ok and binding and not queued:
            self._grow()
        if self._answers < self.value:
            return
        if self._pushed > self.tolerance * self._answers:  # judge the round trip
            self.value = max(1, self.value // 2)
            self.cuts += 1
            self.slow_start = False
        elif self._reached and not self.slow_start and not self._queued:
            self._grow()
        self._answers = self._pushed = 0
        self._reached = self.in_flight >= self.value
        self._queued = False

    def _grow(self) -> None:
        if self.ceiling is None or self.value < self.ceiling:
            self.value += 1

    def reset(self, start: int) -> None:
        """Forget the requests in flight (their event loop is gone) and start again from ``start``."""
        self.in_flight = 0
        self.value = min(start, self.ceiling) if self.ceiling is not None else start
        self.slow_start = True
        self._answers = self._pushed = 0
        self._reached = self._queued = False
