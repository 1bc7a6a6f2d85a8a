"""Inputs, atomic writes and the crash-safe chunked writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from distilfn.io import (
    ChunkedWriter,
    IncompleteOutputWarning,
    parts_dir,
    read_finished,
    read_input,
    scan_input,
    write_frame,
)

FRAME = pl.DataFrame({"instruction": ["Explain photosynthesis.", "Write a haiku about rain."], "n": [1, 2]})


def rows(start, stop, *, error=None):
    return [
        {"i": i, "generation": f"answer {i}", "ratings": [i % 5, None],
         "meta": {"error": error, "tokens": i}}
        for i in range(start, stop)
    ]


# -- inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".ndjson", ".csv", ".json"])
def test_scan_and_read_input_by_suffix(tmp_path, suffix):
    path = write_frame(FRAME, tmp_path / f"in{suffix}")
    assert isinstance(scan_input(path), pl.LazyFrame)
    assert_frame_equal(read_input(path), FRAME)
    assert_frame_equal(read_input(str(path)), FRAME)


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
    with pytest.raises(ValueError, match="out.txt"):
        write_frame(FRAME, tmp_path / "out.txt")
    with pytest.raises(ValueError, match="cannot tell the output format"):
        ChunkedWriter(tmp_path / "out.txt")


def test_write_frame_leaves_no_temporary_files(tmp_path):
    write_frame(FRAME, tmp_path / "a.parquet")
    write_frame(FRAME, tmp_path / "a.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["a.parquet"]


# -- chunked writer ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_writer_round_trip_with_schema_drift(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    with ChunkedWriter(out, chunk_rows=4) as w:
        w.write(rows(0, 5))  # 'error' is all null in the first chunk ...
        w.write(pl.from_dicts(rows(5, 9, error="timeout")))  # ... a string later
        w.write([])
        w.write(rows(9, 10))
        assert w.rows_written == 8  # two whole chunks, two rows buffered
    assert w.rows_written == 10
    assert not parts_dir(out).exists()
    back = read_finished(out)
    assert back["i"].to_list() == list(range(10))
    assert back.schema["meta"] == pl.Struct({"error": pl.String, "tokens": pl.Int64})
    assert back["meta"].struct.field("error").to_list() == [None] * 5 + ["timeout"] * 4 + [None]
    assert back["ratings"].to_list()[3] == [3, None]
    assert_frame_equal(read_input(out), back)


def test_parquet_parts_appear_chunk_by_chunk(tmp_path):
    out = tmp_path / "out.parquet"
    w = ChunkedWriter(out, chunk_rows=3)
    w.write(rows(0, 7))
    assert sorted(p.name for p in parts_dir(out).iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert read_finished(out)["i"].to_list() == list(range(6))
    w.flush()
    assert read_finished(out)["i"].to_list() == list(range(7))
    assert not out.exists()
    w.close()
    assert pl.read_parquet(out)["i"].to_list() == list(range(7))


def test_max_delay_flushes_slow_streams(tmp_path):
    out = tmp_path / "out.jsonl"
    w = ChunkedWriter(out, chunk_rows=1000, max_delay=0.0)
    w.write(rows(0, 1))
    assert read_finished(out)["i"].to_list() == [0]
    w.close()


def test_order_by_and_drop_columns_on_close(tmp_path):
    for suffix in (".parquet", ".jsonl"):
        out = tmp_path / f"out{suffix}"
        with ChunkedWriter(out, chunk_rows=2, order_by="i", drop_columns=["meta"]) as w:
            w.write(rows(4, 8))
            w.write(rows(0, 4))
        back = read_finished(out)
        assert back["i"].to_list() == list(range(8)), suffix
        assert "meta" not in back.columns


def test_resume_false_replaces_an_earlier_output(tmp_path):
    out = tmp_path / "out.parquet"
    with ChunkedWriter(out, chunk_rows=2, max_delay=None) as w:
        w.write(rows(0, 4))
    w = ChunkedWriter(out, chunk_rows=2)
    assert w.finished is None
    w.write(rows(10, 12))
    assert read_finished(out)["i"].to_list() == [10, 11]  # the running parts are the truth
    w.close()
    assert read_finished(out)["i"].to_list() == [10, 11]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_resume_appends_after_finished_rows(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    with pytest.raises(RuntimeError, match="boom"), ChunkedWriter(out, chunk_rows=2) as w:
        w.write(rows(0, 5))
        raise RuntimeError("boom")
    assert read_finished(out)["i"].to_list() == list(range(5))  # flushed, not finalized
    with ChunkedWriter(out, chunk_rows=2, resume=True) as w:
        assert w.finished["i"].to_list() == list(range(5))
        w.write(rows(5, 8))
    assert read_finished(out)["i"].to_list() == list(range(8))
    with ChunkedWriter(out, resume=True, finished_columns=["i"]) as w:  # resuming a finished output keeps it
        assert w.finished.columns == ["i"]
        assert w.finished["i"].to_list() == list(range(8))
        w.write(rows(8, 9))
    final = read_finished(out)
    assert final["i"].to_list() == list(range(9))
    assert final["meta"].to_list()[7] == {"error": None, "tokens": 7}


def test_read_finished_of_nothing_and_columns(tmp_path):
    assert read_finished(tmp_path / "none.parquet") is None
    assert read_finished(tmp_path / "none.jsonl") is None
    out = tmp_path / "out.parquet"
    with ChunkedWriter(out, chunk_rows=2) as w:
        w.write(rows(0, 3))
    assert read_finished(out, columns=["i"]).columns == ["i"]


# -- torn and corrupted tails ------------------------------------------------------------------


def test_truncated_parquet_part_is_ignored_and_redone(tmp_path):
    out = tmp_path / "out.parquet"
    w = ChunkedWriter(out, chunk_rows=3)
    w.write(rows(0, 9))
    w.close(finalize=False)
    last = parts_dir(out) / "part-00002.parquet"
    last.write_bytes(last.read_bytes()[:-20])
    with pytest.warns(IncompleteOutputWarning, match="part-00002"):
        assert read_finished(out)["i"].to_list() == list(range(6))
    with pytest.warns(IncompleteOutputWarning), ChunkedWriter(out, chunk_rows=3, resume=True) as w:
        assert w.finished["i"].to_list() == list(range(6))
        w.write(rows(6, 9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_finished(out)["i"].to_list() == list(range(9))


def test_unreadable_final_parquet_is_not_fatal(tmp_path):
    out = tmp_path / "out.parquet"
    write_frame(pl.DataFrame(rows(0, 3)), out)
    out.write_bytes(out.read_bytes()[:50])
    with pytest.warns(IncompleteOutputWarning, match="unreadable output file"):
        assert read_finished(out) is None


@pytest.mark.parametrize("cut", [1, 5, 30])
def test_truncated_jsonl_line_is_ignored_and_cut_on_resume(tmp_path, cut):
    out = tmp_path / "out.jsonl"
    with ChunkedWriter(out, chunk_rows=2) as w:
        w.write(rows(0, 4))
    out.write_bytes(out.read_bytes()[:-cut])
    with pytest.warns(IncompleteOutputWarning, match="torn last line"):
        assert read_finished(out)["i"].to_list() == [0, 1, 2]
    with pytest.warns(IncompleteOutputWarning), ChunkedWriter(out, resume=True) as w:
        w.write(rows(3, 5))
    assert [line[:7] for line in out.read_text().splitlines()] == ['{"i":0,', '{"i":1,', '{"i":2,', '{"i":3,', '{"i":4,']


def test_garbage_jsonl_line_ends_the_finished_prefix(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"i": 0}\n{"i": 1}\n{"i": 2, "x": \x00\x00}\n{"i": 3}\n')
    with pytest.warns(IncompleteOutputWarning, match="unreadable line 3"):
        assert read_finished(out)["i"].to_list() == [0, 1]


# -- kill -9 -------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from distilfn.io import ChunkedWriter
    w = ChunkedWriter(sys.argv[1], chunk_rows=7, max_delay=None)
    i = 0
    while True:
        w.write([{"i": j, "text": f"answer {j} " * (j % 40), "error": None if j % 3 else "bad"} for j in range(i, i + 5)])
        i += 5
        if i == 400:
            print("ready", flush=True)
    """
)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_kill_9_of_a_writer_leaves_a_prefix_that_resumes(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteOutputWarning)  # a torn tail is allowed
        done = read_finished(out)["i"].to_list()
    assert len(done) >= 399 // 7 * 7  # every whole chunk written before "ready"
    assert done == list(range(len(done)))  # a prefix: no hole, no duplicate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteOutputWarning)
        w = ChunkedWriter(out, chunk_rows=7, resume=True)
    assert w.finished["i"].to_list() == done
    k = len(done)
    w.write([{"i": j, "text": f"answer {j} " * (j % 40), "error": None if j % 3 else "bad"} for j in range(k, k + 20)])
    w.close()
    final = read_finished(out)
    assert final["i"].to_list() == list(range(k + 20))
    assert final["text"][k - 1] == f"answer {k - 1} " * ((k - 1) % 40)


