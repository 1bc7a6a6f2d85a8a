"""``plan.run`` and ``plan.run_to``: bind models, check the plan, run it, collect or stream rows."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import polars as pl

from distilfn.models.binding import bind_models
from distilfn.ops import MapRows, Rename, Select
from distilfn.plan import Labeled, Plan, Resolved, resolve
from distilfn.run.frame import assemble
from distilfn.run.interpreter import Interpreter
from distilfn.run.progress import Progress, progress_wanted
from distilfn.run.stats import RunStats

__all__ = ["run_plan", "arun_plan", "run_plan_to", "arun_plan_to", "as_frame", "ROW_INDEX"]

DEFAULT_MAX_CONCURRENCY = 64
ROW_INDEX = "__distilfn_row"
"""Source-row index carried in streamed parts (dropped from the final file)."""


def as_frame(data: Any) -> pl.DataFrame:
    """The input as a DataFrame: a frame, a lazy frame, rows, a column dict, or a file path."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        from distilfn.io import read_input

        return read_input(data)
    if isinstance(data, Mapping | list):
        return pl.DataFrame(data)
    msg = f"plan.run expects a polars DataFrame, a file path, rows or a column dict, got {type(data).__name__}"
    raise TypeError(msg)


def _sync(coro_fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a coroutine to the end, in a worker thread if a loop is already running (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn(*args, **kwargs))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args, **kwargs)).result()


