"""A run killed with SIGKILL midway resumes to the frame an uninterrupted run gives,
without the server answering any request twice and without losing or doubling rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from distilfn.testing.fakeserver import FakeServer

PLAN = '''
from distilfn import fanout, group, task

def _gen(row):
    return [{"role": "user", "content": "Answer: " + row["instruction"]}]

def _judge(row):
    return [{"role": "user", "content": "Rate: " + " | ".join(row["generations"])}]

generate = task(name="generate", inputs=["instruction"], outputs=["generation"], render=_gen,
                parse=lambda text: {"generation": text.strip()})
judge = task(name="judge", inputs=["generations"], outputs=["verdict"], role="judge", render=_judge,
             parse=lambda text: {"verdict": text[:40]})
plan = fanout(generate, 2) >> group() >> judge
'''

ROWS = 120
SECRET = "sk-test-DO-NOT-STORE-4f1c2"


def command(plan: Path, data: Path, out: Path, cache: Path, url: str) -> list[str]:
    return [
        sys.executable, "-m", "distilfn.cli", "run", str(plan), "--input", str(data), "--output", str(out),
        "--model", url, "--model-name", "fake", "--cache", str(cache), "--max-concurrency", "8",
        "--chunk-rows", "5", "-q",
    ]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "plan.py").write_text(PLAN)
    pl.DataFrame({"instruction": [f"instruction number {i}" for i in range(ROWS)]}).write_ndjson(tmp_path / "in.jsonl")
    return tmp_path


def comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame without the per-answer `cached` flags, which differ after a resume by design."""
    out = frame
    for column in [c for c in frame.columns if c.startswith("meta.")]:
        dtype = frame.schema[column]
        if isinstance(dtype, pl.List):
            out = out.with_columns(pl.col(column).list.eval(pl.element().struct.field("raw_output")))
        else:
            out = out.with_columns(pl.col(column).struct.field("raw_output"))
    return out


def cached_answers(cache: Path) -> int:
    """How many answers the cache at ``cache`` holds (read as another process would)."""
    import sqlite3

    file = cache / "requests.sqlite"
    if not file.exists():
        return 0
    with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as db:
        try:
            return db.execute("SELECT count(*) FROM answers").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def env() -> dict[str, str]:
    return {**os.environ, "DISTILFN_API_KEY": SECRET, "PYTHONUNBUFFERED": "1"}


def test_sigkill_midway_then_resume_equals_an_uninterrupted_run(workdir: Path):
    total_requests = ROWS + ROWS  # one request with n=2 per row for the answers, one for the judge
    with FakeServer(latency=0.03, api_key=SECRET) as server:
        out, cache = workdir / "out.parquet", workdir / "cache"
        run = subprocess.Popen(command(workdir / "plan.py", workdir / "in.jsonl", out, cache, server.url), env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.stats()["ok"] < total_requests * 0.4:
            assert run.poll() is None, run.stderr.read().decode()
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        # hold every new request, wait until every answered sample is in the cache, then kill -9
        server.configure(latency=3600)
        while server.due_within(60) or cached_answers(cache) < server.stats()["choices"]:
            assert run.poll() is None, run.stderr.read().decode()
            assert time.monotonic() < deadline + 60, "answers never reached the cache"
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        answered_before = server.stats()["ok"]
        assert 0 < answered_before < total_requests
        assert not (out.exists() and not (workdir / "out.parquet.parts").exists()), "the killed run must not look finished"

        server.configure(latency=0.0)
        resumed = subprocess.run(command(workdir / "plan.py", workdir / "in.jsonl", out, cache, server.url), env=env(),
                                 capture_output=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr.decode()
        stats = server.stats()
        assert stats["ok"] == total_requests  # every request answered exactly once over both runs
        assert max(stats["ok_per_key"].values()) == 1

    with FakeServer(api_key=SECRET) as reference_server:
        reference_out = workdir / "reference.parquet"
        reference = subprocess.run(command(workdir / "plan.py", workdir / "in.jsonl", reference_out, workdir / "cache2", reference_server.url),
                                   env=env(), capture_output=True, timeout=120)
        assert reference.returncode == 0, reference.stderr.decode()

    final, expected = pl.read_parquet(out), pl.read_parquet(reference_out)
    assert final.height == ROWS
    assert final["instruction"].to_list() == [f"instruction number {i}" for i in range(ROWS)]
    assert comparable(final).equals(comparable(expected))
    assert final["meta.judge"].struct.field("error").null_count() == ROWS

    # the API key is nowhere on disk: cache (db, wal), output parts or final file
    for path in workdir.rglob("*"):
        if path.is_file() and path.name != "plan.py":
            assert SECRET.encode() not in path.read_bytes(), f"the API key leaked into {path}"


def test_kill_without_a_pause_loses_at_most_the_requests_in_flight(workdir: Path):
    with FakeServer(latency=0.03, api_key=SECRET) as server:
        out, cache = workdir / "out.jsonl", workdir / "cache"
        run = subprocess.Popen(command(workdir / "plan.py", workdir / "in.jsonl", out, cache, server.url), env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.stats()["ok"] < 100:
            assert run.poll() is None, run.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        # truncate the output's tail mid-line, as a crash during a write would
        if out.exists() and out.stat().st_size > 10:
            with open(out, "rb+") as fh:
                fh.truncate(out.stat().st_size - 7)
        resumed = subprocess.run(command(workdir / "plan.py", workdir / "in.jsonl", out, cache, server.url), env=env(),
                                 capture_output=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr.decode()
        twice = sum(1 for count in server.stats()["ok_per_key"].values() if count > 1)
        assert twice <= 8 + 1  # at most what was in flight (max_concurrency) when killed
    final = pl.read_ndjson(out)
    assert final.height == ROWS
    assert final["instruction"].to_list() == [f"instruction number {i}" for i in range(ROWS)]
