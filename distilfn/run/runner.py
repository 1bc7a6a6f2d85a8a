"""``plan.run`` and ``plan.run_to``: compile, bind models, run, assemble or stream.

Both go the same way: the plan is compiled against the input schema (the output schema
is fixed there, before any request), models are bound to roles, the interpreter runs
the rows, and :func:`~distilfn.run.assemble.assemble` builds the frame: once for
``run``, once per chunk for ``run_to``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from distilfn.compile import Compiled, digest_lines
from distilfn.errors import RunInterrupted
from distilfn.inputs import BATCH_ROWS, as_frame, as_lazy, fingerprint_input
from distilfn.models.binding import bind_models
from distilfn.output.manifest import ROW, Header, encode_schema
from distilfn.output.stream import StreamedOutput, output_format
from distilfn.plan import Plan
from distilfn.run.assemble import Sources, assemble, gathered_columns
from distilfn.run.interpreter import Interpreter
from distilfn.run.options import RunOptions
from distilfn.run.progress import Progress, progress_wanted
from distilfn.run.result import RunResult, warn_failed
from distilfn.run.stats import RunStats
from distilfn.tree import Unit

__all__ = ["run_plan", "arun_plan", "run_plan_to", "arun_plan_to", "run_frame", "sync"]

def sync(coro_fn: Any, *args: Any) -> Any:
    """Run a coroutine to the end, in a worker thread if a loop is already running (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn(*args))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args)).result()


def run_plan(plan: Plan, data: Any, model: Any, options: RunOptions) -> pl.DataFrame:
    """Run ``plan`` and return the output frame; see :func:`arun_plan`."""
    out, stats, total = sync(_run, plan, data, model, options)
    if options.warn_failures:
        warn_failed(stats.rows_failed, total, cached=stats.cached, resumed=False)
    return out


def run_plan_to(plan: Plan, data: Any, out: Any, model: Any, options: RunOptions) -> RunResult:
    """Run ``plan`` streaming finished rows to ``out``; see :func:`arun_plan_to`."""
    result = sync(_run_to, plan, data, out, model, options)
    if options.warn_failures:
        warn_failed(result.failed, result.rows_in, cached=result.stats.cached, resumed=True)
    return result


class Session:
    """What one run holds open: the bound models, the cache, the interpreter, the stats."""

    def __init__(self, compiled: Compiled, model: Any, options: RunOptions):
        self.compiled = compiled
        self.options = options
        self.models = bind_models(model, set(compiled.roles.values()))
        compiled.check_roles(set(self.models))
        self.stats = options.stats if options.stats is not None else RunStats()
        self.stats.models = self.models
        self.cache: Any = None
        self._owns_cache = False

    async def __aenter__(self) -> Session:
        from distilfn.run.cache import open_cache

        option = self.options.cache
        cacheable = any(getattr(m, "identity", None) for m in self.models.values())
        if cacheable and option is not False:
            self.cache = open_cache(option)
            self._owns_cache = self.cache is not option
        self.stats.cached = self.cache is not None
        self.stats.started = time.perf_counter()
        for m in {id(m): m for m in self.models.values()}.values():
            bind = getattr(m, "bind_run", None)  # batch models record their batches in the cache
            if bind is not None:
                bind(cache=self.cache, stats=self.stats)
        self.interpreter = Interpreter(self.compiled, self.models, self.options, cache=self.cache, stats=self.stats)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.stats.finished = time.perf_counter()
        try:
            for m in {id(m): m for m in self.models.values()}.values():
                endpoints = getattr(m, "endpoint_stats", None)
                if endpoints is not None:
                    self.stats.endpoints.extend(endpoints())
                close = getattr(m, "aclose", None)
                if close is not None:
                    await close()
        finally:
            if self._owns_cache and self.cache is not None:
                self.cache.close()

    def progress(self, total: int | None) -> Progress:
        quiet = self.options.quiet
        option = self.options.progress
        lines = option == "lines" and not quiet
        show = not quiet and progress_wanted(None if lines else option)
        summary = self.options.summary
        return Progress(self.stats, total, enabled=show, summary=not quiet if summary is None else summary and not quiet,
                        lines=lines)