def run_plan(plan: Plan, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
    """Run ``plan`` and return the output frame; see :func:`arun_plan` for the options."""
    return _sync(arun_plan, plan, data, model, **options)


def run_plan_to(plan: Plan, data: Any, out: Any, model: Any = None, **options: Any) -> Path:
    """Run ``plan`` streaming finished rows to ``out``; see :func:`arun_plan_to`."""
    return _sync(arun_plan_to, plan, data, out, model, **options)


class _Session:
    """What one run holds open: bound models, the cache, the interpreter, progress."""

    def __init__(self, plan: Plan, columns: list[str], model: Any, options: dict[str, Any]):
        self.resolved: Resolved = resolve(plan, columns)
        roles = set(self.resolved.roles.values())
        self.models = bind_models(model, roles)
        self.resolved.check_roles(set(self.models))
        self.options = options

    async def __aenter__(self) -> _Session:
        from distilfn.run.cache import open_cache, request_key

        o = self.options
        cacheable = any(getattr(m, "identity", None) for m in self.models.values())
        cache_option = o.get("cache")
        self.cache = open_cache(cache_option) if cacheable and cache_option is not False else None
        self._owns_cache = self.cache is not None and self.cache is not cache_option
        self.stats = o.get("stats") or RunStats()
        limit = o.get("max_concurrency") or _default_concurrency(self.models.values())
        self.interpreter = Interpreter(
            self.resolved,
            self.models,
            max_concurrency=limit,
            stats=self.stats,
            cache=self.cache,
            key_for=request_key,
            max_error_rate=o.get("max_error_rate", 0.5),
            refresh_parse_failures=o.get("retry_failed", False),
            default_params=o.get("params") or {},
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.stats.finished = time.perf_counter()
        try:
            for m in {id(m): m for m in self.models.values()}.values():
                close = getattr(m, "aclose", None)
                if close is not None:
                    await close()
        finally:
            if self._owns_cache and self.cache is not None:
                self.cache.close()

    def progress(self, total: int | None) -> Progress:
        show = progress_wanted(self.options.get("progress"))
        summary = self.options.get("summary")
        return Progress(self.stats, total, enabled=show, summary=show if summary is None else summary)


_RUN_OPTIONS = frozenset(
    {"max_concurrency", "stats", "progress", "summary", "max_error_rate", "cache", "retry_failed", "params"}
)


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - _RUN_OPTIONS)
    if unknown:
        msg = f"unknown run option {unknown[0]!r}; the options are {', '.join(sorted(_RUN_OPTIONS))}"
        raise TypeError(msg)
    return dict(options)


async def arun_plan(plan: Plan, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
    """Run ``plan`` over ``data`` and return the output frame.

    The plan is checked against the frame's columns and the bound roles before any
    request. Options (keyword-only):

    - ``max_concurrency``: requests in flight across all steps (default: the largest a
      bound model declares, else 64).
    - ``cache``: where answers are cached: None (default location, see
      :func:`distilfn.run.cache.default_cache_dir`), a path, or False (off). Only models
      with an ``identity`` are cached (HTTP and local models; plain functions when given one).
    - ``retry_failed``: re-request cached answers the parser cannot read (failed requests
      are never cached, so a re-run always retries them).
    - ``params``: default generation parameters for every request (tasks' own win).
    - ``max_error_rate``: stop (RunAbortedError) once more than this fraction of requests
      failed, after 50 results; None never stops. Default 0.5.
    - ``progress``/``summary``: live display and final table (default: on a terminal).
    - ``stats``: a :class:`~distilfn.run.stats.RunStats` to read the counters afterwards.
    """
    options = _check_options(options)
    frame = as_frame(data)
    per_source: list[list[dict[str, Any]] | None] = [None] * frame.height

    def on_done(index: int, rows: list[dict[str, Any]]) -> None:
        per_source[index] = rows

    async with _Session(plan, frame.columns, model, options) as session:
        async with session.progress(frame.height):
            await session.interpreter.run(frame.iter_rows(named=True), on_done)
    rows = [row for chunk in per_source if chunk for row in chunk]
    source_index = [i for i, chunk in enumerate(per_source) if chunk for _ in chunk]
    return assemble(session.resolved, frame, rows, source_index, keep_input=_keeps_input(session.resolved, frame.columns))


async def arun_plan_to(
    plan: Plan,
    data: Any,
    out: str | os.PathLike[str],
    model: Any = None,
    *,
    resume: bool = True,
    chunk_rows: int = 1000,
    limit: int | None = None,
    **options: Any,
) -> Path:
    """Run ``plan`` and stream finished rows to ``out`` (``.parquet`` or ``.jsonl``).

    ``data`` may be a file path (Parquet/JSONL/CSV, scanned lazily), a LazyFrame or a
    DataFrame; rows are read in batches, so inputs larger than memory work. Finished
    rows are written in chunks of ``chunk_rows`` as they complete; a crash leaves a
    readable file of what was finished. With ``resume`` (default) a re-run skips the
    source rows already written and, with the cache, re-sends only unanswered requests.
    The final file is in input order. Returns the output path. Other options as
    :func:`arun_plan`.
    """
    from distilfn.io import ChunkedWriter, scan_input

    options = _check_options(options)
    if isinstance(data, str | os.PathLike):
        lazy = scan_input(data)
    elif isinstance(data, pl.LazyFrame):
        lazy = data
    else:
        lazy = as_frame(data).lazy()
    if limit is not None:
        lazy = lazy.head(limit)
    columns = lazy.collect_schema().names()
    out_path = Path(out).expanduser()
    async with _Session(plan, columns, model, options) as session:
        if resume and _is_complete(out_path):
            print(f"distilfn: {out_path} is already complete; pass resume=False to overwrite it", file=sys.stderr)
            return out_path
        writer = ChunkedWriter(
            out_path, chunk_rows=chunk_rows, resume=resume, order_by=ROW_INDEX,
            drop_columns=[ROW_INDEX], finished_columns=[ROW_INDEX],
        )
        done: set[int] = set()
        if writer.finished is not None and ROW_INDEX in writer.finished.columns:
            done = set(writer.finished[ROW_INDEX].to_list())
        total = lazy.select(pl.len()).collect().item()

        def on_done(index: int, rows: list[dict[str, Any]]) -> None:
            writer.write([{ROW_INDEX: index, **row} for row in rows] or [])

        def todo() -> Iterator[tuple[int, dict[str, Any]]]:
            offset = 0
            for batch in lazy.collect_batches(chunk_size=max(chunk_rows, 1000)):
                for i, row in enumerate(batch.iter_rows(named=True)):
                    if offset + i not in done:
                        yield offset + i, row
                offset += batch.height

        try:
            async with session.progress(total - len(done)):
                await session.interpreter.run_indexed(todo(), on_done)
        except BaseException:
            writer.flush()  # keep every finished row for the resume; parts stay unfinalised
            raise
        writer.close()
    return out_path


def _is_complete(path: Path) -> bool:
    """Whether ``path`` holds the final output of an earlier, finished run."""
    from distilfn.io import parts_dir

    if not path.exists():
        return False
    if path.suffix.lower() == ".parquet":
        return not parts_dir(path).exists()
    with open(path, "rb") as fh:
        first = fh.readline()
    return bool(first.strip()) and ROW_INDEX.encode() not in first


def _keeps_input(resolved: Resolved, columns: list[str]) -> bool:
    return not any(
        isinstance(s, Rename | Select) or (isinstance(s, Labeled) and isinstance(s.step, MapRows) and set(s.outputs) & set(columns))
        for s in resolved.flat
    )


def _default_concurrency(models: Any) -> int:
    declared = [m.max_concurrency for m in models if getattr(m, "max_concurrency", None)]
    return max(declared) if declared else DEFAULT_MAX_CONCURRENCY
