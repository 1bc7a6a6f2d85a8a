"""The offline batch backend (``openai_batch``) against the fake server's Batch API on 127.0.0.1."""

from __future__ import annotations

import io
import threading
import time
import warnings
from pathlib import Path

import httpx
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from distilfn import fanout, task
from distilfn.errors import AuthenticationError
from distilfn.models.openai import openai_compatible
from distilfn.models.batch_api import BatchesPending, openai_batch
from distilfn.run import RunStats
from distilfn.run.batches import list_batches
from distilfn.run.progress import summary_table
from distilfn.testing.fakeserver import FakeServer, ReplyError

SECRET = "sk-batch-DO-NOT-STORE-9a7e1"


def _step(name: str, source: str, target: str):
    def render(row):
        return [{"role": "user", "content": f"{name.upper()} {row[source]}"}]

    return task(name=name, inputs=[source], outputs=[target], render=render, parse=lambda text: {target: text})


PLAN = _step("draft", "q", "draft") >> fanout(_step("revise", "draft", "revised"), 2) >> _step("judge", "revised", "verdict")
ROWS = pl.DataFrame({"q": [f"question {i}" for i in range(6)]})


def batch_model(srv: FakeServer, **options):
    return openai_batch(srv.url, model="fake", batch_wait=0.02, poll_interval=0.02, **options)


def test_a_three_step_plan_completes_through_batches_as_a_live_run_does(tmp_path: Path):
    with FakeServer() as srv:
        srv.batches.configure(delay=0.05)
        stats = RunStats()
        out = PLAN.run(ROWS, batch_model(srv), cache=tmp_path / "batch", stats=stats)
        counted = srv.batches.stats()
        steps = [{line["body"]["messages"][-1]["content"].split()[0] for line in b.lines} for b in srv.batches.batches.values()]
        live = PLAN.run(ROWS, openai_compatible(srv.url, model="fake"), cache=tmp_path / "live")
    assert out.height == 12 and out["meta.judge"].struct.field("error").null_count() == 12
    assert out.equals(live)  # the same frame as live requests to the same server
    assert counted["batches_created"] == 3  # one batch per step, submitted as its rows became ready
    assert steps == [{"DRAFT"}, {"REVISE"}, {"JUDGE"}]
    assert counted["lines"] == 6 + 6 + 12 and max(counted["lines_per_id"].values()) == 1
    assert stats.batches == {"submitted": 3, "completed": 3}
    assert "batches: submitted 3, completed 3, failed 0" in stats.summary()
    console = Console(file=io.StringIO(), width=200)
    console.print(summary_table(stats))
    assert "batches: submitted 3, completed 3, failed 0" in console.file.getvalue()
    records = list_batches(tmp_path / "batch" / "requests.sqlite")
    assert [(r.status, r.requests, r.waiting) for r in records] == [("completed", 6, 0), ("completed", 6, 0), ("completed", 12, 0)]


def test_a_line_in_the_error_file_fails_its_request_only_and_a_rerun_sends_only_it(tmp_path: Path):
    plan = _step("draft", "q", "draft")
    with FakeServer() as srv:
        srv.batches.configure(fail_marker="question 3")
        stats = RunStats()
        with pytest.warns(UserWarning):
            out = plan.run(ROWS, batch_model(srv), cache=tmp_path, stats=stats)
        errors = out["meta.draft"].struct.field("error").to_list()
        assert [e is not None for e in errors] == [False, False, False, True, False, False]
        assert "injected failure" in errors[3] and out["draft"][3] is None
        srv.batches.configure(fail_marker=None)
        again = plan.run(ROWS, batch_model(srv), cache=tmp_path)
        counted = srv.batches.stats()
    assert again["meta.draft"].struct.field("error").null_count() == 6
    assert counted["batches_created"] == 2 and counted["lines"] == 7  # the second batch holds the failed request only


def test_an_expired_batch_resubmits_only_its_unfinished_requests(tmp_path: Path):
    plan = _step("draft", "q", "draft")
    with FakeServer() as srv:
        srv.batches.configure(expire_after=2)  # a batch of more than 2 lines answers 2 and expires
        stats = RunStats()
        out = plan.run(ROWS, batch_model(srv), cache=tmp_path, stats=stats)
        counted = srv.batches.stats()
        sizes = [len(b.lines) for b in srv.batches.batches.values()]
    assert out["meta.draft"].struct.field("error").null_count() == 6
    assert sizes == [6, 4, 2]  # 6 -> 2 done, 4 again -> 2 done, 2 again -> done
    assert list(srv.batches.statuses().values()) == ["expired", "expired", "completed"]
    assert max(counted["lines_per_id"].values()) <= 3 and counted["lines"] == 12
    assert stats.batches == {"submitted": 3, "expired": 2, "completed": 1, "resubmitted_requests": 6}
    assert [(r.status, r.waiting) for r in list_batches(tmp_path / "requests.sqlite")] == [("expired", 0), ("expired", 0), ("completed", 0)]


