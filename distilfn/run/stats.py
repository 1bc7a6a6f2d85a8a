"""Counters the interpreter keeps while it runs: per step and for the whole run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepStats", "RunStats"]


@dataclass
class StepStats:
    """What happened in one step (counts of rows and requests)."""

    label: str
    rows: int = 0
    ok: int = 0
    parse_failed: int = 0
    request_failed: int = 0
    skipped: int = 0
    requests: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def failed(self) -> int:
        """Rows whose step ended with an error of any kind."""
        return self.parse_failed + self.request_failed + self.skipped


@dataclass
class RunStats:
    """The run's counters; ``in_flight`` is the number of requests waiting on a model now.

    ``rows_failed`` counts the input rows with at least one error in their outputs.
    ``endpoints`` holds, at the end of the run, the ``EndpointStats`` of each HTTP model
    endpoint (requests, retries, 429s, timeouts, the concurrency reached).
    """

    steps: dict[str, StepStats] = field(default_factory=dict)
    rows_in: int = 0
    rows_done: int = 0
    rows_out: int = 0
    rows_failed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    endpoints: list[Any] = field(default_factory=list)

    def step(self, label: str) -> StepStats:
        """The counters of step ``label`` (created on first use)."""
        stats = self.steps.get(label)
        if stats is None:
            stats = self.steps[label] = StepStats(label)
        return stats

    @property
    def wall_time(self) -> float:
        """Seconds since the run started (until it finished)."""
        return (self.finished or time.perf_counter()) - self.started

    @property
    def requests(self) -> int:
        """Requests sent to models (cache hits excluded)."""
        return sum(s.requests for s in self.steps.values())

    @property
    def failed(self) -> int:
        """Step results that ended with an error."""
        return sum(s.failed for s in self.steps.values())

    def summary(self) -> str:
        """A plain-text table: one line per step, then the totals."""
        head = f"{'step':<28}{'rows':>7}{'ok':>7}{'parse err':>10}{'req err':>9}{'skipped':>8}{'requests':>9}{'cached':>7}{'tok in':>9}{'tok out':>9}"
        lines = [head, "-" * len(head)]
        for s in self.steps.values():
            lines.append(
                f"{s.label[:27]:<28}{s.rows:>7}{s.ok:>7}{s.parse_failed:>10}{s.request_failed:>9}{s.skipped:>8}"
                f"{s.requests:>9}{s.cache_hits:>7}{s.input_tokens:>9}{s.output_tokens:>9}"
            )
        lines.append(
            f"rows in {self.rows_in}, rows out {self.rows_out}, rows failed {self.rows_failed}, requests {self.requests}, "
            f"wall time {self.wall_time:.2f}s, max in flight {self.max_in_flight}"
        )
        lines += [endpoint_line(e) for e in self.endpoints]
        return "\n".join(lines)


def endpoint_line(e: Any) -> str:
    """One line of the summary for an endpoint's ``EndpointStats``."""
    slots = f", server slots {e.slots}" if e.slots is not None else ""
    return (
        f"endpoint {e.endpoint}: requests {e.requests}, retries {e.retries}, 429s {e.throttled}, "
        f"timeouts {e.timeouts}, other errors {e.errors}, max in flight {e.max_in_flight} "
        f"(limit {e.limit}, cut {e.limit_cuts}x{slots})"
    )
