"""Running a plan on Ray Data: the compiled plan, block by block, in a pool of actors.

Needs the ``ray`` extra (``pip install 'distilfn[ray]'``).

>>> import ray, ray.data                                          # doctest: +SKIP
>>> ds = ray.data.read_parquet("s3://bucket/prompts/")            # doctest: +SKIP
>>> out = distilfn.ray.run(plan, ds, model=openai_compatible(URL, model="qwen"), actors=8)  # doctest: +SKIP
>>> distilfn.ray.run_to(plan, ds, "/shared/out", model=..., actors=(2, 32))  # doctest: +SKIP

How it runs: the plan is compiled on the driver against the dataset's schema (a wrong
column or an unbound role fails there, before any request). ``map_batches`` then hands
blocks of ``batch_rows`` rows to a pool of actors; each actor compiles the plan once,
binds its own model clients, and keeps one event loop and one interpreter for all its
blocks, with ``max_concurrency`` requests in flight (per actor). Each block goes through
the same :func:`~distilfn.run.runner.run_frame` a local ``plan.run`` uses, so the output
has exactly the compiled schema of a local run.

Models travel as plain specs (URL, model name, options): an HTTP model's API key is
never pickled; each worker reads it from the environment variable the model names
(``openai_compatible(..., api_key_env="OPENAI_API_KEY")``).

Nothing lost, nothing done twice: every answer is stored in the request cache as it
arrives (a per-node SQLite file by default, or ``cache="/shared/path"``), so a block that
Ray retries after a killed actor, or a re-run after a killed driver, sends only the
requests that had no answer yet. Failed rows keep their errors in ``meta.<step>``.
Ray Data does not keep row order: give the input a row id column to sort by.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pyarrow as pa
import ray
import ray.data

from distilfn.compile import Compiled, digest_lines
from distilfn.inputs import _hashable
from distilfn.models.binding import bind_models
from distilfn.output.dataset_dir import DatasetDirectory
from distilfn.output.manifest import Header, decode_schema, encode_schema
from distilfn.plan import Plan
from distilfn.run.interpreter import Interpreter
from distilfn.run.options import DEFAULT_MAX_CONCURRENCY, RunOptions
from distilfn.run.result import RunResult, warn_failed
from distilfn.run.runner import run_frame
from distilfn.run.stats import RunStats

__all__ = ["RayOptions", "run", "run_to", "run_file_to", "read_input", "input_schema", "is_dataset"]



class RayOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a plan is spread over a Ray cluster.

    Fields:
        actors: the size of the actor pool, or ``(min, max)`` for an autoscaling pool.
        batch_rows: input rows per block handed to an actor (default: 8 x the run's
            ``max_concurrency``, at least 256): bigger blocks keep the concurrency in
            flight longer, smaller ones lose less work when an actor dies.
        num_cpus: Ray CPUs each actor reserves (default 0.25: an actor mostly waits on servers).
        ray_remote_args: more arguments for the actors (``resources``, ``runtime_env``, ...).
    """

    actors: int | tuple[int, int] = 2
    batch_rows: int | None = None
    num_cpus: float = 0.25
    ray_remote_args: dict[str, Any] = {}

    def __post_init__(self) -> None:
        sizes = self.actors if isinstance(self.actors, tuple) else (self.actors, self.actors)
        if len(sizes) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes) or sizes[0] > sizes[1]:
            msg = f"actors must be a whole number >= 1 or a (min, max) pair with 1 <= min <= max, got {self.actors!r}"
            raise ValueError(msg)
        if self.batch_rows is not None and (isinstance(self.batch_rows, bool) or not isinstance(self.batch_rows, int) or self.batch_rows < 1):
            msg = f"batch_rows must be a whole number >= 1, got {self.batch_rows!r}"
            raise ValueError(msg)
        if not isinstance(self.num_cpus, int | float) or self.num_cpus < 0:
            msg = f"num_cpus must be a number >= 0, got {self.num_cpus!r}"
            raise ValueError(msg)

    def compute(self) -> ray.data.ActorPoolStrategy:
        """The actor pool for ``map_batches``."""
        if isinstance(self.actors, tuple):
            return ray.data.ActorPoolStrategy(min_size=self.actors[0], max_size=self.actors[1])
        return ray.data.ActorPoolStrategy(size=self.actors)

    def block_rows(self, options: RunOptions) -> int:
        """Rows per block."""
        return self.batch_rows or max(256, 8 * (options.max_concurrency or DEFAULT_MAX_CONCURRENCY))


