"""JSON Lines that read back to the exact frame: what to write for types JSON lacks, and
how to restore them from the output schema.

Written as Polars writes them: dates, datetimes, times and decimals as ISO strings,
categoricals and enums as strings. Changed before writing: durations become integers in
their time unit, binary becomes base64. Reading back with the schema recorded in the
output's manifest undoes both (see :func:`distilfn.output.read_output`).

JSON has no NaN or infinity: such floats are written as null (use Parquet to keep them).
"""

from __future__ import annotations

import polars as pl

from distilfn.dtypes import instance

__all__ = ["encode", "reading_dtype", "restore"]


def _needs_encoding(dtype: pl.DataType) -> bool:
    dtype = instance(dtype)
    if isinstance(dtype, pl.Duration | pl.Binary):
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return _needs_encoding(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_needs_encoding(f.dtype) for f in dtype.fields)
    return False


def _encode(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    dtype = instance(dtype)
    if isinstance(dtype, pl.Duration):
        return expr.cast(pl.Int64)
    if isinstance(dtype, pl.Binary):
        return expr.bin.encode("base64")
    if isinstance(dtype, pl.List | pl.Array):
        inner = expr.cast(pl.List(dtype.inner)) if isinstance(dtype, pl.Array) else expr
        return inner.list.eval(_encode(pl.element(), dtype.inner))
    if isinstance(dtype, pl.Struct):
        fields = [_encode(expr.struct.field(f.name), f.dtype).alias(f.name) for f in dtype.fields]
        return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields))
    return expr


def encode(lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """``lf`` with durations as integers and binary as base64, ready for ``sink_ndjson``."""
    changed = [_encode(pl.col(name), dtype).alias(name) for name, dtype in schema.items() if _needs_encoding(dtype)]
    return lf.with_columns(changed) if changed else lf


def reading_dtype(dtype: pl.DataType) -> pl.DataType:
    """The dtype that ``read_ndjson`` can read a column of ``dtype`` as, before :func:`restore`.

    >>> reading_dtype(pl.List(pl.Int8)), reading_dtype(pl.Date())
    (List(Int64), String)
    """
    dtype = instance(dtype)
    if isinstance(dtype, pl.UInt64):
        return pl.UInt64()
    if dtype.is_integer() or isinstance(dtype, pl.Duration):
        return pl.Int64()
    if dtype.is_float():
        return pl.Float64()
    if isinstance(dtype, pl.Boolean | pl.Null):
        return dtype
    if isinstance(dtype, pl.List | pl.Array):
        return pl.List(reading_dtype(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: reading_dtype(f.dtype) for f in dtype.fields})
    return pl.String()


def restore(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``expr`` (read as :func:`reading_dtype`) turned back into ``dtype``."""
    dtype = instance(dtype)
    if isinstance(dtype, pl.Date):
        return expr.str.to_date("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return expr.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
    if isinstance(dtype, pl.Time):
        return expr.str.to_time()
    if isinstance(dtype, pl.Binary):
        return expr.str.decode("base64")
    if isinstance(dtype, pl.List | pl.Array):
        restored = expr.list.eval(restore(pl.element(), dtype.inner))
        return restored.cast(dtype) if isinstance(dtype, pl.Array) else restored
    if isinstance(dtype, pl.Struct):
        fields = [restore(expr.struct.field(f.name), f.dtype).alias(f.name) for f in dtype.fields]
        return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields))
    return expr.cast(dtype)
