"""Plain functions as models: one chat per call for async functions, micro-batches for
sync ones, and one object reused across runs (and after a cancelled run).

Checks are counts and the order of events, never durations: a wait that could hang is
bounded by a generous deadline, and running out of it is itself the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import threading

import polars as pl
import pytest

from distilfn import task
from distilfn.errors import AuthenticationError
from distilfn.models import FunctionModel, Generation

HANG = 20.0
"""Seconds a wait that should end at once may take before the test calls it stuck."""


def echo(name: str, source: str, target: str):
    return task(
        name=name,
        inputs=[source],
        outputs=[target],
        render=lambda row: [{"role": "user", "content": f"{name}: {row[source]}"}],
        parse=lambda text: {target: text},
    )


def frame(n: int) -> pl.DataFrame:
    return pl.DataFrame({"q": [f"r{i}" for i in range(n)]})


def last(chat) -> str:
    return chat[-1]["content"]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- defect 1: async functions get one chat per call, rows never wait for each other -------


def test_async_function_gets_one_chat_per_call_and_a_fast_row_overtakes_a_slow_one():
    """Row r0's first step is answered only after row r1's second step was: with chats
    batched, r1's first step would share r0's call and wait with it."""
    events: list[str] = []
    sizes: list[int] = []
    fast_row_done = asyncio.Event()

    async def model(chats):
        sizes.append(len(chats))
        out = []
        for c in chats:
            text = last(c)
            if text == "one: r0":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fast_row_done.wait(), HANG)
            events.append(f"done {text}")
            if text.startswith("two: one: r1"):
                fast_row_done.set()
            out.append(text)
        return out

    plan = echo("one", "q", "x") >> echo("two", "x", "y")
    out = plan.run(frame(2), model=model, cache=False)
    assert out["y"].to_list() == ["two: one: r0", "two: one: r1"]
    assert set(sizes) == {1}, sizes
    assert events.index("done two: one: r1") < events.index("done one: r0"), events


def test_async_function_calls_run_at_the_runs_concurrency():
    """Every chat of a step is in one call of its own, all in flight together (a count)."""
    in_flight = peak = 0
    sizes: list[int] = []
    all_in = asyncio.Event()

    async def model(chats):
        nonlocal in_flight, peak
        sizes.append(len(chats))
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 12:
            all_in.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), HANG)
        in_flight -= 1
        return [last(chats[0])]

    out = echo("one", "q", "x").run(frame(12), model=model, max_concurrency=12, cache=False)
    assert out["x"].null_count() == 0 and peak == 12
    assert sizes == [1] * 12


def test_async_function_direct_call_with_many_chats_and_n():
    calls: list[int] = []

    async def model(chats):
        calls.append(len(chats))
        return [last(chats[0]).upper()]

    [a, b] = asyncio.run(FunctionModel(model).agenerate([chat("a"), chat("b")], n=2))
    assert a == Generation(texts=("A", "A"), model_name="model") and b.texts == ("B", "B")
    assert calls == [1, 1, 1, 1]


def test_one_failing_async_call_fails_only_its_row_and_auth_stops_all():
    async def model(chats):
        if last(chats[0]) == "one: r1":
            raise ValueError("bad chat")
        return [last(chats[0])]

    out = echo("one", "q", "x").run(frame(3), model=model, cache=False)
    assert out["x"].to_list() == ["one: r0", None, "one: r2"]

    async def denied(chats):
        raise AuthenticationError("401: invalid key")

    with pytest.raises(AuthenticationError):
        asyncio.run(FunctionModel(denied).agenerate([chat("a"), chat("b")]))


def test_sync_function_keeps_micro_batches_within_max_batch():
    sizes: list[int] = []

    def model(chats):
        sizes.append(len(chats))
        return [last(c) for c in chats]

    out = echo("one", "q", "x").run(frame(10), model=model, cache=False)
    assert out["x"].null_count() == 0 and sizes == [10]  # all waiting together: one call

    sizes.clear()
    out = echo("one", "q", "x").run(frame(10), model=FunctionModel(model, max_batch=3), cache=False)
    assert out["x"].null_count() == 0 and sum(sizes) == 10 and max(sizes) == 3, sizes


def test_sync_batches_are_formed_while_the_function_is_busy():
    """Chats that arrive while a batch runs wait for it, then go together in the next one."""
    sizes: list[int] = []
    first_entered, more_queued = threading.Event(), threading.Event()

    def model(chats):
        sizes.append(len(chats))
        if len(sizes) == 1:
            first_entered.set()
            more_queued.wait(HANG)
        return [last(c) for c in chats]

    fm = FunctionModel(model)

    async def go():
        first = asyncio.ensure_future(fm.agenerate([chat("first")]))
        await asyncio.to_thread(first_entered.wait, HANG)
        rest = asyncio.ensure_future(fm.agenerate([chat(f"later {i}") for i in range(5)]))
        await asyncio.sleep(0)  # the five are queued in this turn
        more_queued.set()
        return await first, await rest

    first, rest = asyncio.run(go())
    assert first[0].texts == ("first",) and [g.texts[0] for g in rest] == [f"later {i}" for i in range(5)]
    assert sizes == [1, 5]


def test_a_failing_sync_batch_is_retried_one_chat_at_a_time():
    def model(chats):
        if any(last(c) == "one: r1" for c in chats):
            raise ValueError("bad chat")
        return [last(c) for c in chats]

    out = echo("one", "q", "x").run(frame(4), model=model, cache=False)
    assert out["x"].to_list() == ["one: r0", None, "one: r2", "one: r3"]


# -- defect 2: one model object, many runs --------------------------------------------------


def upper(chats):
    return ["ok " + last(c) for c in chats]


async def aupper(chats):
    await asyncio.sleep(0)
    return ["ok " + last(c) for c in chats]


@pytest.mark.parametrize(
    "model",
    [FunctionModel(upper, max_batch=1), FunctionModel(upper), FunctionModel(aupper), FunctionModel(upper, threaded=False)],
    ids=["sync-max_batch-1", "sync", "async", "sync-unthreaded"],
)
def test_the_same_model_object_serves_consecutive_runs(model):
    plan = echo("one", "q", "x") >> echo("two", "x", "y")
    for _ in range(3):
        out = plan.run(frame(3), model=model, cache=False)
        assert out["y"].to_list() == [f"ok two: ok one: r{i}" for i in range(3)]
    assert model._queues == {}  # nothing of a finished loop is kept


def test_a_run_interrupted_mid_batch_leaves_the_model_usable():
    """Ctrl-C while a batch is in the worker thread and more wait; then a fresh run."""
    calls = 0

    def model(chats):
        nonlocal calls
        calls += 1
        if calls == 1:  # the first batch: interrupt the run while it is being answered
            os.kill(os.getpid(), signal.SIGINT)
        return ["ok " + last(c) for c in chats]

    fm = FunctionModel(model, max_batch=1)
    with pytest.raises(KeyboardInterrupt):
        echo("one", "q", "x").run(frame(6), model=fm, cache=False)
    assert fm._queues == {}
    out = echo("one", "q", "x").run(frame(6), model=fm, cache=False)
    assert out["x"].to_list() == [f"ok one: r{i}" for i in range(6)]


def test_cancelled_callers_in_one_loop_then_new_calls_in_the_same_loop():
    """Cancelling every caller while a batch runs and others wait: the loop's queue goes
    on (the waiting chats are skipped) and later calls in the same loop are answered."""
    entered, release = threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def model(chats):
        seen.append([last(c) for c in chats])
        if len(seen) == 1:
            entered.set()
            release.wait(HANG)
        return [last(c) for c in chats]

    fm = FunctionModel(model, max_batch=2)

    async def go():
        callers = [asyncio.ensure_future(fm.agenerate([chat(f"old {i}")])) for i in range(6)]
        await asyncio.to_thread(entered.wait, HANG)
        for c in callers:
            c.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        release.set()
        return await fm.agenerate([chat("new 0"), chat("new 1")])

    answers = asyncio.run(go())
    assert [a.texts for a in answers] == [("new 0",), ("new 1",)]
    assert seen == [["old 0", "old 1"], ["new 0", "new 1"]]  # the cancelled ones were never asked
    assert fm._queues == {}


def test_two_loops_in_two_threads_share_one_sync_function_one_call_at_a_time():
    inside = 0
    overlaps = 0
    lock = threading.Lock()

    def model(chats):
        nonlocal inside, overlaps
        with lock:
            inside += 1
            overlaps += inside > 1
        try:
            for _ in range(2000):  # some work, letting the other thread run
                pass
            return ["ok " + last(c) for c in chats]
        finally:
            with lock:
                inside -= 1

    fm = FunctionModel(model, max_batch=1)
    results: list[list[str]] = []

    def run() -> None:
        results.append(echo("one", "q", "x").run(frame(20), model=fm, cache=False)["x"].to_list())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG * 3)
    assert results == [[f"ok one: r{i}" for i in range(20)]] * 2
    assert overlaps == 0


def test_a_used_model_still_pickles():
    fm = FunctionModel(upper, max_batch=4)
    asyncio.run(fm.agenerate([chat("x")]))
    again = pickle.loads(pickle.dumps(fm))
    assert again.max_batch == 4 and asyncio.run(again.agenerate([chat("y")]))[0].texts == ("ok y",)


def test_bad_max_batch_is_refused():
    with pytest.raises(ValueError, match="max_batch"):
        FunctionModel(upper, max_batch=0)
