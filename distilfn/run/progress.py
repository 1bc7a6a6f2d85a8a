"""What a person sees while a run goes and when it ends: a live view (rich) and a summary.

The live view shows, per step, the results finished (and those still in the step), the
run's true rate (rows finished and requests answered per second), the ETA, requests in
flight, retries, timeouts and throttles (as the models report them, see
:meth:`~distilfn.run.stats.RunStats.model_counter`) and the cost so far. It shows on an
interactive terminal or in Jupyter, outside CI, unless ``progress=False`` or ``quiet``.
The summary prints at the end unless ``summary=False`` or ``quiet``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from distilfn.run.stats import RunStats, batch_line, endpoint_line, money

__all__ = ["Progress", "stderr_console", "summary_table", "live_view", "progress_wanted", "in_jupyter"]

MODEL_COUNTERS = ("retries", "timeouts", "throttles")
"""The models' own counters the live view shows when a model keeps them."""


def in_jupyter() -> bool:
    """Whether this runs inside a Jupyter kernel (whose stderr is no terminal, but a person reads it)."""
    if "ipykernel" not in sys.modules:
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_wanted(progress: bool | None, stream: Any = None) -> bool:
    """Show progress? ``None`` means: on an interactive terminal or in Jupyter, outside CI."""
    if progress is not None:
        return progress
    if os.environ.get("CI"):
        return False
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) or in_jupyter()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _eta(stats: RunStats, total: int | None) -> str:
    if not total:
        return "-"
    if stats.rows_done == 0:
        return "after the first row"
    return _duration((total - stats.rows_done) / stats.rows_per_second)


def headline(stats: RunStats, total: int | None) -> str:
    """One line: rows finished, true rates, ETA, in flight, the models' counters, cost."""
    wall = max(stats.wall_time, 1e-9)
    answered = stats.requests - stats.in_flight  # requests sent to models and back (cache hits excluded)
    parts = [
        f"rows {stats.rows_done}/{total if total is not None else '?'}",
        f"{stats.rows_per_second:.2f} rows/s",
        f"{max(answered, 0) / wall:.2f} req/s",
        f"ETA {_eta(stats, total)}",
        f"in flight {stats.in_flight}",
    ]
    for name in MODEL_COUNTERS:
        value = stats.model_counter(name)
        if value is not None:
            parts.append(f"{name} {value}")
    parts += [f"tokens {stats.input_tokens}+{stats.output_tokens}", f"cost {money(stats)}", _duration(stats.wall_time)]
    return "  ".join(parts)


def live_view(stats: RunStats, total: int | None) -> Group:
    """The live view: the headline, then per step the results done, still in it, failed, requests, cache hits."""
    table = Table(box=None, pad_edge=False)
    for column in ("step", "done", "in step", "failed", "requests", "cached", "tokens out"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for s in stats.steps.values():
        done = s.ok + s.failed
        table.add_row(s.label, str(done), str(s.rows - done), str(s.failed), str(s.requests), str(s.cache_hits), str(s.output_tokens))
    return Group(Text(headline(stats, total)), table)


def summary_table(stats: RunStats) -> Table:
    """The final summary: per step rows, failures, requests, cache hits, tokens and cost; then per model."""
    table = Table(
        title=(
            f"distilfn run: {stats.rows_in} rows in, {stats.rows_out} rows out, {stats.rows_failed} failed, "
            f"{stats.requests} requests, {stats.input_tokens}+{stats.output_tokens} tokens, cost {money(stats)}, "
            f"{stats.wall_time:.1f}s"
        ),
        title_justify="left",
    )
    for column in ("step", "model", "rows", "ok", "failed: parse/request/skipped", "requests", "cached", "tokens in", "tokens out", "cost"):
        table.add_column(column, justify="left" if column in ("step", "model") else "right")
    for s in stats.steps.values():
        models = [u for u in stats.usage.values() if u.step == s.label]
        table.add_row(
            s.label, ", ".join(u.model for u in models) or "-", str(s.rows), str(s.ok),
            f"{s.parse_failed}/{s.request_failed}/{s.skipped}", str(s.requests), str(s.cache_hits),
            str(s.input_tokens), str(s.output_tokens), "-" if s.cost is None else f"${s.cost:.4f}",
        )
    captions = [endpoint_line(e) for e in stats.endpoints]
    if stats.batches:
        captions.append(batch_line(stats.batches))
    if captions:
        table.caption, table.caption_justify = "\n".join(captions), "left"
    return table


def stderr_console() -> Console:
    """The console on stderr; wide enough for the summary when stderr is a file or a pipe."""
    out = Console(stderr=True)
    return out if out.is_terminal or out.is_jupyter else Console(stderr=True, width=160)


LINE_EVERY = 15.0
"""Seconds between two plain progress lines (``progress="lines"``: logs, pipes, CI)."""


class Progress:
    """Refreshes the live view from ``stats`` while a run is going; prints the summary after.

    ``lines`` prints the headline as a plain line every :data:`LINE_EVERY` seconds instead
    (for a log or a pipe, where a live view cannot redraw)."""

    def __init__(self, stats: RunStats, total: int | None, *, enabled: bool, summary: bool, console: Console | None = None,
                 lines: bool = False):
        self.stats = stats
        self.total = total
        self.enabled = enabled
        self.summary = summary
        self.lines = lines and not enabled
        self.console = console if console is not None else stderr_console()
        self._live: Live | None = None
        self._task: asyncio.Task | None = None

    async def _print_lines(self) -> None:
        while True:
            await asyncio.sleep(LINE_EVERY)
            self.console.print(f"distilfn: {headline(self.stats, self.total)}", markup=False, highlight=False, soft_wrap=True)

    async def __aenter__(self) -> Progress:
        if self.lines:
            self._task = asyncio.create_task(self._print_lines())
        if self.enabled:
            self._live = Live(live_view(self.stats, self.total), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
            self._task = asyncio.create_task(self._refresh())
        return self

    async def _refresh(self) -> None:
        assert self._live is not None
        while True:
            await asyncio.sleep(0.25)
            self._live.update(live_view(self.stats, self.total))

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._live is not None:
            self._live.stop()
        if self.summary:
            self.console.print(summary_table(self.stats))
