"""Reading inputs and writing outputs: lazy scans, crash-safe chunked writing, resume.

Output layouts written by :class:`ChunkedWriter`:

* ``out.jsonl``: rows are appended chunk by chunk (write, flush, fsync). A crash can
  leave at most a torn last line, which readers ignore and a resumed writer cuts off.
* ``out.parquet``: while running, each chunk is a file ``out.parquet.parts/part-NNNNN.parquet``
  written under a temporary name and renamed into place, so a part is either complete
  or absent. ``close()`` streams the parts into ``out.parquet`` (atomic rename) and
  removes the parts. While ``out.parquet.parts`` exists, it - not ``out.parquet`` - holds
  the truth about what is finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import polars as pl

__all__ = [
    "scan_input",
    "read_input",
    "write_frame",
    "ChunkedWriter",
    "read_finished",
    "parts_dir",
    "IncompleteOutputWarning",
]

Format = Literal["parquet", "jsonl"]

_SUFFIX_FORMATS: dict[str, Format] = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_PART_GLOB = "part-*.parquet"


class IncompleteOutputWarning(UserWarning):
    """A finished-rows file had a torn or unreadable tail; that part was ignored."""


def _suffix(path: Path) -> str:
    return path.suffix.lower()


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
    suffix = _suffix(p)
    readers = {".parquet": pl.scan_parquet, ".jsonl": pl.scan_ndjson, ".ndjson": pl.scan_ndjson, ".csv": pl.scan_csv}
    if suffix not in readers and suffix != ".json":
        msg = f"cannot read input file {str(p)!r}: expected a .parquet, .jsonl, .ndjson, .csv or .json file, got suffix {suffix!r}"
        raise ValueError(msg)
    if not p.exists():
        msg = f"input file {str(p)!r} does not exist"
        raise FileNotFoundError(msg)
    if suffix == ".json":
        return pl.read_json(p).lazy()
    if suffix in (".jsonl", ".ndjson"):
        return pl.scan_ndjson(p, infer_schema_length=None)
    return readers[suffix](p)


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
    if isinstance(data, Sequence):
        return pl.from_dicts(list(data), infer_schema_length=None)
    msg = f"cannot read input of type {type(data).__name__}: expected a path, a polars frame or a list of dicts"
    raise TypeError(msg)


def _format_for(path: Path, fmt: str | None) -> Format:
    if fmt is not None:
        if fmt not in ("parquet", "jsonl"):
            msg = f"format must be 'parquet' or 'jsonl', got {fmt!r}"
            raise ValueError(msg)
        return fmt  # type: ignore[return-value]
    try:
        return _SUFFIX_FORMATS[_suffix(path)]
    except KeyError:
        msg = f"cannot tell the output format of {str(path)!r}: use a .parquet, .jsonl or .ndjson suffix or pass format=, got suffix {_suffix(path)!r}"
        raise ValueError(msg) from None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)``, fsync it, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


def write_frame(df: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``.parquet``, ``.jsonl``/``.ndjson``, ``.csv`` or ``.json`` atomically.

    >>> import tempfile, pathlib
    >>> p = write_frame(pl.DataFrame({"a": [1]}), pathlib.Path(tempfile.mkdtemp()) / "x.jsonl")
    >>> p.read_text()
    '{"a":1}\\n'
    """
    p = Path(path).expanduser()
    writers = {
        ".parquet": lambda t: df.write_parquet(t),
        ".jsonl": lambda t: df.write_ndjson(t),
        ".ndjson": lambda t: df.write_ndjson(t),
        ".csv": lambda t: df.write_csv(t),
        ".json": lambda t: df.write_json(t),
    }
    suffix = _suffix(p)
    if suffix not in writers:
        msg = f"cannot write {str(p)!r}: expected a .parquet, .jsonl, .ndjson, .csv or .json suffix, got {suffix!r}"
        raise ValueError(msg)
    p.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(p, writers[suffix])
    return p


