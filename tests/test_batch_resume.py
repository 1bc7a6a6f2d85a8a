"""Batches survive the process: a run killed while waiting (SIGKILL), or one that exited on
purpose (``--no-wait``), is run again and polls its batches instead of submitting them again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from distilfn import task
from distilfn.models.batch_api import BatchesPending, openai_batch
from distilfn.run.batches import list_batches
from distilfn.testing.fakeserver import FakeServer

PLAN = '''
from distilfn import fanout, task

def _step(name, source, target):
    def render(row):
        return [{"role": "user", "content": name + ": " + row[source]}]
    return task(name=name, inputs=[source], outputs=[target], render=render, parse=lambda text: {target: text})

plan = _step("draft", "instruction", "draft") >> fanout(_step("revise", "draft", "revised"), 2) >> _step("judge", "revised", "verdict")
'''

ROWS = 8
SECRET = "sk-batch-DO-NOT-STORE-51d0e"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "plan.py").write_text(PLAN)
    pl.DataFrame({"instruction": [f"instruction number {i}" for i in range(ROWS)]}).write_ndjson(tmp_path / "in.jsonl")
    return tmp_path


def distilfn(*args: str) -> list[str]:
    return [sys.executable, "-m", "distilfn.cli", *args]


def run_command(workdir: Path, out: str, cache: str, url: str, *extra: str) -> list[str]:
    return distilfn("run", str(workdir / "plan.py"), "--input", str(workdir / "in.jsonl"), "--output", str(workdir / out),
                    "--model", url, "--model-name", "fake", "--cache", str(workdir / cache), "--batch", "-q", *extra)


def env() -> dict[str, str]:
    return {**os.environ, "DISTILFN_API_KEY": SECRET, "PYTHONUNBUFFERED": "1"}


def wait_for(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "the run ended"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_sigkill_while_waiting_then_a_rerun_submits_no_batch_again(workdir: Path):
    with FakeServer(api_key=SECRET) as srv:
        srv.batches.configure(delay=3600)  # the first batch is held
        killed = subprocess.Popen(run_command(workdir, "out.parquet", "cache", srv.url), env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        records = workdir / "cache" / "requests.sqlite"
        wait_for(lambda: any(r.batch_id for r in list_batches(records)), "the first batch to be recorded", killed)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        assert srv.batches.stats()["batches_created"] == 1
        (record,) = list_batches(records)
        assert (record.status, record.requests, record.waiting) == ("in_progress", ROWS, ROWS)

        srv.batches.configure(delay=0)
        again = subprocess.run(run_command(workdir, "out.parquet", "cache", srv.url), env=env(), capture_output=True, timeout=120)
        assert again.returncode == 0, again.stderr.decode()
        counted = srv.batches.stats()
    assert counted["batches_created"] == 3  # the first one was polled, not submitted again
    assert max(counted["lines_per_id"].values()) == 1 and counted["lines"] == ROWS * 4

    with FakeServer(api_key=SECRET) as reference_server:
        reference = subprocess.run(run_command(workdir, "reference.parquet", "cache2", reference_server.url), env=env(),
                                   capture_output=True, timeout=120)
        assert reference.returncode == 0, reference.stderr.decode()
    final, expected = pl.read_parquet(workdir / "out.parquet"), pl.read_parquet(workdir / "reference.parquet")
    assert final.height == ROWS * 2 and final["meta.judge"].struct.field("error").null_count() == ROWS * 2
    assert final.equals(expected)
    for path in workdir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the API key leaked into {path}"


def test_no_wait_submits_and_exits_then_batches_lists_them_and_a_rerun_collects(workdir: Path):
    with FakeServer() as srv:
        srv.batches.configure(delay=3600)
        first = subprocess.run(run_command(workdir, "out.jsonl", "cache", srv.url, "--no-wait"), env=env(),
                               capture_output=True, timeout=120)
        assert first.returncode == 75, first.stderr.decode()
        assert f"{ROWS} requests wait in 1 batch not done" in first.stderr.decode()
        assert "Traceback" not in first.stderr.decode()
        listed = subprocess.run(distilfn("batches", "--cache", str(workdir / "cache")), capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        (row,) = listed.stdout.splitlines()[1:]
        assert row.split()[:4] == ["batch_000002", "in_progress", str(ROWS), str(ROWS)]

        srv.batches.configure(delay=0)
        shown = [a for a in run_command(workdir, "out.jsonl", "cache", srv.url, "--no-wait") if a != "-q"]
        second = subprocess.run(shown, env={**env(), "COLUMNS": "200"}, capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        assert "batches: submitted 2, completed 3, failed 0, resumed 1" in second.stderr.decode()  # the summary
        assert srv.batches.stats()["batches_created"] == 3
    listed = subprocess.run(distilfn("batches", "--cache", str(workdir / "cache")), capture_output=True, text=True, timeout=60)
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["completed"] * 3
    assert pl.read_ndjson(workdir / "out.jsonl").height == ROWS * 2


def test_a_batch_created_but_not_recorded_is_found_by_its_input_file(tmp_path: Path):
    """Killed between creating a batch and recording its id: the re-run finds it in the provider's list."""
    plan = task(name="draft", inputs=["q"], outputs=["draft"], render=lambda row: [{"role": "user", "content": row["q"]}],
                parse=lambda text: {"draft": text})
    rows = pl.DataFrame({"q": [f"question {i}" for i in range(4)]})
    with FakeServer() as srv:
        srv.batches.configure(delay=3600)
        with pytest.raises(BatchesPending):
            plan.run(rows, openai_batch(srv.url, model="fake", batch_wait=0.02, wait=False), cache=tmp_path)
        with sqlite3.connect(tmp_path / "requests.sqlite") as db:
            db.execute("UPDATE batches SET batch_id = NULL, status = 'uploaded'")
        srv.batches.configure(delay=0)
        out = plan.run(rows, openai_batch(srv.url, model="fake", batch_wait=0.02, poll_interval=0.02), cache=tmp_path)
        counted = srv.batches.stats()
    assert out["meta.draft"].struct.field("error").null_count() == 4
    assert counted["batches_created"] == 1 and counted["lines"] == 4
    assert [(r.batch_id, r.status) for r in list_batches(tmp_path / "requests.sqlite")] == [("batch_000002", "completed")]
