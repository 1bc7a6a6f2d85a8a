"""The manifest of a streamed output: what was run, on what, and what is finished.

While a run writes ``out.parquet`` (or ``out.jsonl``), its working directory
``out.parquet.parts/`` holds:

- ``manifest.json``: the :class:`Header`, written once: the plan's fingerprint (and the
  readable lines it hashes), the input's fingerprint, the output schema, the format;
- ``chunks.jsonl``: one :class:`Chunk` line per part file, appended (and fsynced) after
  the part itself is in place: its file, checksum, size, the input rows it holds
  (always whole input rows) and which of them failed;
- ``part-NNNNNN.parquet``: the chunks, each with the hidden input-row column.

When the run finishes, ``out.parquet`` is written in input order and
``out.parquet.manifest.json`` (a :class:`Final`) beside it records the header, the
file's checksum, the output rows per input row and the input rows that failed.
Whether an output is finished, damaged or resumable is read from these files, never
guessed from row contents.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

__all__ = [
    "Header",
    "Chunk",
    "Final",
    "ROW",
    "VERSION",
    "encode_schema",
    "decode_schema",
    "file_digest",
    "atomic_write",
    "fsync_dir",
    "ranges",
    "expand_ranges",
    "run_lengths",
    "expand_run_lengths",
]

VERSION = 1
ROW = "__distilfn_row"
"""The hidden column of part files: the input row each output row came from."""


class Header(msgspec.Struct, frozen=True, kw_only=True):
    """What a streamed output is the result of."""

    version: int = VERSION
    format: str
    plan: str
    plan_lines: list[str]
    input_rows: int
    input_digest: str
    schema: str
    columns: dict[str, str]


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """One part file: whole input rows, with a checksum."""

    file: str
    rows: int
    sources: list[list[int]]
    failed: list[int] = []
    digest: str
    bytes: int


class Final(msgspec.Struct, frozen=True, kw_only=True):
    """The manifest beside a finished output."""

    header: Header
    rows: int
    counts: list[list[int]]
    failed: list[int]
    digest: str
    bytes: int


def encode_schema(schema: pl.Schema) -> str:
    """A schema as text (base64 of an empty Arrow IPC frame): exact, dtypes and all."""
    buffer = io.BytesIO()
    pl.DataFrame(schema=schema).write_ipc(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_schema(text: str) -> pl.Schema:
    """The schema :func:`encode_schema` wrote.

    >>> s = pl.Schema({"a": pl.Int8, "b": pl.List(pl.Date)})
    >>> decode_schema(encode_schema(s)) == s
    True
    """
    return pl.read_ipc(io.BytesIO(base64.b64decode(text))).schema


def file_digest(path: Path) -> tuple[str, int]:
    """The blake2b digest and size of a file, read in blocks."""
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)``, fsync it, then rename it to ``path``: all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


def ranges(indices: Iterable[int]) -> list[list[int]]:
    """Sorted indices as ``[start, end)`` ranges.

    >>> ranges([5, 1, 2, 3, 7])
    [[1, 4], [5, 6], [7, 8]]
    """
    out: list[list[int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def expand_ranges(spans: Iterable[list[int]]) -> Iterator[int]:
    """The indices in ``[start, end)`` ranges.

    >>> list(expand_ranges([[1, 3], [5, 6]]))
    [1, 2, 5]
    """
    for start, end in spans:
        yield from range(start, end)


def run_lengths(counts: np.ndarray) -> list[list[int]]:
    """``[value, times]`` pairs of an array of counts.

    >>> run_lengths(np.array([1, 1, 1, 0, 2, 2]))
    [[1, 3], [0, 1], [2, 2]]
    """
    if len(counts) == 0:
        return []
    change = np.flatnonzero(np.diff(counts)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(counts)]])
    return [[int(counts[s]), int(e - s)] for s, e in zip(starts, ends, strict=True)]


def expand_run_lengths(pairs: Iterable[list[int]]) -> np.ndarray:
    """The counts that :func:`run_lengths` compressed.

    >>> expand_run_lengths([[1, 3], [0, 1]]).tolist()
    [1, 1, 1, 0]
    """
    pairs = list(pairs)
    if not pairs:
        return np.zeros(0, dtype=np.int64)
    values, times = zip(*pairs, strict=True)
    return np.repeat(np.array(values, dtype=np.int64), np.array(times, dtype=np.int64))
