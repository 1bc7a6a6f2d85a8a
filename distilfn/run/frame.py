"""Turning finished rows back into a Polars frame that keeps the input's dtypes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from distilfn.plan import Resolved

__all__ = ["assemble"]


def assemble(
    resolved: Resolved,
    source: pl.DataFrame,
    rows: Sequence[dict[str, Any]],
    source_index: Sequence[int],
    *,
    keep_input: bool,
) -> pl.DataFrame:
    """Build the output frame: input columns (gathered from ``source``, dtypes kept), then
    each step's outputs in plan order, then the metadata columns.

    ``keep_input`` is False when a step renamed, selected or replaced input columns;
    then every column is rebuilt from the row values.
    """
    columns = list(resolved.columns)
    made = [c for c in columns if not (keep_input and c in source.columns)]
    series: list[pl.Series] = []
    if keep_input:
        inputs = [c for c in columns if c in source.columns]
        gathered = source.select(inputs)[list(source_index)] if rows else source.select(inputs).clear()
        series.extend(gathered.get_columns())
    for name in [*made, *resolved.meta_columns]:
        values = [row.get(name) for row in rows]
        series.append(pl.Series(name, values, strict=False))
    frame = pl.DataFrame(series) if series else pl.DataFrame()
    return frame.select([c for c in [*columns, *resolved.meta_columns] if c in frame.columns])
