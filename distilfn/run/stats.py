"""Counters the interpreter keeps while it runs: per step and for the whole run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepStats", "RunStats", "Usage", "money"]


@dataclass
class Usage:
    """Tokens and money of one model in one step; ``cost`` is None when the model has no price."""

    step: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = 0.0


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
    cost: float | None = 0.0
    """US dollars of the answered requests; None when some model of the step has no price."""

    @property
    def failed(self) -> int:
        """Rows whose step ended with an error of any kind."""
        return self.parse_failed + self.request_failed + self.skipped


@dataclass
class RunStats:
    """The run's counters; ``in_flight`` is the number of requests waiting on a model now.

    ``rows_failed`` counts the input rows with at least one error in their outputs.
    ``batches`` counts what batch models did (see :func:`batch_line`).
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
    batches: dict[str, int] = field(default_factory=dict)  # offline batches: submitted, completed, failed, ...
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    usage: dict[tuple[str, str], Usage] = field(default_factory=dict)
    """Tokens and cost per (step, model name)."""
    priced_requests: int = 0
    models: dict[str, Any] = field(default_factory=dict)
    """The bound models by role (their own counters, such as retries, are read from them)."""
    endpoints: list[Any] = field(default_factory=list)
    cached: bool = False
    """Whether the run kept its answers in a cache (off with ``cache=False``, or when no model
    has an ``identity``): then running it again re-sends only the failed requests."""

    def record(self, step: StepStats, model: str, tokens_in: int, tokens_out: int, cost: float | None) -> None:
        """One answered request of ``step`` by ``model``: its tokens and its cost (None: no price)."""
        step.input_tokens += tokens_in
        step.output_tokens += tokens_out
        usage = self.usage.get((step.label, model))
        if usage is None:
            usage = self.usage[(step.label, model)] = Usage(step.label, model)
        usage.requests += 1
        usage.input_tokens += tokens_in
        usage.output_tokens += tokens_out
        if cost is None:
            usage.cost = step.cost = None
        else:
            self.priced_requests += 1
            if usage.cost is not None:
                usage.cost += cost
            if step.cost is not None:
                step.cost += cost

    @property
    def cost(self) -> float:
        """US dollars of the priced requests answered so far (see :attr:`unpriced`)."""
        return sum(u.cost for u in self.usage.values() if u.cost is not None)

    @property
    def unpriced(self) -> list[str]:
        """The models that answered but have no price."""
        return sorted({u.model for u in self.usage.values() if u.cost is None})

    def projected_cost(self) -> float:
        """What the requests sent so far will cost: the answered ones, and those in flight at
        the mean price of an answered request."""
        mean = self.cost / self.priced_requests if self.priced_requests else 0.0
        return self.cost + self.in_flight * mean

    @property
    def input_tokens(self) -> int:
        """Input tokens of every answered request."""
        return sum(s.input_tokens for s in self.steps.values())

    @property
    def output_tokens(self) -> int:
        """Output tokens of every answered request."""
        return sum(s.output_tokens for s in self.steps.values())

    @property
    def rows_per_second(self) -> float:
        """Input rows finished per second of wall time."""
        return self.rows_done / max(self.wall_time, 1e-9)

    def model_counter(self, name: str) -> int | None:
        """The sum over the bound models' endpoints of ``name`` (retries, timeouts, throttles),
        None when no model keeps endpoint counters (see ``endpoint_stats()`` of the HTTP backend)."""
        field_name = {"throttles": "throttled"}.get(name, name)
        values = []
        for model in {id(m): m for m in self.models.values()}.values():
            endpoint_stats = getattr(model, "endpoint_stats", None)
            if callable(endpoint_stats):
                values += [getattr(e, field_name) for e in endpoint_stats()]
        return sum(values) if values else None

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
        """A plain-text table: one line per step, then the totals (and the cost, where priced)."""
        head = f"{'step':<28}{'rows':>7}{'ok':>7}{'parse err':>10}{'req err':>9}{'skipped':>8}{'requests':>9}{'cached':>7}{'tok in':>9}{'tok out':>9}"
        lines = [head, "-" * len(head)]
        for s in self.steps.values():
            lines.append(
                f"{s.label[:27]:<28}{s.rows:>7}{s.ok:>7}{s.parse_failed:>10}{s.request_failed:>9}{s.skipped:>8}"
                f"{s.requests:>9}{s.cache_hits:>7}{s.input_tokens:>9}{s.output_tokens:>9}"
            )
        lines.append(
            f"rows in {self.rows_in}, rows out {self.rows_out}, rows failed {self.rows_failed}, requests {self.requests}, "
            f"wall time {self.wall_time:.2f}s, max in flight {self.max_in_flight}, "
            f"tokens {self.input_tokens} in / {self.output_tokens} out, cost {money(self)}"
        )
        lines += [endpoint_line(e) for e in self.endpoints]
        if self.batches:
            lines.append(batch_line(self.batches))
        return "\n".join(lines)


def batch_line(counts: dict[str, int]) -> str:
    """One line for the counters of offline batches.

    >>> batch_line({"submitted": 3, "completed": 2, "expired": 1, "resubmitted_requests": 4})
    'batches: submitted 3, completed 2, failed 0, expired 1, resubmitted requests 4'
    """
    shown = {"submitted": 0, "completed": 0, "failed": 0, **counts}
    return "batches: " + ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in shown.items())


def money(stats: RunStats) -> str:
    """The run's cost as a person reads it, naming the models without a price.

    >>> money(RunStats())
    '$0.0000'
    """
    unpriced = stats.unpriced
    if not unpriced:
        return f"${stats.cost:.4f}"
    names = ", ".join(unpriced)
    if not stats.priced_requests:
        return f"unknown (no price for {names}; pass prices=)"
    return f"${stats.cost:.4f} + unknown (no price for {names}; pass prices=)"


def endpoint_line(e: Any) -> str:
    """One line of the summary for an endpoint's ``EndpointStats``."""
    slots = f", server slots {e.slots}" if e.slots is not None else ""
    return (
        f"endpoint {e.endpoint}: requests {e.requests}, retries {e.retries}, 429s {e.throttled}, "
        f"timeouts {e.timeouts}, other errors {e.errors}, max in flight {e.max_in_flight} "
        f"(limit {e.limit}, cut {e.limit_cuts}x{slots})"
    )