# -- bounded-memory paths ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_order_by_an_integer_index_sorts_large_outputs_range_by_range(tmp_path, suffix):
    import random

    order = list(range(25_000))
    random.Random(0).shuffle(order)
    out = tmp_path / f"out{suffix}"
    with ChunkedWriter(out, chunk_rows=1000, order_by="i") as w:
        for start in range(0, len(order), 500):
            w.write(pl.DataFrame({"i": order[start:start + 500], "x": [str(i) for i in order[start:start + 500]]}))
        w.write([{"i": None, "x": "no index"}])
    back = read_finished(out)
    assert back["i"].to_list() == [None, *range(25_000)]
    assert back["x"].to_list()[1:4] == ["0", "1", "2"]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no work files left behind


def test_jsonl_prefix_reader_handles_lines_across_blocks(tmp_path):
    from distilfn.io import _JsonlPrefix

    out = tmp_path / "out.jsonl"
    text = "".join(f'{{"i": {i}, "s": "{"y" * (i % 37)}"}}\n' for i in range(300))
    out.write_text(text + '{"i": 300, "s": "tor')
    for block_bytes in (7, 64, 1000, 1 << 20):
        prefix = _JsonlPrefix(out, block_bytes=block_bytes)
        assert b"".join(prefix) == text.encode()
        assert prefix.size == len(text.encode()) and prefix.problem == "a torn last line"
