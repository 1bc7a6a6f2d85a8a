"""The durable writer of ``run_to``: whole input rows in checksummed chunks, an exclusive
lock, resume from the manifest, and a final file in input order.

See :mod:`distilfn.output.manifest` for the files. The rules:

- a chunk holds whole input rows, never part of one; it is written (and renamed into
  place) before its line is appended to ``chunks.jsonl``, so a kill leaves either a
  recorded chunk or an unrecorded file that the next run removes;
- a resume refuses another plan, another input, another schema or format, and says
  what changed; a damaged chunk is dropped (its rows are done again), a foreign file
  in the working directory is reported;
- rows that failed are done again by the next run; the last chunk holding a row wins;
- one run at a time: the lock ``.<name>.lock`` beside the output is held from the
  first check to the final rename.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import filelock
import msgspec
import numpy as np
import polars as pl

from distilfn.errors import OutputLockedError, ResumeRefusedError
from distilfn.output import jsonl
from distilfn.output.manifest import (
    ROW,
    Chunk,
    Final,
    Header,
    atomic_write,
    decode_schema,
    expand_ranges,
    expand_run_lengths,
    file_digest,
    fsync_dir,
    ranges,
    run_lengths,
)

__all__ = [
    "StreamedOutput",
    "header_change",
    "take_lock",
    "Resume",
    "IncompleteOutputWarning",
    "parts_dir",
    "manifest_path",
    "output_format",
    "read_output",
    "finished_rows",
]

_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_RESTART = "pass restart=True (distilfn run --restart) to start over; cached answers make that cheap"


class IncompleteOutputWarning(UserWarning):
    """Part of an unfinished output was unreadable or foreign; its rows will be done again."""


def parts_dir(path: str | os.PathLike[str]) -> Path:
    """The working directory of an output being written.

    >>> parts_dir("out.parquet").name
    'out.parquet.parts'
    """
    p = Path(path)
    return p.with_name(p.name + ".parts")


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The manifest beside a finished output.

    >>> manifest_path("out.jsonl").name
    'out.jsonl.manifest.json'
    """
    p = Path(path)
    return p.with_name(p.name + ".manifest.json")


def output_format(path: Path, fmt: str | None) -> str:
    """``parquet`` or ``jsonl``: ``fmt`` when given, else from the suffix."""
    if fmt is not None:
        return fmt
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        msg = (
            f"cannot tell the output format of {str(path)!r} from its suffix {path.suffix!r}: "
            "name it .parquet, .jsonl or .ndjson, or pass format='parquet' or format='jsonl'"
        )
        raise ValueError(msg) from None


class Resume(msgspec.Struct):
    """What an earlier run left: the input rows finished without error, and whether all is done."""

    done: Any
    complete: bool = False
    final: Final | None = None


_DECODE_CHUNK = msgspec.json.Decoder(Chunk)
_ENCODE = msgspec.json.Encoder()



