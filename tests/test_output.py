"""Inputs, whole-frame writes, and run_to's durable output: chunks, manifest, lock, resume."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from distilfn import fanout, read_output, task
from distilfn.inputs import fingerprint_input, read_input, scan_input
from distilfn.output import IncompleteOutputWarning, finished_rows, manifest_path, parts_dir, write_frame
from distilfn.output import jsonl
from distilfn.output.manifest import decode_schema, encode_schema

FRAME = pl.DataFrame({"instruction": ["Explain photosynthesis.", "Write a haiku about rain."], "n": [1, 2]})


def echo(name="t", source="q", target="a"):
    return task(name=name, inputs=[source], outputs=[target],
                render=lambda row: [{"role": "user", "content": f"{name}: {row[source]}"}],
                parse=lambda text: {target: text})


def answer(chats):
    return [c[-1]["content"] + " ok" for c in chats]


# -- inputs and whole frames -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".ndjson", ".csv", ".json"])
def test_scan_and_read_input_by_suffix(tmp_path, suffix):
    path = write_frame(FRAME, tmp_path / f"in{suffix}")
    assert isinstance(scan_input(path), pl.LazyFrame)
    assert_frame_equal(read_input(path), FRAME)


def test_read_input_accepts_frames_and_dicts():
    assert read_input(FRAME) is FRAME
    assert_frame_equal(read_input(FRAME.lazy()), FRAME)
    assert_frame_equal(read_input(FRAME.to_dicts()), FRAME)
    with pytest.raises(TypeError, match="cannot read input of type int"):
        read_input(3)


def test_unknown_suffix_and_missing_file_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"in\.xlsx.*got suffix '\.xlsx'"):
        scan_input(tmp_path / "in.xlsx")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        scan_input(tmp_path / "nope.jsonl")


def test_write_frame_leaves_no_temporary_files(tmp_path):
    write_frame(FRAME, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_an_output_suffix_that_tells_no_format_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"out\.csv.*\.parquet, \.jsonl or \.ndjson, or pass format="):
        echo().run_to(pl.DataFrame({"q": ["x"]}), tmp_path / "out.csv", model=answer)
    result = echo().run_to(pl.DataFrame({"q": ["x"]}), tmp_path / "out.csv", model=answer, format="jsonl")
    assert read_output(result)["a"].to_list() == ["t: x ok"]


def test_the_input_fingerprint_ignores_batching_but_not_values():
    frame = pl.DataFrame({"q": [str(i) for i in range(2500)], "d": [dt.date(2024, 1, 1)] * 2500})
    assert fingerprint_input(frame.lazy(), batch_rows=100) == fingerprint_input(frame.lazy(), batch_rows=1000)
    changed = frame.with_columns(pl.when(pl.int_range(2500) == 1234).then(pl.lit("x")).otherwise(pl.col("q")).alias("q"))
    assert fingerprint_input(changed.lazy()) != fingerprint_input(frame.lazy())
    assert fingerprint_input(frame.lazy()) != fingerprint_input(frame.with_columns(pl.col("d").cast(pl.Datetime)).lazy())


# -- the durable output ----------------------------------------------------------------------


def test_a_chunk_holds_whole_input_rows_and_the_manifest_says_which(tmp_path):
    out = tmp_path / "out.parquet"
    plan = fanout(echo(), 3)  # three output rows per input row, never grouped
    seen = {}

    class Spy:
        def __call__(self, chats):
            seen["parts"] = sorted(p.name for p in parts_dir(out).iterdir()) if parts_dir(out).exists() else []
            return answer(chats)

    data = pl.DataFrame({"q": [f"q{i}" for i in range(5)]})
    result = plan.run_to(data, out, model=Spy(), chunk_rows=2, max_concurrency=1)
    final = json.loads(manifest_path(out).read_text())
    assert final["rows"] == 15 and final["counts"] == [[3, 5]] and final["failed"] == []
    assert result.rows_out == 15 and not parts_dir(out).exists()
    assert "manifest.json" in seen["parts"] and "chunks.jsonl" in seen["parts"]
    frame = pl.read_parquet(out)
    assert frame["q"].to_list() == [f"q{i}" for i in range(5) for _ in range(3)]


def assert_same_rows(out: pl.DataFrame, data: pl.DataFrame) -> None:
    """``out`` holds every row of ``data`` once, in order, answered, without errors."""
    expected = echo().run(data, model=answer)
    assert_frame_equal(out.drop("meta.t", "model_name"), expected.drop("meta.t", "model_name"))  # which model answered differs
    assert out["meta.t"].struct.field("error").null_count() == out.height


def _stopped_run(tmp_path: Path, rows: int = 12, chunk_rows: int = 2) -> tuple[Path, pl.DataFrame]:
    """A run_to that an authentication error stops midway, leaving chunks behind."""
    from distilfn.errors import AuthenticationError

    out = tmp_path / "out.parquet"
    data = pl.DataFrame({"q": [f"q{i:02d}" for i in range(rows)]})
    calls = []

    def dies(chats):
        calls.extend(chats)
        if len(calls) > rows // 2:
            raise AuthenticationError("401: the key ran out")
        return answer(chats)

    from distilfn.models import FunctionModel

    with pytest.raises(AuthenticationError):
        echo().run_to(data, out, model=FunctionModel(dies, threaded=False), chunk_rows=chunk_rows, max_concurrency=1)
    assert 0 < finished_rows(out) < rows
    return out, data


def test_a_stopped_run_resumes_and_sends_only_what_is_missing(tmp_path):
    out, data = _stopped_run(tmp_path)
    done = finished_rows(out)
    calls = []
    echo().run_to(data, out, model=lambda chats: calls.extend(chats) or answer(chats))
    assert len(calls) == data.height - done
    assert pl.read_parquet(out)["q"].to_list() == data["q"].to_list()


def test_a_damaged_chunk_is_dropped_and_its_rows_done_again(tmp_path):
    out, data = _stopped_run(tmp_path)
    part = sorted(parts_dir(out).glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:-20])
    with pytest.warns(IncompleteOutputWarning, match="damaged or missing chunk"):
        echo().run_to(data, out, model=answer)
    assert_same_rows(pl.read_parquet(out), data)


def test_an_unrecorded_part_is_removed_and_a_foreign_file_reported(tmp_path):
    out, data = _stopped_run(tmp_path)
    parts = parts_dir(out)
    (parts / "part-999999.parquet").write_bytes(b"written by a run killed before it recorded it")
    (parts / "notes.txt").write_text("mine")
    with pytest.warns(IncompleteOutputWarning, match="notes.txt.*did not write it"):
        echo().run_to(data, out, model=answer)
    assert_same_rows(pl.read_parquet(out), data)


def test_a_torn_manifest_line_counts_its_chunk_as_unwritten(tmp_path):
    out, data = _stopped_run(tmp_path)
    log = parts_dir(out) / "chunks.jsonl"
    log.write_bytes(log.read_bytes()[:-15])
    before = finished_rows(out)
    echo().run_to(data, out, model=answer)
    assert before < data.height
    assert_same_rows(pl.read_parquet(out), data)


def test_a_duplicated_manifest_line_is_reported_and_ignored(tmp_path):
    out, data = _stopped_run(tmp_path)
    log = parts_dir(out) / "chunks.jsonl"
    first = log.read_bytes().splitlines()[0]
    log.write_bytes(log.read_bytes() + first + b"\n")
    with pytest.warns(IncompleteOutputWarning, match="duplicate record"):
        echo().run_to(data, out, model=answer)
    assert_same_rows(pl.read_parquet(out), data)


def test_restart_starts_over(tmp_path):
    out, data = _stopped_run(tmp_path)
    calls = []
    echo().run_to(data, out, model=lambda chats: calls.extend(chats) or answer(chats), restart=True)
    assert len(calls) == data.height


def test_outputs_are_sorted_into_input_order_range_by_range(tmp_path):
    data = pl.DataFrame({"q": [f"q{i}" for i in range(25_000)]})

    async def shuffled(chats):  # finish rows out of order
        import asyncio

        await asyncio.sleep(0.001 * (hash(chats[0][-1]["content"]) % 3))
        return answer(chats)

    result = echo().run_to(data, tmp_path / "out.parquet", model=shuffled, chunk_rows=500, max_concurrency=64)
    assert pl.read_parquet(result)["q"].to_list() == data["q"].to_list()


# -- JSON Lines read back exactly --------------------------------------------------------------

DTYPES = [
    pl.Int8(), pl.Int16(), pl.UInt32(), pl.UInt64(), pl.Int64(), pl.Float32(), pl.Float64(), pl.Boolean(), pl.String(),
    pl.Date(), pl.Datetime("us"), pl.Datetime("ms", "UTC"), pl.Time(), pl.Duration("us"), pl.Binary(),
    pl.Categorical(), pl.Enum(["a", "b"]), pl.Decimal(10, 3), pl.List(pl.Int8), pl.List(pl.Date),
    pl.Struct({"k": pl.Int16, "when": pl.Date}), pl.Array(pl.Int64, 2), pl.List(pl.Struct({"s": pl.String})),
]


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(DTYPES), data=st.data())
def test_jsonl_outputs_read_back_with_their_exact_dtypes(tmp_path_factory, dtype, data):
    """Every dtype comes back from JSON Lines as it was (finite floats: JSON has no NaN or infinity)."""
    from polars.testing.parametric import series

    values = data.draw(series(name="v", dtype=dtype, min_size=0, max_size=5, allow_null=True, allow_chunks=False))
    if dtype == pl.Float32 or dtype == pl.Float64:  # JSON has no NaN nor infinity: they read back as null
        values = values.fill_nan(None)
        values = values.set(values.is_infinite().fill_null(False), None)
    frame = pl.DataFrame([values])
    path = tmp_path_factory.mktemp("jsonl") / "out.jsonl"
    jsonl.encode(frame.lazy(), frame.schema).sink_ndjson(path)
    raw = pl.read_ndjson(path, schema={"v": jsonl.reading_dtype(dtype)}) if frame.height else frame.clear()
    back = raw.select(jsonl.restore(pl.col("v"), dtype).alias("v")) if frame.height else frame
    assert_frame_equal(back, frame, categorical_as_str=True)
    assert decode_schema(encode_schema(frame.schema)) == frame.schema


# -- signals -----------------------------------------------------------------------------------

SLOW_PLAN = """
from distilfn import task
plan = task(name="t", inputs=["q"], outputs=["a"], render=lambda r: [{"role": "user", "content": r["q"]}],
            parse=lambda text: {"a": text})
