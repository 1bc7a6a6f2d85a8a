"""One assembly: finished rows to a typed frame, for ``run`` and for every chunk of ``run_to``.

Input columns are gathered from the input frames (their dtypes kept exactly); every
other column is built from the rows' values with the dtype the compiler decided.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from distilfn.compile import Compiled
from distilfn.meta import MODEL_META
from distilfn.run.columns import build_column
from distilfn.tree import Unit

__all__ = ["Sources", "assemble", "gathered_columns", "model_name_of"]

_MODEL_NAME_FIELD = [f.name for f in MODEL_META.fields].index("model_name")


def model_name_of(record: Any) -> str | None:
    """The model name in a model step's metadata value: a record, or (inside a group or an
    evolve) a list of them, whose last named answer counts.

    >>> model_name_of([(None, "a", "m1", 1, 1, None, False), (None, None, None, None, None, "skipped", False)])
    'm1'
    """
    if isinstance(record, tuple):
        return record[_MODEL_NAME_FIELD]
    if isinstance(record, list):
        for item in reversed(record):
            name = model_name_of(item)
            if name is not None:
                return name
    return None


def gathered_columns(compiled: Compiled) -> list[str]:
    """The input columns that appear unchanged in the output (gathered, never rebuilt)."""
    return list(dict.fromkeys(c.source for c in compiled.columns if c.source is not None and c.slot == c.source))


class Sources:
    """Input rows kept until their outputs are assembled: frames by their first row's index."""

    def __init__(self, columns: Sequence[str], schema: pl.Schema):
        self.columns = list(columns)
        self._empty = pl.DataFrame(schema={c: schema[c] for c in self.columns})
        self._offsets: list[int] = []
        self._frames: list[pl.DataFrame] = []
        self._left: list[int] = []

    @classmethod
    def of(cls, frame: pl.DataFrame, columns: Sequence[str]) -> Sources:
        """All rows of one in-memory frame."""
        sources = cls(columns, frame.schema)
        sources.add(0, frame, frame.height)
        return sources

    def add(self, offset: int, frame: pl.DataFrame, pending: int) -> None:
        """Keep ``frame`` (rows ``offset``...) until ``pending`` of its rows are released."""
        if pending:
            self._offsets.append(offset)
            self._frames.append(frame.select(self.columns))
            self._left.append(pending)

    def gather(self, index: Sequence[int]) -> pl.DataFrame:
        """The kept input columns of rows ``index``, in that order."""
        if not self.columns:
            return pl.DataFrame(height=len(index))
        if len(index) == 0:
            return self._empty
        idx = np.asarray(index, dtype=np.int64)
        if len(self._frames) == 1:
            return self._frames[0][pl.Series(idx - self._offsets[0])]
        which = np.searchsorted(np.asarray(self._offsets), idx, side="right") - 1
        order = np.argsort(which, kind="stable")
        pieces = []
        for batch in np.unique(which):
            local = idx[which == batch] - self._offsets[batch]
            pieces.append(self._frames[batch][pl.Series(local)])
        combined = pl.concat(pieces, how="vertical")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return combined[pl.Series(inverse)]

    def release(self, index: Sequence[int]) -> None:
        """Rows ``index`` are written: drop the frames none of whose rows are still pending."""
        if not self._frames:
            return
        which = np.searchsorted(np.asarray(self._offsets), np.asarray(index, dtype=np.int64), side="right") - 1
        for batch, count in zip(*np.unique(which, return_counts=True), strict=True):
            self._left[batch] -= int(count)
        keep = [i for i, left in enumerate(self._left) if left > 0]
        self._offsets = [self._offsets[i] for i in keep]
        self._frames = [self._frames[i] for i in keep]
        self._left = [self._left[i] for i in keep]


def assemble(compiled: Compiled, finished: Sequence[tuple[int, list[Unit]]], sources: Sources) -> tuple[pl.DataFrame, np.ndarray]:
    """The output rows of ``finished`` (input row, its units) as a frame of the compiled schema,
    and the input row of every output row."""
    index = np.fromiter((i for i, units in finished for _ in units), dtype=np.int64)
    units = [u for _, us in finished for u in us]
    inputs = sources.gather(index)
    series = []
    for column in compiled.all_columns:
        if column.source is not None and column.slot == column.source:
            series.append(inputs[column.source].alias(column.name))
            continue
        if column.pick is not None:
            values = [model_name_of(u.values.get(column.slot)) for u in units]
        else:
            values = [u.values.get(column.slot) for u in units]
        built, bad = build_column(column.name, values, column.dtype)
        if bad:
            row, problem = next(iter(bad.items()))
            warnings.warn(
                f"column {column.name!r} could not store {len(bad)} values (output row {row}: {problem}); they are null",
                RuntimeWarning,
                stacklevel=2,
            )
        series.append(built)
    return pl.DataFrame(series, height=len(units)), index
