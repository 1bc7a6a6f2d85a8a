"""A live progress display for runs (rich), quiet when not on a terminal."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from distilfn.run.stats import RunStats, endpoint_line

__all__ = ["Progress", "summary_table", "progress_wanted"]


def progress_wanted(progress: bool | None, stream: Any = None) -> bool:
    """Show progress? ``None`` means: only on an interactive terminal outside CI."""
    if progress is not None:
        return progress
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")


def _eta(stats: RunStats, total: int | None) -> str:
    if not total or stats.rows_done == 0:
        return "-"
    rate = stats.rows_done / max(stats.wall_time, 1e-9)
    return f"{(total - stats.rows_done) / rate:.0f}s"


def live_table(stats: RunStats, total: int | None) -> Table:
    """The live view: rows done per step, requests in flight, rate, errors, ETA."""
    rate = stats.rows_done / max(stats.wall_time, 1e-9)
    title = (
        f"rows {stats.rows_done}/{total if total is not None else '?'}  "
        f"in flight {stats.in_flight}  {rate:.1f} rows/s  ETA {_eta(stats, total)}"
    )
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("step", "done", "ok", "errors", "requests", "cached"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for s in stats.steps.values():
        table.add_row(s.label, str(s.rows), str(s.ok), str(s.failed), str(s.requests), str(s.cache_hits))
    return table


def summary_table(stats: RunStats) -> Table:
    """The final summary: per step rows, requests, tokens, cache hits, failures; wall time."""
    table = Table(
        title=(
            f"distilfn run: {stats.rows_in} rows in, {stats.rows_out} rows out, "
            f"{stats.requests} requests, {stats.wall_time:.1f}s"
        ),
        title_justify="left",
    )
    for column in ("step", "rows", "ok", "parse failed", "request failed", "skipped", "requests", "cache hits", "tokens in", "tokens out"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for s in stats.steps.values():
        table.add_row(
            s.label, str(s.rows), str(s.ok), str(s.parse_failed), str(s.request_failed), str(s.skipped),
            str(s.requests), str(s.cache_hits), str(s.input_tokens), str(s.output_tokens),
        )
    if stats.endpoints:
        table.caption = "\n".join(endpoint_line(e) for e in stats.endpoints)
        table.caption_justify = "left"
    return table


class Progress:
    """Refreshes a live table from ``stats`` while a run is going; prints the summary after."""

    def __init__(self, stats: RunStats, total: int | None, *, enabled: bool, summary: bool, console: Console | None = None):
        self.stats = stats
        self.total = total
        self.enabled = enabled
        self.summary = summary
        self.console = console or Console(stderr=True)
        self._live: Live | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Progress:
        if self.enabled:
            self._live = Live(live_table(self.stats, self.total), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
            self._task = asyncio.create_task(self._refresh())
        return self

    async def _refresh(self) -> None:
        assert self._live is not None
        while True:
            await asyncio.sleep(0.25)
            self._live.update(live_table(self.stats, self.total))

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._live is not None:
            self._live.stop()
        if self.summary:
            self.console.print(summary_table(self.stats))