"""


def _cli_run(tmp_path: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "distilfn.cli", "run", str(tmp_path / "plan.py"), "--input", str(tmp_path / "in.jsonl"),
            "--output", str(tmp_path / "out.jsonl"), "--model", url, "--model-name", "fake", "--cache", str(tmp_path / "cache"),
            "--chunk-rows", "1", "--max-concurrency", "4", "-q"]


def test_sigterm_saves_what_finished_like_ctrl_c(tmp_path):
    from distilfn.testing.fakeserver import FakeServer

    (tmp_path / "plan.py").write_text(SLOW_PLAN)
    pl.DataFrame({"q": [f"question {i}" for i in range(40)]}).write_ndjson(tmp_path / "in.jsonl")
    with FakeServer(latency=0.05) as server:
        run = subprocess.Popen(_cli_run(tmp_path, server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while server.stats()["ok"] < 8 and time.monotonic() < deadline:
            assert run.poll() is None, run.stderr.read()
            time.sleep(0.01)
        server.configure(latency=3600)  # the rest stays in flight
        time.sleep(0.3)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
        assert run.returncode == 143, stderr
        assert "SIGTERM" in stderr and "Traceback" not in stderr
        saved = finished_rows(tmp_path / "out.jsonl")
        assert saved >= 8
        server.configure(latency=0)
        answered = server.stats()["ok"]
        again = subprocess.run(_cli_run(tmp_path, server.url), capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert server.stats()["ok"] - answered == 40 - answered  # nothing answered twice
    assert read_output(tmp_path / "out.jsonl")["q"].to_list() == [f"question {i}" for i in range(40)]


KILLED_PLAN = """
from distilfn import fanout, task
plan = fanout(task(name="t", inputs=["q"], outputs=["a"], render=lambda r: [{"role": "user", "content": r["q"]}],
                   parse=lambda text: {"a": text}), 3)