def _rows(frame: pl.DataFrame, reads: tuple[str, ...], offset: int, pending: np.ndarray | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(input row, the values the plan reads) for the rows of ``frame`` still to do."""
    values = frame.select(reads).iter_rows(named=True) if reads else ({} for _ in range(frame.height))
    if pending is None:
        yield from enumerate(values, start=offset)
        return
    for i, row in enumerate(values):
        if pending[i]:
            yield offset + i, row


async def arun_plan(plan: Plan, data: Any, model: Any, options: RunOptions) -> pl.DataFrame:
    """Run ``plan`` over ``data`` and return the output frame.

    The plan is compiled against the frame's schema and the bound roles are checked
    before any request. Every input row comes out (times its fanouts, minus what
    filters drop on purpose); a row that failed keeps its error in ``meta.<step>``, and
    a :class:`~distilfn.run.result.RowsFailedWarning` says how many.
    """
    out, stats, total = await _run(plan, data, model, options)
    if options.warn_failures:
        warn_failed(stats.rows_failed, total, cached=stats.cached, resumed=False)
    return out


async def _run(plan: Plan, data: Any, model: Any, options: RunOptions) -> tuple[pl.DataFrame, RunStats, int]:
    frame = as_frame(data)
    if options.limit is not None:
        frame = frame.head(options.limit)
    compiled = plan.compile(frame.schema)
    async with Session(compiled, model, options) as session:
        async with session.progress(frame.height):
            out = await run_frame(session.interpreter, frame)
    return out, session.stats, frame.height


async def run_frame(interpreter: Interpreter, frame: pl.DataFrame) -> pl.DataFrame:
    """Every row of ``frame`` through ``interpreter``, assembled once into the compiled schema
    (``run`` does this for its whole input, a Ray actor for each block)."""
    compiled = interpreter.compiled
    finished: list[list[Unit] | None] = [None] * frame.height

    def on_done(index: int, units: list[Unit]) -> None:
        finished[index] = units

    await interpreter.run(_rows(frame, compiled.reads, 0, None), on_done)
    rows = [(i, units) for i, units in enumerate(finished) if units is not None]
    out, _ = assemble(compiled, rows, Sources.of(frame, gathered_columns(compiled)))
    return out


class _ChunkWriter:
    """Buffers finished input rows and writes them as chunks of whole rows."""

    def __init__(self, output: StreamedOutput, compiled: Compiled, sources: Sources, chunk_rows: int, max_delay: float = 30.0):
        self.output = output
        self.compiled = compiled
        self.sources = sources
        self.chunk_rows = chunk_rows
        self.max_delay = max_delay
        self.pending: list[tuple[int, list[Unit]]] = []
        self.rows = 0
        self.last = time.monotonic()

    def add(self, index: int, units: list[Unit]) -> None:
        self.pending.append((index, units))
        self.rows += len(units)
        if self.rows >= self.chunk_rows or time.monotonic() - self.last >= self.max_delay:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        pending = sorted(self.pending, key=lambda item: item[0])
        self.pending, self.rows, self.last = [], 0, time.monotonic()
        frame, rows = assemble(self.compiled, pending, self.sources)
        indices = [i for i, _ in pending]
        failed = [i for i, units in pending if any(u.failed for u in units)]
        self.output.write_frame(frame.with_columns(pl.Series(ROW, rows, dtype=pl.Int64)), indices, failed)
        self.sources.release(indices)


@contextlib.contextmanager
def _sigterm_cancels(task: asyncio.Task | None, stopped: list[int]) -> Iterator[None]:
    """While running, SIGTERM cancels ``task`` (like Ctrl-C does) so that what finished is saved."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        stopped.append(signal.SIGTERM)
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def arun_plan_to(plan: Plan, data: Any, out: Any, model: Any, options: RunOptions) -> RunResult:
    """Run ``plan`` and stream finished rows to ``out`` (``.parquet`` or ``.jsonl``).

    ``data`` may be a file path (Parquet/JSONL/CSV, scanned lazily), a LazyFrame or a
    DataFrame; rows are read in batches, so inputs larger than memory work. Whole input
    rows are written in chunks of at least ``chunk_rows`` output rows as they finish,
    with a manifest beside them (see :mod:`distilfn.output.manifest`). Running the same
    call again resumes: finished rows are kept, failed ones are done again, and with the
    cache only the requests without an answer are sent. A changed plan or input is
    refused (``restart=True`` starts over); a second writer of ``out`` is refused at
    once. The final file is in input order and reads back, with
    :func:`distilfn.output.read_output`, as the frame ``run`` would return.
    """
    result = await _run_to(plan, data, out, model, options)
    if options.warn_failures:
        warn_failed(result.failed, result.rows_in, cached=result.stats.cached, resumed=True)
    return result


async def _run_to(plan: Plan, data: Any, out: Any, model: Any, options: RunOptions) -> RunResult:
    lazy = as_lazy(data)
    if options.limit is not None:
        lazy = lazy.head(options.limit)
    schema = lazy.collect_schema()  # once: for a JSON Lines scan it reads the whole file
    compiled = plan.compile(schema)
    path = Path(out).expanduser()
    fmt = output_format(path, options.format)
    session = Session(compiled, model, options)
    fingerprint = fingerprint_input(lazy, schema=schema)
    lines = compiled.fingerprint_lines()
    header = Header(
        format=fmt,
        plan=digest_lines(lines),
        plan_lines=lines,
        input_rows=fingerprint.rows,
        input_digest=fingerprint.digest,
        schema=encode_schema(compiled.schema),
        columns={name: str(dtype) for name, dtype in compiled.schema.items()},
    )
    with StreamedOutput(path, header=header, restart=options.restart) as output:
        resume = output.open()
        if resume.complete:
            final = resume.final
            assert final is not None
            return RunResult.of(path, rows_in=fingerprint.rows, rows_out=final.rows, failed=0, already_complete=True,
                                stats=session.stats, plan=plan, input_schema=schema)
        done = resume.done
        sources = Sources(gathered_columns(compiled), schema)
        writer = _ChunkWriter(output, compiled, sources, options.chunk_rows)

        def todo() -> Iterator[tuple[int, dict[str, Any]]]:
            offset = 0
            for batch in lazy.collect_batches(chunk_size=max(options.chunk_rows, BATCH_ROWS)):
                pending = ~done[offset : offset + batch.height]
                count = int(pending.sum())
                if count:
                    sources.add(offset, batch, count)
                    yield from _rows(batch, compiled.reads, offset, pending)
                offset += batch.height

        stopped: list[int] = []
        async with session:
            try:
                with _sigterm_cancels(asyncio.current_task(), stopped):
                    async with session.progress(int((~done).sum())):
                        await session.interpreter.run(todo(), writer.add)
            except BaseException as exc:
                writer.flush()  # every finished row is kept for the resume
                if stopped and isinstance(exc, asyncio.CancelledError):
                    msg = f"stopped by SIGTERM; the finished rows are saved in {str(output.parts)!r}: run again to resume"
                    raise RunInterrupted(msg) from None
                raise
            writer.flush()
        final = output.finalize()
    return RunResult.of(path, rows_in=fingerprint.rows, rows_out=final.rows, failed=len(final.failed),
                        requests=session.stats.requests, stats=session.stats, plan=plan, input_schema=schema)