def test_a_cancelled_batch_resubmits_its_requests(tmp_path: Path):
    plan = _step("draft", "q", "draft")
    with FakeServer() as srv:
        srv.batches.configure(delay=3600)
        result: list[pl.DataFrame] = []
        runner = threading.Thread(target=lambda: result.append(plan.run(ROWS, batch_model(srv), cache=tmp_path)))
        runner.start()
        deadline = time.monotonic() + 30
        while not srv.batches.batches:
            assert time.monotonic() < deadline, "no batch was created"
            time.sleep(0.01)
        (first,) = srv.batches.batches
        assert httpx.post(f"{srv.url}/batches/{first}/cancel").json()["status"] == "cancelled"
        srv.batches.configure(delay=0)
        runner.join(timeout=30)
        counted = srv.batches.stats()
    assert result and result[0]["meta.draft"].struct.field("error").null_count() == 6
    assert counted["batches_created"] == 2 and counted["lines"] == 12


def test_wait_false_submits_and_stops_then_a_rerun_polls_the_same_batch(tmp_path: Path):
    plan = _step("draft", "q", "draft")
    with FakeServer() as srv:
        srv.batches.configure(delay=3600)
        with pytest.raises(BatchesPending, match="6 requests wait in 1 batch not done"):
            plan.run(ROWS, batch_model(srv, wait=False), cache=tmp_path)
        (record,) = list_batches(tmp_path / "requests.sqlite")
        assert (record.status, record.requests, record.waiting) == ("in_progress", 6, 6)
        with pytest.raises(BatchesPending):  # still not done: polled, not submitted again
            plan.run(ROWS, batch_model(srv, wait=False), cache=tmp_path)
        srv.batches.configure(delay=0)
        stats = RunStats()
        out = plan.run(ROWS, batch_model(srv, wait=False), cache=tmp_path, stats=stats)
        counted = srv.batches.stats()
    assert out["meta.draft"].struct.field("error").null_count() == 6
    assert counted["batches_created"] == 1 and counted["lines"] == 6
    assert stats.batches == {"resumed": 1, "completed": 1}


def test_the_key_is_never_in_the_cache_the_uploaded_files_or_the_batches(tmp_path: Path):
    with FakeServer(api_key=SECRET) as srv:
        srv.batches.configure(fail_marker="question 1")
        with pytest.warns(UserWarning):
            PLAN.run(ROWS, batch_model(srv, api_key=SECRET, metadata={"project": "demo"}), cache=tmp_path)
        files = list(srv.batches.files.values())
        batches = [b.info for b in srv.batches.batches.values()]
        with pytest.raises(AuthenticationError) as refused:
            PLAN.run(ROWS, batch_model(srv, api_key=SECRET + "-wrong"), cache=tmp_path / "other")
    assert len(files) == 3 + 3 + 1  # inputs, outputs, one error file
    for file in files:
        assert SECRET not in file.filename and SECRET.encode() not in file.content
    assert all(SECRET not in repr(info) for info in batches) and batches[0]["metadata"] == {"project": "demo"}
    assert SECRET not in str(refused.value)  # the server echoed the wrong key; the error does not
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the API key leaked into {path}"


def test_requests_are_gathered_up_to_the_limits_per_file(tmp_path: Path):
    plan = _step("draft", "q", "draft")
    with FakeServer() as srv:
        out = plan.run(ROWS, batch_model(srv, max_requests=4), cache=tmp_path)
        sizes = [len(b.lines) for b in srv.batches.batches.values()]
        line = len(next(iter(srv.batches.files.values())).content.splitlines()[0]) + 1
        plan.run(ROWS, batch_model(srv, max_bytes=2 * line + 1), cache=tmp_path / "bytes")
        by_bytes = [len(b.lines) for b in list(srv.batches.batches.values())[2:]]
    assert out["meta.draft"].struct.field("error").null_count() == 6
    assert sorted(sizes) == [2, 4] and by_bytes == [2, 2, 2]  # two submissions may be created in either order