def take_lock(lock: filelock.FileLock, path: Path) -> None:
    """Take ``lock``, the one writer's lock of the output at ``path``, or fail at once with
    :class:`OutputLockedError` naming the lock file (a second writer never waits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        msg = (
            f"another run is writing {str(path)!r} (it holds {lock.lock_file!r}); "
            "wait for it to finish, or write to another output"
        )
        raise OutputLockedError(msg) from None

class StreamedOutput:
    """One output file being written by one run. Use as a context manager (it holds the lock)."""

    def __init__(self, path: Path, *, header: Header, restart: bool = False):
        self.path = path
        self.header = header
        self.restart = restart
        self.format = header.format
        self.parts = parts_dir(path)
        self.manifest = manifest_path(path)
        self.lock = filelock.FileLock(str(path.with_name(f".{path.name}.lock")))
        self.chunks: list[Chunk] = []
        self.schema = decode_schema(header.schema)

    # -- the lock ------------------------------------------------------------------------
    def __enter__(self) -> StreamedOutput:
        take_lock(self.lock, self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    # -- opening -------------------------------------------------------------------------
    def open(self) -> Resume:
        """Read what an earlier run left (or clear it with ``restart``) and get ready to write."""
        rows = self.header.input_rows
        if self.restart:
            self._clear()
            return self._start()
        header_file = self.parts / "manifest.json"
        if header_file.is_file():
            self._check(msgspec.json.decode(header_file.read_bytes(), type=Header), f"{self.parts}/manifest.json")
            if self.manifest.is_file() and self._final_intact(_read_final(self.manifest)):
                shutil.rmtree(self.parts)  # the last run finished but was stopped before cleaning up
                return self.open()
            self.chunks = self._load_chunks()
            return Resume(done=self._done())
        if self.parts.is_dir():
            shutil.rmtree(self.parts)  # stopped before it wrote its header: nothing to keep
        if self.manifest.is_file():
            final = _read_final(self.manifest)
            self._check(final.header, str(self.manifest))
            if not self._final_intact(final):
                msg = (
                    f"{str(self.path)!r} is damaged: it no longer matches the checksum in {str(self.manifest)!r}; "
                    f"{_RESTART}"
                )
                raise ResumeRefusedError(msg)
            if not final.failed:
                return Resume(done=np.ones(rows, dtype=bool), complete=True, final=final)
            self._reopen(final)
            return Resume(done=self._done(), final=final)
        if self.path.exists():
            msg = (
                f"{str(self.path)!r} exists but has no manifest ({self.manifest.name}): distilfn did not write it, "
                f"or its manifest was removed; {_RESTART}, or choose another output"
            )
            raise ResumeRefusedError(msg)
        return self._start()

    def _start(self) -> Resume:
        self.parts.mkdir(parents=True)
        atomic_write(self.parts / "manifest.json", lambda tmp: tmp.write_bytes(_ENCODE.encode(self.header)))
        (self.parts / "chunks.jsonl").touch()
        fsync_dir(self.parts)
        return Resume(done=np.zeros(self.header.input_rows, dtype=bool))

    def _clear(self) -> None:
        if self.parts.exists():
            shutil.rmtree(self.parts)
        if self.manifest.exists():
            self.manifest.unlink()
        fsync_dir(self.path.parent)

    def _check(self, old: Header, where: str) -> None:
        problem = header_change(old, self.header)
        if problem is not None:
            msg = f"cannot resume {str(self.path)!r} ({where}): {problem}; {_RESTART}"
            raise ResumeRefusedError(msg)

    def _final_intact(self, final: Final) -> bool:
        """Whether the final file is the one ``final`` describes (its checksum and size)."""
        if not self.path.is_file():
            return False
        return file_digest(self.path) == (final.digest, final.bytes)

    def _load_chunks(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        log = self.parts / "chunks.jsonl"
        lines = log.read_bytes().split(b"\n") if log.exists() else []
        good = 0
        for line in lines:
            if not line.strip():
                good += len(line) + 1
                continue
            try:
                chunk = _DECODE_CHUNK.decode(line)
            except msgspec.DecodeError:
                break  # a torn last line: that chunk counts as unwritten
            good += len(line) + 1
            part = self.parts / chunk.file
            if not part.is_file() or file_digest(part) != (chunk.digest, chunk.bytes):
                warnings.warn(
                    f"ignoring the damaged or missing chunk {str(part)!r}; its {chunk.rows} rows will be done again",
                    IncompleteOutputWarning,
                    stacklevel=4,
                )
                continue
            if any(c.file == chunk.file for c in chunks):
                warnings.warn(f"ignoring a duplicate record of {chunk.file!r} in {str(log)!r}", IncompleteOutputWarning, stacklevel=4)
                continue
            chunks.append(chunk)
        with open(log, "rb+") as fh:
            fh.truncate(min(good, log.stat().st_size))
            os.fsync(fh.fileno())
        known = {c.file for c in chunks} | {"manifest.json", "chunks.jsonl"}
        for item in sorted(self.parts.iterdir()):
            if item.name in known:
                continue
            if (item.name.startswith("part-") and item.suffix == ".parquet") or item.name.startswith("."):
                item.unlink()  # written by a run stopped before it could record it
            else:
                warnings.warn(
                    f"ignoring {str(item)!r}: distilfn did not write it (it is not in the manifest)",
                    IncompleteOutputWarning,
                    stacklevel=4,
                )
        return chunks

    def _owners(self) -> np.ndarray:
        owner = np.full(self.header.input_rows, -1, dtype=np.int64)
        for k, chunk in enumerate(self.chunks):
            for start, end in chunk.sources:
                owner[start:end] = k
        return owner

    def _done(self) -> np.ndarray:
        owner = self._owners()
        done = owner >= 0
        for k, chunk in enumerate(self.chunks):
            for i in chunk.failed:
                if owner[i] == k:
                    done[i] = False
        return done

    def _reopen(self, final: Final) -> None:
        """Turn a finished output with failed rows back into a first chunk, to redo those rows."""
        from distilfn.output import read_output

        counts = expand_run_lengths(final.counts)
        frame = read_output(self.path).with_columns(pl.Series(ROW, np.repeat(np.arange(len(counts)), counts)))
        self._start()
        self.write_frame(frame, list(range(self.header.input_rows)), final.failed)
        self.manifest.unlink()
        fsync_dir(self.path.parent)

    # -- writing -------------------------------------------------------------------------
    def write_frame(self, frame: pl.DataFrame, sources: list[int], failed: list[int]) -> None:
        """Write one chunk: ``frame`` (with the ``ROW`` column) holding exactly the input rows ``sources``."""
        number = int(self.chunks[-1].file.removeprefix("part-").removesuffix(".parquet")) + 1 if self.chunks else 0
        name = f"part-{number:06d}.parquet"
        part = self.parts / name
        atomic_write(part, frame.write_parquet)
        digest, size = file_digest(part)
        chunk = Chunk(file=name, rows=frame.height, sources=ranges(sources), failed=sorted(failed), digest=digest, bytes=size)
        with open(self.parts / "chunks.jsonl", "ab") as fh:
            fh.write(_ENCODE.encode(chunk) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.chunks.append(chunk)

    # -- finishing -----------------------------------------------------------------------
    def finalize(self) -> Final:
        """Write the final file in input order and its manifest; remove the working directory."""
        owner = self._owners()
        if (owner < 0).any():
            missing = int(np.flatnonzero(owner < 0)[0])
            msg = f"cannot finish {str(self.path)!r}: input row {missing} has no output chunk"
            raise RuntimeError(msg)
        scans = []
        for k, chunk in enumerate(self.chunks):
            lf = pl.scan_parquet(self.parts / chunk.file)
            mine = [i for i in expand_ranges(chunk.sources) if owner[i] == k]
            if len(mine) < sum(end - start for start, end in chunk.sources):
                lf = lf.filter(pl.col(ROW).is_in(mine))
            scans.append(lf)
        work = self.path.with_name(f".{self.path.name}.sorting-{os.getpid()}")
        try:
            if scans:
                combined = pl.concat(scans, how="vertical")
                rows = combined.select(ROW).collect()[ROW].to_numpy()
                ordered = _sorted(combined, work, rows_per_piece=10_000).drop(ROW)
            else:
                rows = np.zeros(0, dtype=np.int64)
                ordered = pl.LazyFrame(schema=self.schema)
            if self.format == "parquet":
                atomic_write(self.path, lambda tmp: ordered.sink_parquet(tmp, row_group_size=4096))
            else:
                atomic_write(self.path, lambda tmp: jsonl.encode(ordered, self.schema).sink_ndjson(tmp))
        finally:
            if work.exists():
                shutil.rmtree(work)
        counts = np.bincount(rows, minlength=self.header.input_rows) if len(rows) else np.zeros(self.header.input_rows, dtype=np.int64)
        failed = sorted(i for k, chunk in enumerate(self.chunks) for i in chunk.failed if owner[i] == k)
        digest, size = file_digest(self.path)
        final = Final(header=self.header, rows=int(len(rows)), counts=run_lengths(counts), failed=failed, digest=digest, bytes=size)
        atomic_write(self.manifest, lambda tmp: tmp.write_bytes(_ENCODE.encode(final)))
        shutil.rmtree(self.parts)
        fsync_dir(self.path.parent)
        return final


def _read_final(path: Path) -> Final:
    return msgspec.json.decode(path.read_bytes(), type=Final)


def _sorted(lf: pl.LazyFrame, work: Path, *, rows_per_piece: int) -> pl.LazyFrame:
    """``lf`` sorted by ``ROW`` in bounded memory: range by range, each range sunk to a file."""
    stats = lf.select(pl.col(ROW).min().alias("lo"), pl.col(ROW).max().alias("hi"), pl.len().alias("n")).collect()
    lo, hi, n = stats.row(0)
    if lo is None or n <= rows_per_piece:
        return lf.sort(ROW, maintain_order=True)
    step = max(1, -(-(hi - lo + 1) * rows_per_piece // n))
    work.mkdir(parents=True, exist_ok=True)
    pieces: list[Path] = []
    for start in range(lo, hi + 1, step):
        piece = work / f"sorted-{len(pieces):06d}.parquet"
        lf.filter(pl.col(ROW).is_between(start, start + step, closed="left")).sort(ROW, maintain_order=True).sink_parquet(
            piece, row_group_size=4096
        )
        pieces.append(piece)
    return pl.concat([pl.scan_parquet(p) for p in pieces], how="vertical")


def header_change(old: Header, new: Header) -> str | None:
    """What differs between the header an output was started with and this run's, or None."""
    if old.version != new.version:
        return f"it was written by another version of distilfn's output format ({old.version})"
    if old.format != new.format:
        return f"it was started as {old.format}, not {new.format}"
    if old.input_rows != new.input_rows or old.input_digest != new.input_digest:
        return "the input changed since it was started: " + _input_change(old, new)
    if old.plan != new.plan:
        return "the plan changed since it was started: " + _plan_change(old.plan_lines, new.plan_lines)
    if old.schema != new.schema:
        return "its output schema differs from this plan's"
    return None