_RAY_FIELDS = frozenset(RayOptions.__struct_fields__)
_NOT_ON_RAY = {
    "stats": "the counters stay in the workers; count errors in the meta.<step> columns",
    "chunk_rows": "blocks are the chunks here: use batch_rows",
    "format": "a Ray output is a directory of Parquet files",
    "progress": "Ray Data shows its own progress",
    "summary": "Ray Data shows its own progress",
}


def is_dataset(data: Any) -> bool:
    """Whether ``data`` is a Ray Data dataset (without importing ray when it is not loaded)."""
    kind = type(data)
    return kind.__module__.startswith("ray.data") and any(k.__name__ == "Dataset" for k in kind.__mro__)


def _split(options: Mapping[str, Any]) -> tuple[RayOptions, RunOptions]:
    given = dict(options)
    spread = {k: v for k in list(given) if k in _RAY_FIELDS and (v := given.pop(k)) is not None}
    for name, why in _NOT_ON_RAY.items():
        if given.get(name) is not None:
            msg = f"the run option {name!r} does not apply to a Ray run ({why})"
            raise ValueError(msg)
    run_options = RunOptions.of(**given)
    if run_options.cache is not None and not isinstance(run_options.cache, bool | str | os.PathLike):
        msg = "cache must be None (a per-node file), False or a path (on a filesystem every node shares) for a Ray run, not an open RequestCache"
        raise TypeError(msg)
    return RayOptions(**spread), run_options


def input_schema(ds: ray.data.Dataset) -> pl.Schema:
    """The Polars schema of a Ray dataset's rows (what the plan is compiled against)."""
    schema = ds.schema(fetch_if_missing=True)
    if schema is None:
        msg = "the Ray dataset has no schema (it has no blocks); give it at least one column"
        raise ValueError(msg)
    try:
        arrow = pa.schema(list(zip(schema.names, schema.types, strict=True)))
    except TypeError as exc:
        msg = f"the Ray dataset's columns must have Arrow types, got {schema}: {exc}"
        raise ValueError(msg) from None
    return pl.from_arrow(arrow.empty_table()).schema  # type: ignore[union-attr]


