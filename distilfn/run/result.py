"""What ``run_to`` returns: where the output is, and how the run went."""

from __future__ import annotations

import warnings
from pathlib import Path

import msgspec
import polars as pl

__all__ = ["RunResult", "RowsFailedWarning", "warn_failed"]


class RowsFailedWarning(UserWarning):
    """Some input rows ended with an error (their outputs are null, the error is in ``meta.*``)."""


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    """A finished ``run_to``: the output path and the counts. Path-like, so ``pl.read_parquet(result)`` works.

    ``failed`` is the number of input rows with an error in their outputs; running the
    same call again re-sends exactly their failed requests.
    """

    path: Path
    rows_in: int
    rows_out: int
    failed: int
    requests: int = 0
    already_complete: bool = False

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def read(self) -> pl.DataFrame:
        """The output as the exact frame ``run`` returns (see :func:`distilfn.output.read_output`)."""
        from distilfn.output import read_output

        return read_output(self.path)


def warn_failed(failed: int, total: int, *, again: str, stacklevel: int = 4) -> None:
    """Warn that ``failed`` of ``total`` input rows failed, and how to retry them."""
    if failed:
        warnings.warn(
            f"{failed} of {total} input rows failed; the errors are in the meta.<step> columns' 'error' field. "
            f"{again}",
            RowsFailedWarning,
            stacklevel=stacklevel,
        )
