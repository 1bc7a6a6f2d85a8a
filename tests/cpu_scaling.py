"""A check that work grows linearly with input size, which a loaded machine cannot fail.

Wall-clock bounds fail when other processes take the CPU. This compares the process's
own CPU time (``time.process_time``) for an input and for one ``factor`` times as long:
linear work grows ~``factor`` times, quadratic backtracking ``factor**2`` times. The
bound sits between the two, with an absolute allowance for timer noise and garbage
collection; a slow measurement is taken again (the fastest of three counts), since
noise only ever adds time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["assert_linear"]


def cpu_seconds(work: Callable[[], Any]) -> float:
    """CPU seconds this process spent running ``work()``."""
    start = time.process_time()
    work()
    return time.process_time() - start


def assert_linear(
    run: Callable[[int], Any], size: int, *, factor: int = 8, allowance: float = 0.05, what: str = ""
) -> None:
    """Fail unless ``run(size * factor)`` costs at most ``2 * factor`` times ``run(size)``
    (plus ``allowance`` CPU seconds): far above linear growth, far below quadratic.

    >>> assert_linear(lambda n: sum(range(n)), 10_000)
    """
    small = large = float("inf")
    for _ in range(3):
        small = min(small, cpu_seconds(lambda: run(size)))
        large = min(large, cpu_seconds(lambda: run(size * factor)))
        if large <= 2 * factor * small + allowance:
            return
    msg = (
        f"{what or 'the work'} grows faster than linearly: {small * 1000:.1f} ms of CPU for size {size}, "
        f"{large * 1000:.1f} ms for {size * factor}"
    )
    raise AssertionError(msg)
