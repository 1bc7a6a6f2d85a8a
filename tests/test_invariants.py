"""The kernel's invariants as properties, over random plans, frames and faults.

- Rows out = rows in x fanout - rows that a filter drops on purpose, whatever fails.
- ``run`` and ``run_to`` (Parquet and JSONL) give equal frames, dtypes and all.
- The same input and the same model give the same frame.
- A SIGKILL at any point and a re-run give the frame of an uninterrupted run, and no
  request is answered twice except those in flight at the kill.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import cloudpickle
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import plans
from distilfn import read_output
from distilfn.run import RowsFailedWarning
from plans import build, errors_in, frames, model, multiplicity, plan_specs, reply

cloudpickle.register_pickle_by_value(plans)  # plans travel to subprocesses by value, as users' lambdas do

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run(plan, data, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsFailedWarning)
        return plan.run(data, model=model, cache=False, max_error_rate=None, **options)


def run_to(plan, data, out, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsFailedWarning)
        return plan.run_to(data, out, model=model, cache=False, max_error_rate=None, **options)


@SETTINGS
@given(data=frames(), specs=plan_specs(), concurrency=st.integers(1, 8))
def test_rows_out_are_rows_in_times_fanout_minus_what_filters_drop(data, specs, concurrency):
    plan, used = build(specs)
    out = run(plan, data, max_concurrency=concurrency)
    meta = [c for c in out.columns if c.startswith("meta.")]
    by_id: dict[int, list[dict]] = {}
    for row in out.iter_rows(named=True):
        by_id.setdefault(row["id"], []).append(row)
    for row in data.iter_rows(named=True):
        expected, dropping = multiplicity(used, row)
        got = by_id.get(row["id"], [])
        if dropping is None:
            assert len(got) == expected, (repr(plan), row)
            continue
        # a filter drops this row on purpose: only what had failed before it is kept, with its error
        before, _ = build(used[:dropping])
        failed_before = sum(
            any(errors_in(r[c]) for c in r if c.startswith("meta."))
            for r in run(before, data.filter(pl.col("id") == row["id"])).iter_rows(named=True)
        )
        assert (len(got) == 0) == (failed_before == 0), (repr(plan), row)
        assert len(got) >= failed_before and len(got) <= expected
        assert all(any(errors_in(r[c]) for c in meta) for r in got), (repr(plan), row)


@SETTINGS
@given(data=frames(), specs=plan_specs(), chunk_rows=st.integers(1, 7))
def test_run_and_run_to_give_equal_frames(data, specs, chunk_rows):
    plan, _ = build(specs)
    expected = run(plan, data)
    assert expected.schema == plan.compile(data.schema).schema  # decided before the first request
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".parquet", ".jsonl"):
            result = run_to(plan, data, Path(folder) / f"out{suffix}", chunk_rows=chunk_rows)
            assert_frame_equal(read_output(result), expected)
            assert result.rows_out == expected.height


@settings(max_examples=25, deadline=None)
@given(data=frames(), specs=plan_specs())
def test_the_same_input_gives_the_same_frame(data, specs):
    plan, _ = build(specs)
    assert_frame_equal(run(plan, data, max_concurrency=1), run(plan, data, max_concurrency=8))


@settings(max_examples=25, deadline=None)
@given(specs=plan_specs(), data=frames())
def test_plans_round_trip_through_cloudpickle(specs, data):
    plan, _ = build(specs)
    copy = cloudpickle.loads(cloudpickle.dumps(plan))
    assert repr(copy) == repr(plan)
    assert_frame_equal(run(copy, data), run(plan, data))


# -- kill at a random point, then resume -----------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, cloudpickle, polars as pl
    from distilfn.models import openai_compatible
    plan = cloudpickle.loads(open(sys.argv[1], "rb").read())
    data = pl.read_parquet(sys.argv[2])
    model = openai_compatible(sys.argv[4], model="fake", max_retries=0)
    plan.run_to(data, sys.argv[3], model=model, cache=sys.argv[5], max_concurrency=4, chunk_rows=int(sys.argv[6]),
                max_error_rate=None, warn_failures=False)
    """
)


def _without_cached(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.List):
        return expr.list.eval(_without_cached(pl.element(), dtype.inner))
    if isinstance(dtype, pl.Struct) and "cached" in dtype.to_schema():
        return pl.struct([expr.struct.field(f.name) for f in dtype.fields if f.name != "cached"])
    return expr


def comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame without the per-answer ``cached`` flags, which differ after a resume by design."""
    return frame.select(_without_cached(pl.col(name), dtype).alias(name) for name, dtype in frame.schema.items())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=frames(max_rows=12), specs=plan_specs(max_steps=4), kill_after=st.integers(0, 30), chunk_rows=st.integers(1, 5))
def test_a_sigkill_at_any_point_then_a_rerun_gives_the_uninterrupted_frame(data, specs, kill_after, chunk_rows):
    from distilfn.testing.fakeserver import FakeServer
    from distilfn.models import openai_compatible

    plan, _ = build(specs)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "plan.pkl").write_bytes(cloudpickle.dumps(plan))
        data.write_parquet(root / "in.parquet")
        (root / "child.py").write_text(CHILD)
        out = root / "out.parquet"
        with FakeServer(reply=reply, latency=0.01) as server:
            args = [sys.executable, str(root / "child.py"), str(root / "plan.pkl"), str(root / "in.parquet"), str(out),
                    server.url, str(root / "cache"), str(chunk_rows)]
            child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while server.stats()["ok"] < kill_after and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            resumed = subprocess.run(args, capture_output=True, timeout=120)
            assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
            answered = server.stats()["ok_per_key"]
        with FakeServer(reply=reply) as reference_server:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RowsFailedWarning)
                expected = plan.run(data, model=openai_compatible(reference_server.url, model="fake"), cache=False)
            needed = reference_server.stats()["ok_per_key"]
        # a chat can legitimately be asked more than once (equal prompts in different samples):
        # count only the answers beyond what an uninterrupted run asks for
        twice = sum(max(0, count - needed.get(key, 0)) for key, count in answered.items())
        assert twice <= 4  # at most the requests in flight (max_concurrency) at the kill
        assert_frame_equal(comparable(pl.read_parquet(out)), comparable(expected))
