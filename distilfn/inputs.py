"""Reading inputs: lazy scans by file suffix, frames from whatever users pass, and the
input's fingerprint (so that a resumed run can tell the input changed)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

__all__ = ["scan_input", "read_input", "as_frame", "as_lazy", "InputFingerprint", "fingerprint_input", "BATCH_ROWS"]

BATCH_ROWS = 1000
"""Rows read from a lazy input at a time."""

_READERS = {".parquet": pl.scan_parquet, ".jsonl": pl.scan_ndjson, ".ndjson": pl.scan_ndjson, ".csv": pl.scan_csv}


def scan_input(path: str | os.PathLike[str]) -> pl.LazyFrame:
    """Scan a ``.parquet``, ``.jsonl``/``.ndjson``, ``.csv`` or ``.json`` file lazily.

    A ``.json`` file (one JSON array of rows) cannot be streamed: it is read whole.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = p.write_text('{"instruction": "Hi"}\\n')
    >>> scan_input(p).collect()["instruction"].to_list()
    ['Hi']
    """
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix not in _READERS and suffix != ".json":
        msg = f"cannot read input file {str(p)!r}: expected a .parquet, .jsonl, .ndjson, .csv or .json file, got suffix {suffix!r}"
        raise ValueError(msg)
    if not p.is_file():
        msg = f"input file {str(p)!r} does not exist"
        raise FileNotFoundError(msg)
    if suffix == ".json":
        return pl.read_json(p).lazy()
    if suffix in (".jsonl", ".ndjson"):
        return pl.scan_ndjson(p, infer_schema_length=None)
    return _READERS[suffix](p)


def read_input(data: str | os.PathLike[str] | pl.DataFrame | pl.LazyFrame | Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A DataFrame from a path (see :func:`scan_input`), a frame or a list of row dicts.

    >>> read_input([{"instruction": "Hi"}]).shape
    (1, 1)
    """
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    if isinstance(data, str | os.PathLike):
        return scan_input(data).collect()
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return pl.from_dicts(list(data), infer_schema_length=None)
    msg = f"cannot read input of type {type(data).__name__}: expected a path, a polars frame or a list of dicts"
    raise TypeError(msg)


def as_frame(data: Any) -> pl.DataFrame:
    """The input as a DataFrame: a frame, a lazy frame, rows, a column dict, or a file path."""
    if isinstance(data, Mapping):
        return pl.DataFrame(data)
    try:
        return read_input(data)
    except TypeError:
        msg = f"plan.run expects a polars DataFrame, a file path, rows or a column dict, got {type(data).__name__}"
        raise TypeError(msg) from None


def as_lazy(data: Any) -> pl.LazyFrame:
    """The input as a LazyFrame: files are scanned, not read."""
    if isinstance(data, str | os.PathLike):
        return scan_input(data)
    if isinstance(data, pl.LazyFrame):
        return data
    return as_frame(data).lazy()


class InputFingerprint(msgspec.Struct, frozen=True):
    """What identifies an input: its row count and a digest of its schema and values."""

    rows: int
    digest: str


def fingerprint_input(lazy: pl.LazyFrame, *, batch_rows: int = BATCH_ROWS, schema: pl.Schema | None = None) -> InputFingerprint:
    """The fingerprint of a (lazy) input, read batch by batch in bounded memory.

    It covers the column names, dtypes and values in order; it does not depend on how
    the input is split into batches. ``schema`` is the input's, when the caller has it.

    >>> a = fingerprint_input(pl.LazyFrame({"q": ["x", "y"]}))
    >>> a == fingerprint_input(pl.LazyFrame({"q": ["x", "y"]})), a.rows
    (True, 2)
    >>> a == fingerprint_input(pl.LazyFrame({"q": ["x", "z"]}))
    False
    """
    schema = schema if schema is not None else lazy.collect_schema()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(list(schema.items())).encode())
    plain = lazy.select(_hashable(name, dtype) for name, dtype in schema.items()) if schema else lazy
    rows = 0
    for batch in plain.collect_batches(chunk_size=batch_rows):
        rows += batch.height
        if batch.width:
            digest.update(batch.write_ndjson().encode("utf-8"))
    if not schema:
        rows = lazy.select(pl.len()).collect().item()
    return InputFingerprint(rows=rows, digest=digest.hexdigest())


def _hashable(name: str, dtype: pl.DataType) -> pl.Expr:
    """An expression writing the column as JSON can (binary as hex, the rest as it is)."""
    if isinstance(dtype, pl.Binary):
        return pl.col(name).bin.encode("hex")
    if isinstance(dtype, pl.Object):
        msg = f"the input column {name!r} holds Python objects, which cannot be stored or fingerprinted"
        raise TypeError(msg)
    return pl.col(name)