def parts_dir(path: str | os.PathLike[str]) -> Path:
    """The directory of part files of a Parquet output being written.

    >>> parts_dir("out.parquet").name
    'out.parquet.parts'
    """
    p = Path(path)
    return p.with_name(p.name + ".parts")


def _concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


# -- reading what a (possibly killed) run finished ---------------------------------


def _readable_parts(directory: Path, columns: Sequence[str] | None) -> tuple[list[Path], list[pl.DataFrame]]:
    good: list[Path] = []
    frames: list[pl.DataFrame] = []
    for part in sorted(directory.glob(_PART_GLOB)):
        try:
            frame = pl.read_parquet(part)
        except Exception as exc:  # noqa: BLE001 - any unreadable part is skipped, never fatal
            warnings.warn(
                f"ignoring unreadable output part {str(part)!r} ({type(exc).__name__}); its rows count as unfinished",
                IncompleteOutputWarning,
                stacklevel=3,
            )
            continue
        good.append(part)
        if columns is not None:
            frame = frame.select([c for c in columns if c in frame.columns])
        frames.append(frame)
    return good, frames


_LINE_DECODER = msgspec.json.Decoder()
_BLOCK_BYTES = 8 << 20


class _JsonlPrefix:
    """The longest prefix of complete, valid JSON lines of a file, read block by block.

    Iterating yields blocks of whole valid lines (bounded memory); afterwards ``size``
    is the prefix length in bytes and ``problem`` says why it stopped early, or is None.
    """

    def __init__(self, path: Path, *, block_bytes: int = _BLOCK_BYTES) -> None:
        self.path = path
        self.block_bytes = block_bytes
        self.size = 0
        self.problem: str | None = None

    def __iter__(self):
        lines = 0
        carry = b""
        with open(self.path, "rb") as fh:
            while True:
                data = fh.read(self.block_bytes)
                if not data:
                    break
                data = carry + data
                end = data.rfind(b"\n") + 1
                carry = data[end:]
                pos = 0
                while pos < end:
                    nl = data.index(b"\n", pos)
                    line = data[pos:nl]
                    if line.strip():
                        try:
                            _LINE_DECODER.decode(line)
                        except msgspec.DecodeError:
                            self.problem = f"an unreadable line {lines + 1}"
                            if pos:
                                self.size += pos
                                yield data[:pos]
                            return
                    lines += 1
                    pos = nl + 1
                if end:
                    self.size += end
                    yield data[:end]
        if carry:
            self.problem = "a torn last line"

    def warn(self) -> None:
        if self.problem is not None:
            warnings.warn(
                f"ignoring {self.problem} at the end of {str(self.path)!r}; the rows from there on count as unfinished",
                IncompleteOutputWarning,
                stacklevel=4,
            )


def _read_jsonl_prefix(path: Path, columns: Sequence[str] | None) -> tuple[pl.DataFrame | None, int]:
    """The valid rows of a JSONL file (warning about a bad tail) and their size in bytes."""
    prefix = _JsonlPrefix(path)
    frames = []
    for block in prefix:
        frame = pl.read_ndjson(block, infer_schema_length=None)
        if columns is not None:
            frame = frame.select([c for c in columns if c in frame.columns])
        frames.append(frame)
    prefix.warn()
    return (_concat(frames) if frames else None), prefix.size


