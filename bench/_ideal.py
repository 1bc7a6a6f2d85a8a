"""What a client that loses no time could do under bench (f)'s faults: a discrete-event model.

The model is generous to the client on every point it controls:
- rows are chains of ``steps`` requests, each taking exactly ``latency``; there is no CPU,
  no connection set-up and no parsing;
- at most ``slots`` requests are in flight, and a free slot is never left idle while a
  request is ready: retries and later steps of rows already begun go first (oldest row
  first), then new rows;
- a 429 waits exactly its ``Retry-After``, with no jitter, holding no slot; a 500 is retried
  at once.
The server's side is bench (f)'s fake server: each attempt fails with ``error_rate``, half
429 and half 500, independently. So the makespan of this model bounds from below what any
client that honours ``Retry-After`` can reach, and its faults-over-no-faults ratio bounds the
benchmark's ratio from above, for the same draw of faults.
"""

from __future__ import annotations

import heapq
import random
import statistics

__all__ = ["ideal_ratios", "makespan"]


def makespan(rows: int, steps: int, slots: int, latency: float, error_rate: float, retry_after: float,
             rng: random.Random) -> float:
    """Seconds until the last of ``rows`` chains of ``steps`` requests is answered."""
    ready: list[tuple[int, int]] = []  # (row, step) waiting for a slot, oldest row first
    answers: list[tuple[float, int, int]] = []  # (time, row, step) of requests in flight
    waits: list[tuple[float, int, int]] = []  # (time, row, step) of 429s sitting out Retry-After
    now, started, done, in_flight = 0.0, 0, 0, 0
    while done < rows:
        while in_flight < slots and (ready or started < rows):
            if ready:
                row, step = heapq.heappop(ready)
            else:
                row, step, started = started, 0, started + 1
            heapq.heappush(answers, (now + latency, row, step))
            in_flight += 1
        if waits and (not answers or waits[0][0] <= answers[0][0]):
            now, row, step = heapq.heappop(waits)
            heapq.heappush(ready, (row, step))
            continue
        now, row, step = heapq.heappop(answers)
        in_flight -= 1
        coin = rng.random()
        if coin < error_rate / 2:
            heapq.heappush(waits, (now + retry_after, row, step))
        elif coin < error_rate:
            heapq.heappush(ready, (row, step))
        elif step + 1 < steps:
            heapq.heappush(ready, (row, step + 1))
        else:
            done += 1
    return now


def ideal_ratios(rows: int, steps: int, slots: int, latency: float, error_rate: float, retry_after: float,
                 draws: int = 40) -> tuple[float, float, float]:
    """The ideal client's rows/s under faults over its rows/s without, over ``draws`` draws of
    the faults: (median, 10th percentile, 90th percentile)."""
    clean = makespan(rows, steps, slots, latency, 0.0, retry_after, random.Random(0))
    ratios = sorted(clean / makespan(rows, steps, slots, latency, error_rate, retry_after, random.Random(seed))
                    for seed in range(draws))
    deciles = statistics.quantiles(ratios, n=10)
    return statistics.median(ratios), deciles[0], deciles[-1]


if __name__ == "__main__":
    for n in (1000, 2000, 3000, 5000):
        median, low, high = ideal_ratios(n, 5, 64, 0.05, 0.1, 1.0)
        print(f"{n:>5} rows: ideal faults/no-faults ratio {median:.3f} (10th-90th percentile {low:.3f}-{high:.3f})")
