"""A dataset directory written by many workers (Ray's ``write_parquet``), with the kernel's rules.

While a run writes ``out/``, the workers' files go to ``out.parts/``, whose
``_distilfn_manifest.json`` holds the run's :class:`~distilfn.output.manifest.Header`.
When every block is written, the manifest is completed with each file's checksum, size
and rows and the output's row and failure counts, and ``out.parts/`` is renamed to
``out/``. So ``out/`` exists only when it is whole.

The rules, adapted from a single file (:mod:`distilfn.output.stream`):

- one writer at a time: ``.out.lock`` (filelock) is held from the first check to the rename;
- a run refuses to continue an ``out.parts/`` or to replace an ``out/`` of another plan,
  input, schema or format, says what changed and how to start over (``restart=True``);
- ``out.parts/`` left by a killed driver is started again: its rows are done again, and
  the request cache answers every request that was already answered;
- a finished ``out/`` without failed rows is complete (nothing is done); one with
  failed rows is done again and replaced, so only the failed requests are sent again;
- a damaged ``out/`` (a checksum differs, a file is missing) is reported, never
  trusted; a directory without a manifest is not overwritten.

Files whose names start with ``_`` or ``.`` are hidden to Arrow/Polars/Ray dataset
readers, so ``pl.read_parquet("out/*.parquet")`` and ``ray.data.read_parquet("out")``
read the rows alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import filelock
import msgspec
import polars as pl

from distilfn.errors import ResumeRefusedError
from distilfn.output.manifest import Header, atomic_write, decode_schema, file_digest, fsync_dir
from distilfn.output.stream import header_change, take_lock

__all__ = ["DatasetDirectory", "DatasetFile", "DatasetManifest", "MANIFEST", "read_dataset_dir"]

MANIFEST = "_distilfn_manifest.json"
_RESTART = "pass restart=True (distilfn run --ray --restart) to start over; cached answers make that cheap"


class DatasetFile(msgspec.Struct, frozen=True, kw_only=True):
    """One Parquet file of a finished dataset directory."""

    file: str
    rows: int
    digest: str
    bytes: int


class DatasetManifest(msgspec.Struct, frozen=True, kw_only=True):
    """``_distilfn_manifest.json``: the header alone while writing; files and counts once whole."""

    header: Header
    complete: bool = False
    rows: int = 0
    failed: int = 0
    files: list[DatasetFile] = []


_ENCODE = msgspec.json.Encoder()


def _read(path: Path) -> DatasetManifest:
    try:
        return msgspec.json.decode(path.read_bytes(), type=DatasetManifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        msg = f"{str(path)!r} is not a distilfn dataset manifest ({exc}); {_RESTART}"
        raise ResumeRefusedError(msg) from None


class DatasetDirectory:
    """One dataset directory being written by one run. Use as a context manager (it holds the lock)."""

    def __init__(self, path: str | os.PathLike[str], *, header: Header, restart: bool = False):
        self.path = Path(path).expanduser()
        self.header = header
        self.restart = restart
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.lock = filelock.FileLock(str(self.path.with_name(f".{self.path.name}.lock")))

    def __enter__(self) -> DatasetDirectory:
        take_lock(self.lock, self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def open(self) -> DatasetManifest | None:
        """The finished manifest when ``out/`` is already complete; else None, and
        ``self.parts`` is ready for the workers' files."""
        if self.parts.exists():
            header = self.parts / MANIFEST
            if header.is_file() and not self.restart:
                self._check(_read(header).header, str(header))
            shutil.rmtree(self.parts)  # killed before it was whole: its rows are done again (the cache answers)
        if self.path.exists():
            manifest = self.path / MANIFEST
            if not manifest.is_file():
                if any(self.path.iterdir()):
                    msg = (
                        f"{str(self.path)!r} exists but has no manifest ({MANIFEST}): distilfn did not write it, "
                        "or its manifest was removed; choose another output"
                    )
                    raise ResumeRefusedError(msg)
                self.path.rmdir()
            elif not self.restart:
                final = _read(manifest)
                self._check(final.header, str(manifest))
                damage = self._damage(final)
                if damage:
                    msg = f"{str(self.path)!r} is damaged: {damage}; {_RESTART}"
                    raise ResumeRefusedError(msg)
                if not final.failed:
                    return final
        self.parts.mkdir(parents=True)
        atomic_write(self.parts / MANIFEST, lambda tmp: tmp.write_bytes(_ENCODE.encode(DatasetManifest(header=self.header))))
        return None

    def finalize(self, *, failed: int) -> DatasetManifest:
        """Record every file the workers wrote, then make ``out/`` the finished directory."""
        files = []
        for file in sorted(self.parts.glob("*.parquet")):
            digest, size = file_digest(file)
            rows = pl.scan_parquet(file).select(pl.len()).collect().item()
            files.append(DatasetFile(file=file.name, rows=rows, digest=digest, bytes=size))
        final = DatasetManifest(header=self.header, complete=True, rows=sum(f.rows for f in files), failed=failed, files=files)
        atomic_write(self.parts / MANIFEST, lambda tmp: tmp.write_bytes(_ENCODE.encode(final)))
        if self.path.exists():  # the earlier output with failed rows, now redone
            old = self.path.with_name(f".{self.path.name}.replaced")
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.path, old)
            os.replace(self.parts, self.path)
            shutil.rmtree(old)
        else:
            os.replace(self.parts, self.path)
        fsync_dir(self.path.parent)
        return final

    def _check(self, old: Header, where: str) -> None:
        problem = header_change(old, self.header)
        if problem is not None:
            msg = f"cannot resume {str(self.path)!r} ({where}): {problem}; {_RESTART}"
            raise ResumeRefusedError(msg)

    def _damage(self, final: DatasetManifest) -> str | None:
        if not final.complete:
            return f"its manifest {MANIFEST} was never completed"
        for entry in final.files:
            file = self.path / entry.file
            if not file.is_file():
                return f"{entry.file} is missing"
            if file_digest(file) != (entry.digest, entry.bytes):
                return f"{entry.file} no longer matches its checksum"
        return None


def read_dataset_dir(path: str | os.PathLike[str]) -> pl.DataFrame:
    """A finished dataset directory as one frame of its exact schema (row order: by file)."""
    folder = Path(path).expanduser()
    manifest = folder / MANIFEST
    if not manifest.is_file():
        msg = f"{str(folder)!r} is not a finished distilfn dataset directory (no {MANIFEST})"
        raise ResumeRefusedError(msg)
    final = _read(manifest)
    schema = decode_schema(final.header.schema)
    frames = [pl.read_parquet(folder / f.file) for f in final.files]
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames, how="vertical").cast(dict(schema)).select(list(schema))