def read_finished(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None) -> pl.DataFrame | None:
    """The rows a previous, possibly killed, run finished writing to ``path``; None if none.

    Only complete rows are returned: a torn or unreadable JSONL tail (from the first bad
    line on) or an unreadable Parquet part is ignored with an
    :class:`IncompleteOutputWarning`, never an error. ``columns`` reads only those
    columns (e.g. the row index, to learn what is done without loading the texts).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out.jsonl"
    >>> _ = p.write_bytes(b'{"i":0}\\n{"i":1}\\n{"i":')
    >>> import warnings; warnings.simplefilter("ignore")
    >>> read_finished(p)["i"].to_list()
    [0, 1]
    """
    p = Path(path).expanduser()
    fmt = _format_for(p, None)
    if fmt == "jsonl":
        return _read_jsonl_prefix(p, columns)[0] if p.exists() else None
    parts = parts_dir(p)
    if parts.is_dir():
        _, frames = _readable_parts(parts, columns)
        return _concat(frames) if frames else None
    if not p.exists():
        return None
    try:
        return pl.read_parquet(p, columns=list(columns) if columns is not None else None)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(
            f"ignoring unreadable output file {str(p)!r} ({type(exc).__name__}); all its rows count as unfinished",
            IncompleteOutputWarning,
            stacklevel=2,
        )
        return None


# -- writing -------------------------------------------------------------------------