def _as_frame(batch: pa.Table, schema: pl.Schema) -> pl.DataFrame:
    """A block as a frame of exactly the schema the plan was compiled against."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    differ = {name: dtype for name, dtype in schema.items() if frame.schema.get(name) != dtype}
    return frame.cast(differ) if differ else frame


class _PlanActor:
    """One actor of the pool: the compiled plan, its own models, cache, event loop and interpreter."""

    def __init__(self, plan: Plan, schema: str, model: Any, options: RunOptions):
        from distilfn.run.cache import open_cache

        self.schema = decode_schema(schema)
        self.compiled = plan.compile(self.schema)
        self.models = bind_models(model, set(self.compiled.roles.values()))
        cacheable = any(getattr(m, "identity", None) for m in self.models.values())
        self.cache = open_cache(options.cache) if cacheable and options.cache is not False else None
        self.loop = asyncio.new_event_loop()
        self.interpreter = Interpreter(self.compiled, self.models, options, cache=self.cache, stats=RunStats())

    def __call__(self, batch: pa.Table) -> pa.Table:
        frame = _as_frame(batch, self.schema)
        out = self.loop.run_until_complete(run_frame(self.interpreter, frame))
        return out.to_arrow(compat_level=pl.CompatLevel.oldest())

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(Exception):
            for m in {id(m): m for m in self.models.values()}.values():
                close = getattr(m, "aclose", None)
                if close is not None:
                    loop.run_until_complete(close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        if self.cache is not None:
            with contextlib.suppress(Exception):
                self.cache.close()


def _prepare(plan: Plan, ds: ray.data.Dataset, model: Any, options: Mapping[str, Any]) -> tuple[ray.data.Dataset, Compiled, pl.Schema, RayOptions, RunOptions]:
    spread, run_options = _split(options)
    if run_options.limit is not None:
        ds = ds.limit(run_options.limit)
    schema = input_schema(ds)
    compiled = plan.compile(schema)
    roles = set(compiled.roles.values())
    if model is not None:
        compiled.check_roles(set(bind_models(model, roles)))
    worker = msgspec.structs.replace(run_options, progress=False, summary=False, stats=None, limit=None, warn_failures=False)
    return ds, compiled, schema, spread, worker


def _mapped(plan: Plan, ds: ray.data.Dataset, schema: pl.Schema, model: Any, spread: RayOptions, options: RunOptions) -> ray.data.Dataset:
    rows = spread.block_rows(options)
    return ds.repartition(target_num_rows_per_block=rows).map_batches(  # blocks of batch_rows, spread over the pool
        _PlanActor,
        fn_constructor_kwargs={"plan": plan, "schema": encode_schema(schema), "model": model, "options": options},
        batch_format="pyarrow",
        batch_size=rows,
        compute=spread.compute(),
        num_cpus=spread.num_cpus,
        **spread.ray_remote_args,
    )


def run(plan: Plan, ds: ray.data.Dataset, model: Any = None, **options: Any) -> ray.data.Dataset:
    """The plan over a Ray dataset: a (lazy) Ray dataset of exactly the compiled output schema.

    ``model`` is what ``plan.run`` takes (None: each worker's default model, from its
    environment). The options are :class:`RayOptions`' fields (``actors``,
    ``batch_rows``, ``num_cpus``, ``ray_remote_args``) and the run options that apply
    (``max_concurrency`` is per actor; ``cache``, ``params``, ``retry_failed``,
    ``max_error_rate`` (per actor), ``limit``). Every input row comes out (times its
    fanouts, minus what filters drop); a failed row keeps its error in ``meta.<step>``.
    """
    ds, _compiled, schema, spread, worker = _prepare(plan, ds, model, options)
    return _mapped(plan, ds, schema, model, spread, worker)


def run_to(plan: Plan, ds: ray.data.Dataset, out: str | os.PathLike[str], model: Any = None, *, restart: bool = False, **options: Any) -> RunResult:
    """Run the plan over a Ray dataset and write a directory of Parquet files at ``out``.

    ``out`` must be on a filesystem the workers and the driver share. The directory
    appears only when whole, with ``_distilfn_manifest.json`` (the kernel's manifest
    rules, see :mod:`distilfn.output.dataset_dir`): running the same call again after a
    killed driver starts over and the cache answers every request already answered;
    a complete output is not done again; one with failed rows is redone (only their
    requests are sent) and replaced. Returns a :class:`RunResult` whose ``failed``
    counts the output rows with an error.
    """
    ds, compiled, schema, spread, worker = _prepare(plan, ds, model, options)
    rows, digest = _fingerprint(ds, schema)
    lines = compiled.fingerprint_lines()
    header = Header(
        format="parquet-dir",
        plan=digest_lines(lines),
        plan_lines=lines,
        input_rows=rows,
        input_digest=digest,
        schema=encode_schema(compiled.schema),
        columns={name: str(dtype) for name, dtype in compiled.schema.items()},
    )
    path = Path(out).expanduser().absolute()
    with DatasetDirectory(path, header=header, restart=restart) as directory:
        final = directory.open()
        if final is not None:
            return RunResult.of(path, rows_in=rows, rows_out=final.rows, failed=final.failed, already_complete=True)
        try:
            _mapped(plan, ds, schema, model, spread, worker).write_parquet(str(directory.parts), ray_remote_args={"num_cpus": spread.num_cpus})
        except ray.exceptions.RayError as exc:
            raise _unwrapped(exc) from None
        failed = failed_rows(directory.parts, compiled)
        final = directory.finalize(failed=failed)
    run_options = RunOptions.of(**{k: v for k, v in options.items() if k not in _RAY_FIELDS})
    if run_options.warn_failures:
        warn_failed(failed, final.rows, cached=run_options.cache is not False, resumed=True, rows="output rows")
    return RunResult.of(path, rows_in=rows, rows_out=final.rows, failed=failed)


_RAISED = re.compile(r"^distilfn\.errors\.(\w+): (.*)$", re.MULTILINE)


def _unwrapped(exc: BaseException) -> BaseException:
    """The distilfn error (authentication, error rate) an actor stopped with, as raised
    there; Ray Data wraps it in a ``UserCodeException`` that keeps it only as text."""
    import distilfn.errors

    found = _RAISED.findall(str(exc))
    if found:
        name, message = found[-1]
        kind = getattr(distilfn.errors, name, None)
        if isinstance(kind, type) and issubclass(kind, distilfn.errors.DistilfnError):
            with contextlib.suppress(Exception):
                return kind(message)
    return exc


def _has_error(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Whether a metadata value (a record, or lists of them) holds an error."""
    if isinstance(dtype, pl.List):
        return expr.list.eval(_has_error(pl.element(), dtype.inner)).list.any().fill_null(False)
    return expr.struct.field("error").is_not_null()


