"""What ``run_to`` returns: where the output is, and how the run went."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["RunResult", "RowsFailedWarning", "warn_failed"]


class RowsFailedWarning(UserWarning):
    """Some input rows ended with an error (their outputs are null, the error is in ``meta.*``)."""


class RunResult(type(Path())):  # a Path: pl.read_parquet(result) and open(result) work
    """A finished ``run_to``: the output's path, with the counts of the run.

    ``failed`` is the number of input rows with an error in their outputs; running the
    same call again re-sends exactly their failed requests. ``already_complete`` says
    the output was finished by an earlier run and nothing was done. ``stats`` holds this
    run's counters (tokens and cost per step and model: ``stats.usage``), ``plan`` the plan
    that wrote it and ``input_schema`` its input's (what :func:`distilfn.hub.save` describes
    in the dataset card).
    """

    rows_in: int
    rows_out: int
    failed: int
    requests: int
    already_complete: bool
    stats: Any
    plan: Any
    input_schema: Any

    @classmethod
    def of(cls, path: Path, *, rows_in: int, rows_out: int, failed: int, requests: int = 0,
           already_complete: bool = False, stats: Any = None, plan: Any = None, input_schema: Any = None) -> RunResult:
        """The result for ``path`` with its counts."""
        result = cls(path)
        result.rows_in, result.rows_out, result.failed = rows_in, rows_out, failed
        result.requests, result.already_complete = requests, already_complete
        result.stats, result.plan, result.input_schema = stats, plan, input_schema
        return result

    @property
    def input_tokens(self) -> int:
        """Input tokens this run sent (0 when nothing was done)."""
        return self.stats.input_tokens if self.stats is not None else 0

    @property
    def output_tokens(self) -> int:
        """Output tokens this run received."""
        return self.stats.output_tokens if self.stats is not None else 0

    @property
    def cost(self) -> float:
        """US dollars of this run's priced requests (see ``stats.unpriced`` for models without a price)."""
        return self.stats.cost if self.stats is not None else 0.0

    @property
    def path(self) -> Path:
        """The output file as a plain Path."""
        return Path(self)

    def read(self) -> pl.DataFrame:
        """The output as the exact frame ``run`` returns (see :func:`distilfn.output.read_output`)."""
        from distilfn.output import read_output

        return read_output(self.path)


def _caller_level() -> int:
    """The stack level of the first caller outside distilfn (for warnings)."""
    package = str(Path(__file__).resolve().parent.parent)
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


_UNCACHED = "no answer was cached (cache=False, or no model has an identity)"


def warn_failed(failed: int, total: int, *, cached: bool, resumed: bool, rows: str = "input rows") -> None:
    """Warn that ``failed`` of ``total`` rows failed, and what running the same call again
    does: with ``cached`` answers it re-sends only the failed requests; without, every
    request of the rows it redoes (all of them for ``run``, only the failed rows when the
    output ``resumed``)."""
    if not failed:
        return
    if cached:
        again = "Running the same call again re-sends only their failed requests (answers that arrived are cached)."
    elif resumed:
        again = ("Running the same call again redoes only these rows, but sends all of their requests again: "
                 f"{_UNCACHED}.")
    else:
        again = f"Running the same call again sends every request again: {_UNCACHED}."
    warnings.warn(
        f"{failed} of {total} {rows} failed; the errors are in the meta.<step> columns' 'error' field. {again}",
        RowsFailedWarning,
        stacklevel=_caller_level(),
    )
