"""Run options: one frozen, validated value, built once where a run starts.

``plan.run(df, model, **options)`` and ``plan.run_to(...)`` take these fields as
keyword arguments; each has one default, here, and is checked here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from distilfn.run.stats import RunStats

__all__ = ["RunOptions", "DEFAULT_MAX_CONCURRENCY", "run_concurrency"]

DEFAULT_MAX_CONCURRENCY = 64
"""Requests in flight when a run does not say."""


def run_concurrency(options: RunOptions, models: Any) -> int:
    """The run's bound on requests in flight: ``options.max_concurrency`` when given, else
    64 or the most that a bound model asks to keep waiting (``queued_requests``: a model
    that gathers requests into offline batches wants many at once).

    >>> class Batched: queued_requests = 10_000
    >>> run_concurrency(RunOptions(), [Batched()]), run_concurrency(RunOptions(max_concurrency=8), [Batched()])
    (10000, 8)
    """
    if options.max_concurrency is not None:
        return options.max_concurrency
    asked = [getattr(m, "queued_requests", None) for m in models]
    return max([DEFAULT_MAX_CONCURRENCY, *(a for a in asked if isinstance(a, int) and a > 0)])


class RunOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a plan runs.

    Fields:
        max_concurrency: requests in flight across all steps. None (the default): 64, or
            more when a bound model asks for more by its ``queued_requests`` (a batch model
            gathers that many into one batch). A model's own ``max_concurrency`` caps its
            share; the run says so once when the cap binds.
        cache: where answers are cached: None (the default location, see
            :func:`distilfn.run.cache.default_cache_dir`), a path, a RequestCache, or False (off).
            Only models with an ``identity`` are cached (HTTP and local models; plain
            functions when wrapped with one).
        retry_failed: also re-request cached answers the parser cannot read (failed
            requests are never cached, so a re-run always re-sends them).
        params: default generation parameters for every request (tasks' own win).
        max_error_rate: stop (RunAbortedError) once more than this fraction of requests
            failed, after 50 results; None never stops.
        progress: live display (None: on an interactive terminal or in Jupyter; "lines": the
            live view there, else a plain line every 15 s, for logs and pipes).
        summary: the final table on stderr (None: when progress is shown).
        stats: a :class:`~distilfn.run.stats.RunStats` to read the counters afterwards.
        limit: only the first ``limit`` input rows.
        chunk_rows: ``run_to`` writes chunks of at least this many output rows (whole input rows).
        restart: ``run_to`` ignores what an earlier run of ``out`` finished and starts over.
        format: ``run_to``'s output format, when the file name does not tell.
        warn_failures: warn (``RowsFailedWarning``) when rows failed.
        prices: the price table (see :mod:`distilfn.run.cost`): None uses genai-prices for
            providers' APIs; ``{"model": (in, out)}`` dollars per million tokens first; False: none.
        max_cost: stop (BudgetExceededError) before the projected cost of the requests sent
            passes this many US dollars; the finished rows are kept, the answers cached.
        quiet: no progress, no summary.
    """

    max_concurrency: int | None = None
    cache: Any = None
    retry_failed: bool = False
    params: Mapping[str, Any] = {}
    max_error_rate: float | None = 0.5
    progress: bool | Literal["lines"] | None = None
    summary: bool | None = None
    stats: RunStats | None = None
    limit: int | None = None
    chunk_rows: int = 1000
    restart: bool = False
    format: Literal["parquet", "jsonl"] | None = None
    warn_failures: bool = True
    prices: Any = None
    max_cost: float | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.max_cost is not None and (isinstance(self.max_cost, bool) or not isinstance(self.max_cost, int | float) or self.max_cost <= 0):
            msg = f"max_cost must be a positive number of US dollars or None, got {self.max_cost!r}"
            raise ValueError(msg)
        if self.max_concurrency is not None:
            _whole(self.max_concurrency, "max_concurrency", minimum=1)
        _whole(self.chunk_rows, "chunk_rows", minimum=1)
        if self.limit is not None:
            _whole(self.limit, "limit", minimum=0)
        if self.max_error_rate is not None and not (
            isinstance(self.max_error_rate, int | float) and 0 < self.max_error_rate <= 1
        ):
            msg = f"max_error_rate must be a fraction in (0, 1] or None, got {self.max_error_rate!r}"
            raise ValueError(msg)
        if not (self.cache is None or isinstance(self.cache, bool | str | os.PathLike) or hasattr(self.cache, "get_many")):
            msg = f"cache must be None, False, a path or a RequestCache, got {self.cache!r}"
            raise TypeError(msg)
        if not isinstance(self.params, Mapping):
            msg = f"params must be a dict of generation parameters, got {type(self.params).__name__}"
            raise TypeError(msg)
        if self.progress not in (None, True, False, "lines"):
            msg = f"progress must be True, False, None or 'lines', got {self.progress!r}"
            raise ValueError(msg)
        if self.format not in (None, "parquet", "jsonl"):
            msg = f"format must be 'parquet' or 'jsonl', got {self.format!r}"
            raise ValueError(msg)

    @classmethod
    def of(cls, **options: Any) -> RunOptions:
        """Options from keyword arguments, with one clear error for an unknown name.

        >>> RunOptions.of(max_concurrency=8).max_concurrency
        8
        >>> RunOptions.of(max_concurency=8)
        Traceback (most recent call last):
        ...
        TypeError: unknown run option 'max_concurency' (did you mean 'max_concurrency'?); the options are: cache, chunk_rows, format, limit, max_concurrency, max_cost, max_error_rate, params, prices, progress, quiet, restart, retry_failed, stats, summary, warn_failures
        """
        given = options.pop("options", None)
        base = given if isinstance(given, RunOptions) else cls()
        fields = set(cls.__struct_fields__)
        unknown = sorted(set(options) - fields)
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msg = f"unknown run option {unknown[0]!r}{hint}; the options are: {', '.join(sorted(fields))}"
            raise TypeError(msg)
        options = {k: v for k, v in options.items() if v is not None or k not in _NOT_NONE}
        if not options:
            return base
        return cls(**{**msgspec.structs.asdict(base), **options})


_NOT_NONE = frozenset({"max_concurrency", "retry_failed", "params", "chunk_rows", "restart", "warn_failures", "quiet"})
"""Options for which None means "the default" (e.g. a CLI flag that was not given)."""


def _whole(value: Any, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{name} must be a whole number >= {minimum}, got {value!r}"
        raise ValueError(msg)