@settings(max_examples=12, deadline=None)
@given(
    rows=st.integers(0, 7),
    failing=st.sets(st.integers(0, 7)),
    expire_after=st.none() | st.integers(1, 4),
    max_requests=st.integers(1, 8),
)
def test_every_row_comes_out_and_each_request_is_answered_once_whatever_the_batches_do(rows, failing, expire_after, max_requests):
    def reply(messages, index):
        text = messages[-1]["content"]
        if int(text.rsplit(" ", 1)[1]) in failing:
            raise ReplyError(500, "this line fails")
        return f"ok {text}"

    plan = _step("draft", "q", "draft")
    frame = pl.DataFrame({"q": [f"question {i}" for i in range(rows)]}, schema={"q": pl.String})
    with FakeServer(reply=reply) as srv, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        srv.batches.configure(expire_after=expire_after)
        out = plan.run(frame, batch_model(srv, max_requests=max_requests), cache=False)
        counts = [b.info["request_counts"] for b in srv.batches.batches.values()]
    assert out["q"].to_list() == frame["q"].to_list()
    errors = out["meta.draft"].struct.field("error").to_list()
    assert [i for i, e in enumerate(errors) if e is not None] == sorted(f for f in failing if f < rows)
    assert sum(c["completed"] + c["failed"] for c in counts) == rows  # one result per request, over every batch


def test_wait_false_without_a_cache_is_refused_before_any_request():
    with FakeServer() as srv:
        with pytest.raises(ValueError, match=r"wait=False\) needs the run's cache"):
            _step("draft", "q", "draft").run(ROWS, batch_model(srv, wait=False), cache=False)
        assert srv.stats()["requests"] == 0


def test_distilfn_batches_on_a_cache_without_batches(tmp_path: Path, capsys):
    from distilfn.cli import main

    assert main(["batches", "--cache", str(tmp_path / "nothing-here")]) == 0
    assert capsys.readouterr().out == "no batches in this cache\n"
    assert not (tmp_path / "nothing-here").exists()  # listing creates nothing


def test_a_batch_whose_creation_answer_was_lost_is_found_not_created_again(tmp_path: Path):
    with FakeServer() as srv:
        srv.batches.configure(lose_created=2)  # the first two creations answer 500, but happened
        out = PLAN.run(ROWS, batch_model(srv), cache=tmp_path)
        counted = srv.batches.stats()
    assert out["meta.judge"].struct.field("error").null_count() == 12
    assert counted["batches_created"] == 3 and max(counted["lines_per_id"].values()) == 1


def test_polling_goes_on_through_an_outage(tmp_path: Path):
    plan = _step("draft", "q", "draft")
    with FakeServer() as srv:
        srv.batches.configure(delay=0.05, fail_retrieves=3)
        out = plan.run(ROWS, batch_model(srv, max_retries=1), cache=tmp_path)
        counted = srv.batches.stats()
    assert out["meta.draft"].struct.field("error").null_count() == 6
    assert counted["batches_created"] == 1 and counted["retrieves"] >= 4  # 3 answered 503, then the batch


def test_the_lazy_export_is_the_function_whatever_was_imported_first():
    """`from distilfn.models import openai_batch` once gave the module of the same name (the
    README's block raised "'module' object is not callable")."""
    import subprocess
    import sys

    for first in ("", "import distilfn.models.batch_api; "):
        code = f"{first}from distilfn.models import openai_batch, OpenAIBatch; assert callable(openai_batch) and isinstance(OpenAIBatch, type)"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def test_a_run_that_sets_no_concurrency_gathers_more_than_64_requests_into_one_batch(tmp_path: Path):
    """The run's default 64 in flight once capped a batch at 64 requests: 200 rows made 4
    batches in turn, each waiting its full completion window."""
    plan = _step("draft", "q", "draft")
    rows = pl.DataFrame({"q": [f"question {i}" for i in range(200)]})
    with FakeServer() as srv:
        out = plan.run(rows, batch_model(srv), cache=tmp_path, progress=False, quiet=True)
        counted = srv.batches.stats()
        capped = plan.run(rows, batch_model(srv), cache=False, max_concurrency=50, quiet=True)
        after = srv.batches.stats()
    assert out["meta.draft"].struct.field("error").null_count() == 200 and capped.height == 200
    assert counted["batches_created"] == 1 and counted["lines"] == 200
    assert after["batches_created"] - counted["batches_created"] == 4  # a run's own max_concurrency still bounds a batch


def test_an_unexpected_error_in_the_backend_fails_the_rows_instead_of_hanging(tmp_path: Path, monkeypatch):
    """After the HTTP backend renamed a helper, the poller died of an AttributeError and the
    run waited for ever; now such an error fails the waiting rows, naming it."""
    from distilfn.models.batch_api import OpenAIBatch

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(OpenAIBatch, "_observe", broken)
    plan = _step("draft", "q", "draft")
    with FakeServer() as srv, pytest.warns(UserWarning):
        out = plan.run(ROWS, batch_model(srv), cache=tmp_path, quiet=True, max_error_rate=None)
    errors = out["meta.draft"].struct.field("error").to_list()
    assert len(errors) == 6 and all("the batch backend failed: RuntimeError: boom" in e for e in errors)