def _sorted(lf: pl.LazyFrame, order_by: str | Sequence[str], work: Path, *, rows_per_piece: int) -> pl.LazyFrame:
    """``lf`` sorted by ``order_by``, in bounded memory when that is one integer column.

    An integer key (a row index) is sorted range by range: each range of about
    ``rows_per_piece`` rows is sorted on its own and sunk to a file in ``work``; the
    result scans those files in order. Any other key is sorted in memory.
    """
    key = order_by if isinstance(order_by, str) else (order_by[0] if len(order_by) == 1 else None)
    if key is None or not lf.collect_schema()[key].is_integer():
        return lf.sort(order_by, maintain_order=True)
    stats = lf.select(pl.col(key).min().alias("lo"), pl.col(key).max().alias("hi"), pl.len().alias("n")).collect()
    lo, hi, n = stats.row(0)
    if lo is None or n <= rows_per_piece:
        return lf.sort(key, maintain_order=True)
    nulls = lf.filter(pl.col(key).is_null())
    step = max(1, -(-(hi - lo + 1) * rows_per_piece // n))
    work.mkdir(parents=True, exist_ok=True)
    pieces: list[Path] = []
    for start in range(lo, hi + 1, step):
        piece = work / f"sorted-{len(pieces):06d}.parquet"
        lf.filter(pl.col(key).is_between(start, start + step, closed="left")).sort(key, maintain_order=True).sink_parquet(
            piece, row_group_size=4096
        )
        pieces.append(piece)
    return pl.concat([nulls, *(pl.scan_parquet(p) for p in pieces)], how="diagonal_relaxed")



class ChunkedWriter:
    """Write finished rows durably, ``chunk_rows`` at a time, to Parquet or JSONL.

    ``write`` buffers rows (a DataFrame or a list of dicts) and writes a chunk whenever
    ``chunk_rows`` are buffered or ``max_delay`` seconds passed since the last chunk;
    ``flush`` writes what is buffered now; ``close`` flushes and, for Parquet, combines
    the parts into the final file (sorted by ``order_by`` and without ``drop_columns``
    when given). Columns may change dtype between chunks (all-null in one chunk,
    strings in the next): files are combined with the common supertype.

    With ``resume=True`` the rows already finished at ``path`` are kept (a torn tail is
    cut away) and exposed as :attr:`finished`; new rows are appended after them. With
    ``resume=False`` any earlier output at ``path`` is replaced: old parts are removed
    at once, an old final file only when ``close`` installs the new one.

    Used as a context manager, an exception inside the block still flushes the buffered
    rows but leaves the output unfinalized (parts kept), ready for a resume. Thread-safe,
    so ``write`` may run in a worker thread (``asyncio.to_thread``) off the event loop.

    For resume, give every row an index column (e.g. its input row number) and keep it
    in the output: :attr:`finished` then tells which rows are done
    (``finished_columns=["row"]`` loads only that column).

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "out.parquet"
    >>> with ChunkedWriter(out, chunk_rows=2) as w:
    ...     w.write([{"i": 0, "x": None}, {"i": 1, "x": None}, {"i": 2, "x": "a"}])
    >>> pl.read_parquet(out)["x"].to_list()
    [None, None, 'a']
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format | None = None,  # noqa: A002 - the natural name for users
        chunk_rows: int = 1000,
        max_delay: float | None = 30.0,
        resume: bool = False,
        order_by: str | Sequence[str] | None = None,
        drop_columns: Sequence[str] = (),
        finished_columns: Sequence[str] | None = None,
    ) -> None:
        if chunk_rows < 1:
            msg = f"chunk_rows must be at least 1, got {chunk_rows!r}"
            raise ValueError(msg)
        self.path = Path(path).expanduser()
        self.format: Format = _format_for(self.path, format)
        self.chunk_rows = chunk_rows
        self.max_delay = max_delay
        self.order_by = order_by
        self.drop_columns = tuple(drop_columns)
        self._finished_columns = None if finished_columns is None else list(finished_columns)
        self.finished: pl.DataFrame | None = None
        """Rows a previous run had finished (``resume=True`` only; only ``finished_columns``
        when given, to keep memory small), else None."""
        self.rows_written = 0
        """Rows durably written by this writer (not counting :attr:`finished`)."""
        self._buffer: list[pl.DataFrame] = []
        self._rows: list[Mapping[str, Any]] = []
        self._buffered = 0
        self._last_flush = time.monotonic()
        self._closed = False
        self._next_part = 0
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "parquet":
            self._open_parquet(resume=resume)
        else:
            self._open_jsonl(resume=resume)

    def __repr__(self) -> str:
        return f"ChunkedWriter({str(self.path)!r}, format={self.format!r}, chunk_rows={self.chunk_rows})"

    # opening -------------------------------------------------------------------
    def _open_parquet(self, *, resume: bool) -> None:
        parts = parts_dir(self.path)
        if resume and parts.is_dir():
            good, frames = _readable_parts(parts, self._finished_columns)
            for part in set(parts.glob(_PART_GLOB)) - set(good):
                part.unlink()
            self.finished = _concat(frames) if frames else None
            if good:
                self._next_part = max(int(p.stem.split("-")[1]) for p in good) + 1
        elif resume and self.path.exists():
            self.finished = read_finished(self.path, columns=self._finished_columns)
            if self.finished is not None:  # reopen a finished file as part 0 to append to it
                parts.mkdir(parents=True, exist_ok=True)
                _atomic_write(parts / "part-00000.parquet", lambda t: shutil.copyfile(self.path, t))
                self._next_part = 1
        elif parts.exists():
            shutil.rmtree(parts)
        parts.mkdir(parents=True, exist_ok=True)
        for stale in parts.glob(".*.tmp-*"):
            stale.unlink()

    def _open_jsonl(self, *, resume: bool) -> None:
        if resume and self.path.exists():
            self.finished, size = _read_jsonl_prefix(self.path, self._finished_columns)
            with open(self.path, "rb+") as fh:
                fh.truncate(size)
                os.fsync(fh.fileno())
        else:
            with open(self.path, "wb") as fh:
                os.fsync(fh.fileno())

    # writing -------------------------------------------------------------------
    def write(self, rows: pl.DataFrame | Iterable[Mapping[str, Any]]) -> None:
        """Buffer finished rows; write a chunk when enough are buffered."""
        with self._lock:
            self._write(rows)

    def _write(self, rows: pl.DataFrame | Iterable[Mapping[str, Any]]) -> None:
        if self._closed:
            msg = f"cannot write to {str(self.path)!r}: the writer is closed"
            raise RuntimeError(msg)
        if isinstance(rows, pl.DataFrame):
            if rows.height == 0:
                return
            self._rows_to_frame()
            self._buffer.append(rows)
            self._buffered += rows.height
        else:
            # row dicts are kept as they are and turned into one frame per chunk: a frame
            # per call would cost ~50 KB for a single row
            before = len(self._rows)
            self._rows.extend(rows)
            if len(self._rows) == before:
                return
            self._buffered += len(self._rows) - before
        overdue = self.max_delay is not None and time.monotonic() - self._last_flush >= self.max_delay
        if self._buffered >= self.chunk_rows or overdue:
            self._flush(partial=overdue)

    def flush(self, *, partial: bool = True) -> None:
        """Write buffered rows now: all of them, or only whole chunks when ``partial=False``."""
        with self._lock:
            self._flush(partial=partial)

    def _rows_to_frame(self) -> None:
        if self._rows:
            self._buffer.append(pl.from_dicts(self._rows, infer_schema_length=None))
            self._rows = []

    def _flush(self, *, partial: bool) -> None:
        self._rows_to_frame()
        if not self._buffer:
            return
        frame = _concat(self._buffer)
        self._buffer, self._buffered = [], 0
        start = 0
        while frame.height - start >= self.chunk_rows or (partial and start < frame.height):
            chunk = frame.slice(start, self.chunk_rows)
            self._write_chunk(chunk)
            start += chunk.height
        if start < frame.height:
            rest = frame.slice(start)
            self._buffer, self._buffered = [rest], rest.height
        self._last_flush = time.monotonic()

    def _write_chunk(self, chunk: pl.DataFrame) -> None:
        if self.format == "parquet":
            self._write_part(chunk)
        else:
            data = chunk.write_ndjson()
            with open(self.path, "ab") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                fh.flush()
                os.fsync(fh.fileno())
            self.rows_written += chunk.height

    def _write_part(self, chunk: pl.DataFrame, *, count: bool = True) -> None:
        part = parts_dir(self.path) / f"part-{self._next_part:05d}.parquet"
        _atomic_write(part, chunk.write_parquet)
        self._next_part += 1
        if count:
            self.rows_written += chunk.height

    # closing -------------------------------------------------------------------
    def close(self, *, finalize: bool = True) -> Path:
        """Flush, then (``finalize=True``) produce the final file; returns its path.

        With ``finalize=False`` the Parquet parts are kept so a later run can resume.
        """
        with self._lock:
            if self._closed:
                return self.path
            self._flush(partial=True)
            self._closed = True
            if finalize:
                self._finalize()
            return self.path

    def _finalize(self) -> None:
        rows_per_group = max(self.chunk_rows, 4096)  # bounded row groups keep the combine's memory small
        work = self.path.with_name(f".{self.path.name}.sorting-{os.getpid()}")
        try:
            if self.format == "parquet":
                parts = parts_dir(self.path)
                files = sorted(parts.glob(_PART_GLOB))
                if files:
                    lf = self._shape(pl.concat([pl.scan_parquet(f) for f in files], how="diagonal_relaxed"), work)
                    _atomic_write(self.path, lambda t: lf.sink_parquet(t, row_group_size=rows_per_group))
                else:
                    _atomic_write(self.path, lambda t: pl.DataFrame().write_parquet(t))
                shutil.rmtree(parts)
                _fsync_dir(self.path.parent)
            elif (self.order_by is not None or self.drop_columns) and self.path.stat().st_size:
                work.mkdir(exist_ok=True)
                staged = []
                for block in _JsonlPrefix(self.path):  # stage as Parquet pieces, block by block
                    staged.append(work / f"staged-{len(staged):06d}.parquet")
                    pl.read_ndjson(block, infer_schema_length=None).write_parquet(staged[-1])
                lf = self._shape(pl.concat([pl.scan_parquet(f) for f in staged], how="diagonal_relaxed"), work)
                _atomic_write(self.path, lf.sink_ndjson)
        finally:
            if work.exists():
                shutil.rmtree(work)

    def _shape(self, lf: pl.LazyFrame, work: Path) -> pl.LazyFrame:
        if self.order_by is not None:
            lf = _sorted(lf, self.order_by, work, rows_per_piece=max(self.chunk_rows, 10_000))
        if self.drop_columns:
            lf = lf.drop(self.drop_columns, strict=False)
        return lf

    def __enter__(self) -> ChunkedWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(finalize=exc_type is None)
