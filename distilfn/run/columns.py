"""Building typed Polars columns from Python values, fast.

Polars builds a list column from Python lists at several microseconds a row; this
module builds nested columns bottom-up instead: the flat values of every list first,
then the lists from their lengths, and structs field by field (records may be dicts
or tuples in field order). A value that its dtype cannot hold does not sink the
column: it is found, left null, and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from distilfn.dtypes import StoreError, checker, instance

__all__ = ["build_column"]


def build_column(name: str, values: Sequence[Any], dtype: pl.DataType) -> tuple[pl.Series, dict[int, str]]:
    """The column ``name`` of ``dtype`` holding ``values``, and the rows whose value it could not hold.

    >>> s, bad = build_column("x", [[1, 2], None, []], pl.List(pl.Int64))
    >>> s.to_list(), bad
    ([[1, 2], None, []], {})
    >>> s, bad = build_column("x", ["a", 3], pl.String())
    >>> s.to_list(), bad
    (['a', None], {1: 'expected a string, got int 3'})
    """
    try:
        return _build(values, dtype).alias(name), {}
    except Exception:  # noqa: BLE001 - find the rows at fault below
        pass
    check = checker(dtype)
    clean: list[Any] = []
    bad: dict[int, str] = {}
    for row, value in enumerate(values):
        try:
            clean.append(check(value))
        except StoreError as exc:
            bad[row] = str(exc)
            clean.append(None)
    return _build(clean, dtype).alias(name), bad


def _build(values: Sequence[Any], dtype: pl.DataType) -> pl.Series:
    dtype = instance(dtype)
    if isinstance(dtype, pl.List | pl.Array):
        return _lists(values, dtype)
    if isinstance(dtype, pl.Struct):
        return _structs(values, dtype)
    return pl.Series(values=values, dtype=dtype, strict=True)


def _lists(values: Sequence[Any], dtype: pl.List | pl.Array) -> pl.Series:
    n = len(values)
    lengths = np.zeros(n, dtype=np.int64)
    valid = np.ones(n, dtype=bool)
    flat: list[Any] = []
    for row, value in enumerate(values):
        if value is None:
            valid[row] = False
        else:
            lengths[row] = len(value)
            flat.extend(value)
    inner = _build(flat, dtype.inner)
    listed = _wrap(inner, lengths, n)
    if not valid.all():
        listed = pl.select(pl.when(pl.Series(valid)).then(listed).otherwise(None)).to_series()
    if isinstance(dtype, pl.Array):
        listed = listed.cast(dtype)
    return listed


def _wrap(inner: pl.Series, lengths: np.ndarray, n: int) -> pl.Series:
    """Rows of ``inner`` cut into lists of ``lengths``."""
    dtype = pl.List(inner.dtype)
    if n == 0:
        return pl.Series(values=[], dtype=dtype)
    if len(inner) == 0:
        return pl.repeat([], n, dtype=dtype, eager=True)
    if (lengths == lengths[0]).all() and not isinstance(inner.dtype, pl.List | pl.Array):
        return inner.reshape((n, int(lengths[0]))).cast(dtype)
    reps = np.maximum(lengths, 1)
    row = np.repeat(np.arange(n), reps)
    keep = np.ones(len(row), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(reps)[:-1]])
    keep[starts[lengths == 0]] = False
    position = np.zeros(len(row), dtype=np.int64)
    position[keep] = np.arange(len(inner))
    frame = pl.DataFrame({"v": inner.gather(position), "row": row, "keep": keep})
    return frame.group_by("row", maintain_order=True).agg(pl.col("v").filter(pl.col("keep")))["v"]


def _structs(values: Sequence[Any], dtype: pl.Struct) -> pl.Series:
    fields = dtype.fields
    valid = [v is not None for v in values]
    columns = []
    for position, field in enumerate(fields):
        name = field.name
        picked = [
            None if v is None else (v[position] if isinstance(v, tuple) else v.get(name))
            for v in values
        ]
        columns.append(_build(picked, field.dtype).alias(name))
    if not columns:
        return pl.Series(values=[None] * len(values), dtype=dtype)
    series = pl.DataFrame(columns, height=len(values)).to_struct()
    if not all(valid):
        series = pl.select(pl.when(pl.Series(valid)).then(series).otherwise(None)).to_series()
    return series