def failed_rows(folder: Path, compiled: Compiled) -> int:
    """Output rows in ``folder``'s Parquet files with an error in any ``meta.<step>`` column."""
    files = sorted(folder.glob("*.parquet"))
    if not files or not compiled.meta:
        return 0
    errors = [_has_error(pl.col(c.name), c.dtype) for c in compiled.meta]
    return int(pl.scan_parquet(files).select(pl.any_horizontal(errors).sum()).collect().item())


def _digest_block(batch: pa.Table, schema: str) -> pa.Table:
    """One block's row count and the sum of its rows' hashes (mod 2**64): summed over the
    blocks, a digest of the rows that does not depend on how Ray splits or orders them."""
    types = decode_schema(schema)
    frame = _as_frame(batch, types)
    total = 0
    if frame.width and frame.height:
        plain = frame.select(_hashable(name, dtype) for name, dtype in types.items())
        for line in plain.write_ndjson().encode("utf-8").splitlines():
            total += int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "big")
    return pa.table({"rows": pa.array([frame.height], pa.int64()), "sum": pa.array([total % 2**64], pa.uint64())})


def _fingerprint(ds: ray.data.Dataset, schema: pl.Schema) -> tuple[int, str]:
    """The input's rows and a digest of its schema and row values (in any order)."""
    parts = ds.map_batches(_digest_block, fn_kwargs={"schema": encode_schema(schema)}, batch_format="pyarrow", batch_size=None).take_all()
    rows = sum(p["rows"] for p in parts)
    total = sum(p["sum"] for p in parts) % 2**64
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(list(schema.items())).encode())
    digest.update(total.to_bytes(8, "big"))
    return rows, digest.hexdigest()


_READERS = {".parquet": "read_parquet", ".jsonl": "read_json", ".ndjson": "read_json", ".json": "read_json", ".csv": "read_csv"}


def read_input(path: str | os.PathLike[str]) -> ray.data.Dataset:
    """An input file (or a directory of them) as a Ray dataset, read by the workers:
    it must be on a filesystem they share (or a URI Ray reads, e.g. ``s3://``)."""
    text = os.fspath(path)
    local = Path(text).expanduser()
    suffix = local.suffix.lower()
    if local.is_dir():
        kinds = {p.suffix.lower() for p in local.iterdir() if p.is_file() and not p.name.startswith(("_", "."))}
        suffix = next(iter(kinds)) if len(kinds) == 1 else ""
    reader = _READERS.get(suffix)
    if reader is None:
        msg = f"cannot read {text!r} on Ray: give a .parquet, .jsonl or .csv file, or a directory of one kind"
        raise ValueError(msg)
    if "://" not in text:
        if not local.exists():
            raise FileNotFoundError(f"no input at {text!r}")
        text = str(local.absolute())
    return getattr(ray.data, reader)(text)


def run_file_to(plan: Plan, data: str | os.PathLike[str], out: str | os.PathLike[str], model: Any = None, *,
                address: str | None = None, quiet: bool = False, **options: Any) -> RunResult:
    """``distilfn run --ray``: connect to the cluster at ``address`` (None: ``RAY_ADDRESS``
    or a new local one), read ``data`` there and :func:`run_to` ``out``; ``quiet``
    silences Ray Data's progress and INFO logs."""
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    if quiet:
        import logging

        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    return run_to(plan, read_input(data), out, model, **options)