def _input_change(old: Header, new: Header) -> str:
    if old.input_rows != new.input_rows:
        return f"it had {old.input_rows} rows then and has {new.input_rows} now"
    return f"it still has {old.input_rows} rows, but their values or types changed"


def _plan_change(old: list[str], new: list[str]) -> str:
    for before, after in zip(old, new, strict=False):
        if before != after:
            return f"{_short(before)!r} is now {_short(after)!r}"
    if len(old) != len(new):
        return f"it had {len(old) - 1} top-level steps and has {len(new) - 1} now"
    return "its steps differ"


def _short(line: str, size: int = 160) -> str:
    return line if len(line) <= size else line[: size - 3] + "..."


def finished_rows(path: str | os.PathLike[str]) -> int:
    """How many input rows of the output at ``path`` are finished without error (0 if none).

    Works on an output still being written (or stopped midway) and on a finished one.
    """
    p = Path(path).expanduser()
    header_file = parts_dir(p) / "manifest.json"
    if header_file.is_file():
        header = msgspec.json.decode(header_file.read_bytes(), type=Header)
        output = StreamedOutput(p, header=header)
        output.chunks = output._load_chunks()
        return int(output._done().sum())
    manifest = manifest_path(p)
    if manifest.is_file():
        final = _read_final(manifest)
        return final.header.input_rows - len(final.failed)
    return 0


def read_output(path: str | os.PathLike[str]) -> pl.DataFrame:
    """A finished output of ``run_to`` as the exact frame ``run`` would return (dtypes and all).

    Parquet keeps every dtype; a JSON Lines output is read back with the schema its
    manifest records (dates, categoricals, small integers ... come back as they were).
    """
    p = Path(path).expanduser()
    manifest = manifest_path(p)
    if not manifest.is_file():
        state = "is still being written (run the same command again to finish it)" if parts_dir(p).is_dir() else "has no manifest"
        msg = f"cannot read {str(p)!r} as a distilfn output: it {state}"
        raise ResumeRefusedError(msg)
    final = _read_final(manifest)
    schema = decode_schema(final.header.schema)
    if final.header.format == "parquet":
        frame = pl.read_parquet(p)
        return frame if frame.schema == schema else frame.cast(dict(schema))
    if final.rows == 0:
        return pl.DataFrame(schema=schema)
    raw = pl.read_ndjson(p, schema={name: jsonl.reading_dtype(dtype) for name, dtype in schema.items()})
    return raw.select(jsonl.restore(pl.col(name), dtype).alias(name) for name, dtype in schema.items())
