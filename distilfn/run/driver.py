"""``plan.run``: bind models, check the plan, run it, assemble the frame."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Mapping
from typing import Any

import polars as pl

from distilfn.models.binding import bind_models
from distilfn.ops import MapRows, Rename, Select
from distilfn.plan import Labeled, Plan, resolve
from distilfn.run.frame import assemble
from distilfn.run.interpreter import Interpreter
from distilfn.run.progress import Progress, progress_wanted
from distilfn.run.stats import RunStats

__all__ = ["run_plan", "arun_plan", "as_frame", "RunResult"]

DEFAULT_MAX_CONCURRENCY = 64


def as_frame(data: Any) -> pl.DataFrame:
    """The input as a DataFrame: a frame, a lazy frame, rows, a column dict, or a file path."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        from distilfn.io import read_input

        return read_input(data)
    if isinstance(data, Mapping) or isinstance(data, list):
        return pl.DataFrame(data)
    msg = f"plan.run expects a polars DataFrame, a file path, rows or a column dict, got {type(data).__name__}"
    raise TypeError(msg)


class RunResult:
    """What a run leaves besides the frame: its counters (``stats``)."""

    def __init__(self, frame: pl.DataFrame, stats: RunStats):
        self.frame = frame
        self.stats = stats


def run_plan(plan: Plan, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
    """Run ``plan`` synchronously (in a worker thread if an event loop is already running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun_plan(plan, data, model, **options))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # e.g. inside Jupyter
        return pool.submit(asyncio.run, arun_plan(plan, data, model, **options)).result()


async def arun_plan(
    plan: Plan,
    data: Any,
    model: Any = None,
    *,
    max_concurrency: int | None = None,
    stats: RunStats | None = None,
    progress: bool | None = None,
    summary: bool | None = None,
    max_error_rate: float | None = 0.5,
) -> pl.DataFrame:
    """Run ``plan`` over ``data`` and return the output frame.

    Checks the plan against the frame's columns and the bound roles before any request.
    ``max_concurrency`` bounds the requests in flight across all steps (default: the
    largest ``max_concurrency`` a bound model declares, else 64). Pass a
    :class:`~distilfn.run.stats.RunStats` as ``stats`` to read the counters afterwards.
    ``progress`` shows a live display (default: on an interactive terminal only);
    ``summary`` prints the final table (default: when progress is shown).
    ``max_error_rate`` stops the run (RunAbortedError) once more than this fraction of
    requests failed, after at least 50 results; None never stops.
    """
    frame = as_frame(data)
    resolved = resolve(plan, frame.columns)
    roles = set(resolved.roles.values())
    models = bind_models(model, roles)
    resolved.check_roles(set(models))
    limit = max_concurrency or _default_concurrency(models.values())
    stats = stats if stats is not None else RunStats()
    interpreter = Interpreter(resolved, models, max_concurrency=limit, stats=stats, max_error_rate=max_error_rate)
    per_source: list[list[dict[str, Any]] | None] = [None] * frame.height

    def on_done(index: int, rows: list[dict[str, Any]]) -> None:
        per_source[index] = rows

    show = progress_wanted(progress)
    try:
        async with Progress(stats, frame.height, enabled=show, summary=show if summary is None else summary):
            await interpreter.run(frame.iter_rows(named=True), on_done)
    finally:
        for m in {id(m): m for m in models.values()}.values():
            close = getattr(m, "aclose", None)
            if close is not None:
                await close()
    stats.finished = time.perf_counter()
    rows = [row for chunk in per_source if chunk for row in chunk]
    source_index = [i for i, chunk in enumerate(per_source) if chunk for _ in chunk]
    keep_input = not any(
        isinstance(s, Rename | Select) or (isinstance(s, Labeled) and isinstance(s.step, MapRows) and set(s.outputs) & set(frame.columns))
        for s in resolved.flat
    )
    return assemble(resolved, frame, rows, source_index, keep_input=keep_input)


def _default_concurrency(models: Any) -> int:
    declared = [m.max_concurrency for m in models if getattr(m, "max_concurrency", None)]
    return max(declared) if declared else DEFAULT_MAX_CONCURRENCY
