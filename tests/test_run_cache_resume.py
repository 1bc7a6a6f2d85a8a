"""Caching, retrying failures and streaming output through plan.run / plan.run_to."""

from __future__ import annotations

import polars as pl
import pytest

from distilfn import Parsed, fanout, group, read_output, task
from distilfn.errors import AuthenticationError
from distilfn.models import FunctionModel


def numbered(name="num", parse=None):
    return task(
        name=name,
        inputs=["q"],
        outputs={"n": int},
        render=lambda row: [{"role": "user", "content": row["q"]}],
        parse=parse or (lambda text: {"n": int(text)} if text.strip().isdigit() else Parsed(values={"n": None}, error="not a number")),
    )


class Scripted:
    def __init__(self, answer=lambda text: str(len(text))):
        self.answer = answer
        self.calls = 0

    def __call__(self, chats):
        self.calls += len(chats)
        return [self.answer(c[-1]["content"]) for c in chats]


def frame(n):
    return pl.DataFrame({"q": ["x" * (i + 1) for i in range(n)]})


def test_second_run_is_served_from_the_cache(tmp_path):
    fn = Scripted()
    model = FunctionModel(fn, identity="scripted-v1")
    again = task(name="again", inputs=["q"], outputs=["m"], render=lambda r: [{"role": "user", "content": r["q"] + "?"}], parse=lambda t: {"m": t})
    plan = numbered() >> fanout(again, 3) >> group()
    first = plan.run(frame(5), model=model, cache=tmp_path)
    calls = fn.calls
    assert calls == 5 + 15
    second = plan.run(frame(5), model=model, cache=tmp_path)
    assert fn.calls == calls  # nothing sent again
    assert second.drop("meta.num", "meta.again").equals(first.drop("meta.num", "meta.again"))
    assert second["meta.num"].struct.field("cached").all()


def test_plain_functions_are_not_cached_without_an_identity(tmp_path):
    fn = Scripted()
    numbered().run(frame(3), model=fn, cache=tmp_path)
    numbered().run(frame(3), model=fn, cache=tmp_path)
    assert fn.calls == 6


def test_changing_only_the_parser_reparses_cached_answers_without_requests(tmp_path):
    fn = Scripted(answer=lambda text: f"Answer: {len(text)}")
    model = FunctionModel(fn, identity="scripted-v1")
    strict = numbered().run(frame(4), model=model, cache=tmp_path)
    assert strict["n"].null_count() == 4 and fn.calls == 4
    lenient = numbered(parse=lambda text: {"n": int(text.split(":")[1])})
    fixed = lenient.run(frame(4), model=model, cache=tmp_path)
    assert fixed["n"].to_list() == [1, 2, 3, 4] and fn.calls == 4


def test_retry_failed_resends_only_failed_requests_and_unreadable_answers(tmp_path):
    state = {"fail": True}

    def flaky(chats):
        out = []
        for chat in chats:
            text = chat[-1]["content"]
            if len(text) == 2 and state["fail"]:
                out.append(RuntimeError("503 from upstream"))
            elif len(text) == 3 and state["fail"]:
                out.append("three?")  # unreadable
            else:
                out.append(str(len(text)))
        flaky.calls += len(chats)
        return out

    flaky.calls = 0
    model = FunctionModel(flaky, identity="flaky")
    first = numbered().run(frame(5), model=model, cache=tmp_path)
    assert first["n"].to_list() == [1, None, None, 4, 5]
    state["fail"] = False
    plain = numbered().run(frame(5), model=model, cache=tmp_path)
    assert flaky.calls == 6 and plain["n"].to_list() == [1, 2, None, 4, 5]  # failed requests are never cached
    retried = numbered().retry_failed(frame(5), model=model, cache=tmp_path)
    assert flaky.calls == 7 and retried["n"].to_list() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_run_to_streams_rows_in_input_order_and_resumes(tmp_path, suffix):
    source = tmp_path / "in.jsonl"
    frame(50).write_ndjson(source)
    out = tmp_path / f"out{suffix}"
    fn = Scripted()
    model = FunctionModel(fn, identity="s")
    numbered().run_to(source, out, model=model, chunk_rows=7, cache=False)
    result = read_output(out)
    assert result["q"].to_list() == frame(50)["q"].to_list()
    assert result["n"].to_list() == list(range(1, 51))
    assert "__distilfn_row" not in result.columns
    numbered().run_to(source, out, model=model, cache=False)  # complete: nothing to do
    assert fn.calls == 50


def test_run_to_limit_and_failure_keep_what_finished(tmp_path):
    out = tmp_path / "out.parquet"
    seen = []

    def dies_midway(chats):
        seen.extend(chats)
        if len(seen) > 30:
            raise AuthenticationError("401: the key ran out midway")  # stops the whole run
        return ["1"] * len(chats)

    with pytest.raises(AuthenticationError):
        numbered().run_to(frame(100), out, model=FunctionModel(dies_midway, threaded=False), chunk_rows=5, max_concurrency=2, cache=False)
    from distilfn.output import finished_rows

    finished = finished_rows(out)
    assert 0 < finished <= 31
    ok = Scripted(answer=lambda text: "1")
    numbered().run_to(frame(100), out, model=ok, cache=False)
    result = pl.read_parquet(out)
    assert result.height == 100 and result["q"].to_list() == frame(100)["q"].to_list()
    assert ok.calls == 100 - finished
