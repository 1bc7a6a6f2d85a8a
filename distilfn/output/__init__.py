"""Writing outputs: whole frames atomically, and ``run_to``'s durable, resumable stream.

- :func:`write_frame`: a frame to ``.parquet``, ``.jsonl``, ``.csv`` or ``.json``, all or nothing;
- :class:`~distilfn.output.stream.StreamedOutput`: chunks, manifest, lock and resume
  (see :mod:`distilfn.output.manifest` for the files);
- :func:`read_output`: a finished stream read back as the exact frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from distilfn.output.manifest import atomic_write
from distilfn.output.stream import IncompleteOutputWarning, StreamedOutput, finished_rows, manifest_path, parts_dir, read_output

__all__ = ["write_frame", "read_output", "finished_rows", "StreamedOutput", "IncompleteOutputWarning", "parts_dir", "manifest_path"]


def write_frame(df: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``.parquet``, ``.jsonl``/``.ndjson``, ``.csv`` or ``.json`` atomically.

    >>> import tempfile, pathlib
    >>> p = write_frame(pl.DataFrame({"a": [1]}), pathlib.Path(tempfile.mkdtemp()) / "x.jsonl")
    >>> p.read_text()
    '{"a":1}\\n'
    """
    p = Path(path).expanduser()
    writers = {
        ".parquet": df.write_parquet,
        ".jsonl": df.write_ndjson,
        ".ndjson": df.write_ndjson,
        ".csv": df.write_csv,
        ".json": df.write_json,
    }
    suffix = p.suffix.lower()
    if suffix not in writers:
        msg = f"cannot write {str(p)!r}: expected a .parquet, .jsonl, .ndjson, .csv or .json suffix, got {suffix!r}"
        raise ValueError(msg)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, writers[suffix])
    return p