"""


def test_sigkill_of_an_ungrouped_fanout_then_a_rerun_gives_every_sample(tmp_path):
    """The issue's case: fanout(task, 3) without group, run_to, SIGKILL, re-run: 9 rows per 3, never 8."""
    from distilfn.testing.fakeserver import FakeServer

    (tmp_path / "plan.py").write_text(KILLED_PLAN)
    pl.DataFrame({"q": [f"question {i}" for i in range(30)]}).write_ndjson(tmp_path / "in.jsonl")
    command = _cli_run(tmp_path, "URL")
    with FakeServer(latency=0.02) as server:
        command[command.index("URL")] = server.url
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.stats()["ok"] < 20 and time.monotonic() < deadline:
            assert run.poll() is None, run.stderr.read().decode()
            time.sleep(0.005)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        again = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
    out = read_output(tmp_path / "out.jsonl")
    assert out.height == 90
    assert out.group_by("q").len()["len"].to_list() == [3] * 30


def test_no_chunk_ever_holds_part_of_an_input_row(tmp_path):
    """Stopped midway, an ungrouped fanout of 3 leaves chunks whose input rows all have their 3 outputs."""
    from distilfn.errors import AuthenticationError
    from distilfn.models import FunctionModel
    from distilfn.output.manifest import ROW

    out = tmp_path / "out.parquet"
    calls = []

    def dies(chats):
        calls.extend(chats)
        if len(calls) > 40:
            raise AuthenticationError("401: the key ran out")
        return answer(chats)

    data = pl.DataFrame({"q": [f"q{i:02d}" for i in range(30)]})
    with pytest.raises(AuthenticationError):
        fanout(echo(), 3).run_to(data, out, model=FunctionModel(dies, threaded=False), chunk_rows=2, max_concurrency=3)
    parts = sorted(parts_dir(out).glob("part-*.parquet"))
    assert parts
    for part in parts:
        counts = pl.read_parquet(part).group_by(ROW).len()["len"].to_list()
        assert counts and set(counts) == {3}, part.name
    echo_plan = fanout(echo(), 3)
    echo_plan.run_to(data, out, model=answer)
    assert pl.read_parquet(out).group_by("q").len()["len"].to_list() == [3] * 30
