"""Every defect issue 10 measured on the first kernel, as a test (each failed before kernel v2)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import warnings

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from distilfn import explode, fanout, filter_rows, group, read_output, task
from distilfn.errors import OutputLockedError, PlanError, ResumeRefusedError
from distilfn.models import FunctionModel, Generation
from distilfn.run import RowsFailedWarning, RunOptions


def echo(name: str, source: str, target: str, **kw):
    return task(
        name=name, inputs=[source], outputs=[target],
        render=lambda row: [{"role": "user", "content": f"{name}: {row[source]}"}],
        parse=lambda text: {target: text}, **kw,
    )


def answer_all(chats):
    return [chat[-1]["content"] + " ok" for chat in chats]


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsFailedWarning)
        return fn(*args, **kwargs)


# -- rows disappear ------------------------------------------------------------------------


def test_explode_keeps_null_and_empty_lists_once_without_group():
    data = pl.DataFrame({"items": [["a", "b"], None, []]})
    out = quiet((explode("items", into="item") >> echo("t", "item", "x")).run, data, model=answer_all)
    assert out.height == 4
    assert out["items"].to_list() == [["a", "b"], ["a", "b"], None, []]
    assert out["x"].to_list() == ["t: a ok", "t: b ok", None, None]
    errors = out["meta.t"].struct.field("error").to_list()
    assert errors[:2] == [None, None]
    assert "'items' is null" in errors[2] and "'items' is empty" in errors[3]


def test_explode_null_and_empty_lists_give_empty_lists_after_group():
    data = pl.DataFrame({"items": [["a", "b"], None, []]})
    out = (explode("items", into="item") >> echo("t", "item", "x") >> group()).run(data, model=answer_all)
    assert out.height == 3
    assert out["xs"].to_list() == [["t: a ok", "t: b ok"], [], []]
    assert out.schema["xs"] == pl.List(pl.String)


def test_a_filter_never_drops_a_row_that_failed_upstream():
    def flaky(chats):
        return [RuntimeError("down") if "1" in c[-1]["content"] else "a long enough answer" for c in chats]

    plan = echo("gen", "q", "a") >> filter_rows(lambda r: len(r["a"]) > 5, inputs=["a"], name="long")
    out = quiet(plan.run, pl.DataFrame({"q": ["q0", "q1", "q2"]}), model=flaky)
    assert out["q"].to_list() == ["q0", "q1", "q2"]
    assert "down" in out["meta.gen"][1]["error"]


def test_evol_instruct_generator_keeps_rows_whose_generation_failed():
    from distilfn.tasks import evol_instruct_generator

    calls = {"n": 0}

    def sometimes(chats):
        out = []
        for _ in chats:
            calls["n"] += 1
            out.append(RuntimeError("server down") if calls["n"] % 2 else "Write a poem about the sea at night.")
        return out

    plan = evol_instruct_generator(num_instructions=4, n=1)
    out = quiet(plan.run, pl.DataFrame({"batch": [0]}), model=sometimes, max_error_rate=None)
    assert out.height == 4  # rows whose generation failed are kept, with their errors
    assert out["instruction"].null_count() >= 1


# -- schemas drift ---------------------------------------------------------------------------


def test_metadata_has_one_dtype_whatever_happens():
    ok = echo("t", "q", "a").run(pl.DataFrame({"q": ["x"]}), model=answer_all)
    failing = quiet(echo("t", "q", "a").run, pl.DataFrame({"q": ["x"]}), model=lambda c: [RuntimeError("no")])
    assert ok.schema == failing.schema
    assert ok.schema["meta.t"].to_schema()["error"] == pl.String
    assert ok.schema["meta.t"].to_schema()["input_tokens"] == pl.Int64
    pl.concat([ok, failing])  # no relaxed mode needed


def test_two_outputs_of_one_plan_concatenate_and_load_together(tmp_path):
    plan = fanout(echo("g", "q", "generation"), 2) >> group()
    a = plan.run_to(pl.DataFrame({"q": ["x"]}), tmp_path / "a.parquet", model=answer_all)
    b = quiet(plan.run_to, pl.DataFrame({"q": ["y"]}), tmp_path / "b.parquet", model=lambda c: [RuntimeError("no")] * len(c))
    both = pl.concat([pl.read_parquet(a), pl.read_parquet(b)])
    assert both.height == 2
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=[str(a), str(b)], split="train")
    assert loaded.num_rows == 2


INPUT_TYPES = pl.DataFrame(
    {
        "q": ["a", "b"],
        "i8": pl.Series([1, -2], dtype=pl.Int8),
        "u16": pl.Series([7, 65535], dtype=pl.UInt16),
        "cat": pl.Series(["x", "y"], dtype=pl.Categorical),
        "enum": pl.Series(["lo", "hi"], dtype=pl.Enum(["lo", "hi"])),
        "day": [dt.date(2024, 1, 2), None],
        "at": pl.Series([dt.datetime(2024, 1, 2, 3, 4, 5), None]).dt.replace_time_zone("UTC"),
        "tags": [["p", "q"], []],
        "info": [{"k": 1, "v": "z"}, None],
    }
)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_run_to_keeps_every_input_dtype_like_run(tmp_path, suffix):
    plan = echo("t", "q", "a")
    expected = plan.run(INPUT_TYPES, model=answer_all)
    result = plan.run_to(INPUT_TYPES, tmp_path / f"out{suffix}", model=answer_all)
    assert expected.schema["i8"] == pl.Int8 and expected.schema["cat"] == pl.Categorical
    assert_frame_equal(read_output(result), expected)
    if suffix == ".parquet":
        assert_frame_equal(pl.read_parquet(result), expected)


# -- one bad value poisons a stream ----------------------------------------------------------


def test_a_mixed_type_list_fails_only_its_row(tmp_path):
    def parse(text):
        return {"scores": [1, "two"] if "bad" in text else [1, 2]}

    scorer = task(name="s", inputs=["q"], outputs={"scores": list[int]},
                  render=lambda r: [{"role": "user", "content": r["q"]}], parse=parse)
    data = pl.DataFrame({"q": ["good", "bad", "good too"]})
    result = quiet(scorer.run_to, data, tmp_path / "out.parquet", model=lambda c: [m[-1]["content"] for m in c], chunk_rows=10)
    out = pl.read_parquet(result)
    assert out["scores"].to_list() == [[1, 2], None, [1, 2]]
    error = out["meta.s"][1]["error"]
    assert "'scores'" in error and "two" in error
    assert result.failed == 1


def test_a_lone_surrogate_in_an_answer_fails_only_its_row(tmp_path):
    def model(chats):
        return ["bad \ud800 text" if "1" in c[-1]["content"] else "fine" for c in chats]

    data = pl.DataFrame({"q": ["q0", "q1", "q2"]})
    result = quiet(echo("t", "q", "a").run_to, data, tmp_path / "out.jsonl", model=model)
    out = read_output(result)
    assert out["a"].to_list() == ["fine", None, "fine"]
    meta = out["meta.t"][1]
    assert "surrogate" in meta["error"] and meta["raw_output"] == "bad \ufffd text"


def test_an_undeclared_non_string_output_names_the_column_and_the_fix():
    t = task(name="n", inputs=["q"], outputs=["n"], render=lambda r: [{"role": "user", "content": "x"}], parse=lambda s: {"n": 3})
    out = quiet(t.run, pl.DataFrame({"q": ["x"]}), model=answer_all)
    assert out["n"].to_list() == [None]
    assert "outputs={'n': int}" in out["meta.n"][0]["error"]


# -- function models ---------------------------------------------------------------------


def test_a_function_model_runs_in_two_runs():
    model = FunctionModel(lambda chats: [f"ok {c[-1]['content']}" for c in chats], max_batch=1)
    data = pl.DataFrame({"q": ["r0", "r1", "r2"]})
    first = echo("t", "q", "a").run(data, model=model)
    second = echo("t", "q", "a").run(data, model=model)
    assert first["a"].to_list() == second["a"].to_list() == ["ok t: r0", "ok t: r1", "ok t: r2"]


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be a whole number >= 1, got 0"),
        ({"limit": -1}, "limit must be a whole number >= 0"),
        ({"chunk_rows": 0}, "chunk_rows must be a whole number >= 1"),
        ({"max_error_rate": 1.5}, "max_error_rate must be a fraction"),
    ],
)
def test_bad_run_options_get_one_clear_error(option, message):
    with pytest.raises(ValueError, match=message):
        echo("t", "q", "a").run(pl.DataFrame({"q": ["x"]}), model=answer_all, **option)


def test_an_unknown_option_is_named_with_a_suggestion():
    with pytest.raises(TypeError, match="unknown run option 'max_concurency' \\(did you mean 'max_concurrency'\\?\\)"):
        echo("t", "q", "a").run(pl.DataFrame({"q": ["x"]}), model=answer_all, max_concurency=3)


def test_run_options_have_one_default_each():
    from distilfn.run.options import run_concurrency

    assert run_concurrency(RunOptions(), [answer_all]) == 64  # None: 64, unless a batch model asks for more
    assert RunOptions.of(max_concurrency=None) == RunOptions()  # a CLI flag not given
    assert run_concurrency(RunOptions.of(max_concurrency=128), [answer_all]) == 128
    assert RunOptions.of(max_error_rate=None).max_error_rate is None  # None means "never stop"


@pytest.mark.parametrize("column", ["__distilfn_row", "meta.t"])
def test_input_columns_that_collide_with_internal_ones_are_refused(column):
    data = pl.DataFrame({"q": ["x"], column: ["y"]})
    with pytest.raises(PlanError, match=column.replace(".", r"\.")):
        echo("t", "q", "a").run(data, model=answer_all)


def test_an_earlier_runs_metadata_passes_through_when_names_differ():
    first = echo("t", "q", "a").run(pl.DataFrame({"q": ["x"]}), model=answer_all)
    second = echo("u", "a", "b").run(first, model=answer_all)
    assert second.columns == ["q", "a", "model_name", "meta.t", "b", "meta.u"]  # the input's model_name wins


# -- streaming: crash, two writers, resume -----------------------------------------------


def test_a_second_writer_of_one_output_fails_at_once(tmp_path):
    out = tmp_path / "out.jsonl"
    import filelock

    with filelock.FileLock(str(tmp_path / ".out.jsonl.lock")):
        with pytest.raises(OutputLockedError, match="another run is writing"):
            echo("t", "q", "a").run_to(pl.DataFrame({"q": ["x"]}), out, model=answer_all)
    assert not out.exists()


def test_resume_refuses_a_changed_input_and_says_how_to_start_over(tmp_path):
    out = tmp_path / "out.parquet"
    plan = echo("t", "q", "a")
    data = pl.DataFrame({"q": [f"q{i}" for i in range(5)]})
    calls = []

    def failing_once(chats):
        calls.extend(chats)
        return [RuntimeError("down") if "q3" in c[-1]["content"] else "fine" for c in chats]

    quiet(plan.run_to, data, out, model=failing_once)
    edited = pl.DataFrame({"q": ["new", *data["q"].to_list()]})
    with pytest.raises(ResumeRefusedError, match=r"the input changed.*5 rows then and has 6 now.*restart=True"):
        plan.run_to(edited, out, model=answer_all)
    result = plan.run_to(edited, out, model=answer_all, restart=True)
    assert pl.read_parquet(result)["q"].to_list() == edited["q"].to_list()


def test_resume_refuses_a_changed_plan(tmp_path):
    out = tmp_path / "out.parquet"
    data = pl.DataFrame({"q": ["x", "y"]})
    quiet(echo("t", "q", "a").run_to, data, out, model=lambda c: [RuntimeError("down")] * len(c))
    changed = echo("t", "q", "a").with_params(temperature=0.1)
    with pytest.raises(ResumeRefusedError, match="the plan changed"):
        changed.run_to(data, out, model=answer_all)


def test_a_first_row_holding_internal_words_does_not_duplicate_jsonl(tmp_path):
    out = tmp_path / "out.jsonl"
    data = pl.DataFrame({"q": ["__distilfn_row", "meta.", "plain"]})
    plan = echo("t", "q", "a")
    first = plan.run_to(data, out, model=answer_all)
    second = plan.run_to(data, out, model=answer_all)
    assert second.already_complete
    assert len(out.read_text().splitlines()) == 3
    assert first.rows_out == 3


def test_a_damaged_final_file_is_not_reported_complete(tmp_path):
    out = tmp_path / "out.jsonl"
    data = pl.DataFrame({"q": ["a", "b"]})
    echo("t", "q", "a").run_to(data, out, model=answer_all)
    out.write_text(out.read_text()[:-10])
    with pytest.raises(ResumeRefusedError, match="damaged"):
        echo("t", "q", "a").run_to(data, out, model=answer_all)


def test_a_file_distilfn_did_not_write_is_not_overwritten(tmp_path):
    out = tmp_path / "out.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(out)
    with pytest.raises(ResumeRefusedError, match="has no manifest"):
        echo("t", "q", "a").run_to(pl.DataFrame({"q": ["a"]}), out, model=answer_all)
    assert pl.read_parquet(out)["x"].to_list() == [1]


def test_rerunning_recomputes_rows_written_with_an_error(tmp_path):
    from distilfn.testing.fakeserver import FakeServer
    from distilfn.models import openai_compatible

    out = tmp_path / "out.parquet"
    data = pl.DataFrame({"q": [f"q{i}" for i in range(6)]})
    plan = echo("t", "q", "a")
    with FakeServer(status=503) as server:
        model = openai_compatible(server.url, model="fake", max_retries=0)
        first = quiet(plan.run_to, data, out, model=model, cache=tmp_path / "cache", max_error_rate=None)
        assert first.failed == 6
        server.configure(status=None)
        server.reset_stats()
        second = plan.run_to(data, out, model=openai_compatible(server.url, model="fake"), cache=tmp_path / "cache")
        assert second.failed == 0
        assert server.stats()["ok"] == 6  # exactly the requests that had failed
        third = plan.run_to(data, out, model=openai_compatible(server.url, model="fake"), cache=tmp_path / "cache")
        assert third.already_complete and server.stats()["ok"] == 6
    final = pl.read_parquet(out)
    assert final["meta.t"].struct.field("error").null_count() == 6


def test_python_callers_are_told_how_many_rows_failed():
    with pytest.warns(RowsFailedWarning, match="1 of 2 input rows failed"):
        out = echo("t", "q", "a").run(pl.DataFrame({"q": ["a", "b"]}), model=lambda c: [RuntimeError("x") if "b" in m[-1]["content"] else "ok" for m in c])
    assert out.height == 2


def _half_failing_server():
    """A fake server that answers 400 to every request about an odd-numbered question."""
    from distilfn.testing.fakeserver import FakeServer, ReplyError

    def reply(messages, i):
        text = messages[-1]["content"]
        if int(text.rsplit("q", 1)[1]) % 2:
            raise ReplyError(400, f"no answer for {text}")
        return f"answer to {text}"

    return FakeServer(reply=reply)


def test_the_failure_warning_says_what_a_re_run_sends_and_the_server_counts_agree(tmp_path):
    """The advice in RowsFailedWarning depends on the cache, and holds: with a cache a re-run
    sends only the failed requests; without one `run` sends everything again, and `run_to`
    redoes only the failed rows, sending all their requests (it once promised cached answers
    in every case, a lambda model included)."""
    from distilfn.models import openai_compatible

    data = pl.DataFrame({"q": [f"q{i}" for i in range(6)]})
    plan = echo("t", "q", "a")
    with pytest.warns(RowsFailedWarning, match="sends every request again: no answer was cached") as caught:
        plan.run(data, model=lambda chats: [RuntimeError("x") for _ in chats], quiet=True)
    assert "re-sends only" not in str(caught[0].message)
    with _half_failing_server() as server:
        model = openai_compatible(server.url, model="fake", max_retries=0)
        with pytest.warns(RowsFailedWarning, match="3 of 6 input rows failed.*re-sends only their failed requests"):
            plan.run(data, model=model, cache=tmp_path / "cache", quiet=True, max_error_rate=None)
        server.reset_stats()
        with pytest.warns(RowsFailedWarning):
            plan.run(data, model=model, cache=tmp_path / "cache", quiet=True, max_error_rate=None)
        assert server.stats()["requests"] == 3  # only the failed ones, as the warning said
        server.reset_stats()
        with pytest.warns(RowsFailedWarning, match="sends every request again"):
            plan.run(data, model=model, cache=False, quiet=True, max_error_rate=None)
        assert server.stats()["requests"] == 6
        out = tmp_path / "out.parquet"
        with pytest.warns(RowsFailedWarning, match="redoes only these rows, but sends all of their requests again"):
            plan.run_to(data, out, model=model, cache=False, quiet=True, max_error_rate=None)
        server.reset_stats()
        with pytest.warns(RowsFailedWarning):
            plan.run_to(data, out, model=model, cache=False, quiet=True, max_error_rate=None)
        assert server.stats()["requests"] == 3


# -- the command line ------------------------------------------------------------------------

PLAN = """
from distilfn import fanout, task
generate = task(name="generate", inputs=["q"], outputs=["a"],
                render=lambda r: [{"role": "user", "content": r["q"]}], parse=lambda t: {"a": t})
plan = fanout(generate, 3)
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distilfn.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_the_cli_exits_non_zero_when_rows_failed_and_says_how_to_retry(tmp_path):
    from distilfn.testing.fakeserver import FakeServer

    (tmp_path / "plan.py").write_text(PLAN)
    pl.DataFrame({"q": ["a", "b"]}).write_ndjson(tmp_path / "in.jsonl")
    args = ["run", str(tmp_path / "plan.py"), "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.parquet"),
            "--cache", str(tmp_path / "cache"), "-q"]
    with FakeServer(status=400) as server:  # a rejected request fails its row at once (no retries)
        failed = cli(*args, "--model", server.url, "--model-name", "fake")
        assert failed.returncode == 1, failed.stderr
        assert "2 of 2 input rows failed" in failed.stderr and "run the same command again" in failed.stderr
        allowed = cli(*args, "--model", server.url, "--model-name", "fake", "--allow-failures")
        assert allowed.returncode == 0, allowed.stderr
        server.configure(status=None)
        fixed = cli(*args, "--model", server.url, "--model-name", "fake")
        assert fixed.returncode == 0, fixed.stderr
    assert pl.read_parquet(tmp_path / "out.parquet").height == 6


def test_the_cli_refuses_a_second_writer_with_one_line(tmp_path):
    import filelock

    from distilfn.testing.fakeserver import FakeServer

    (tmp_path / "plan.py").write_text(PLAN)
    pl.DataFrame({"q": ["a"]}).write_ndjson(tmp_path / "in.jsonl")
    with filelock.FileLock(str(tmp_path / ".out.jsonl.lock")), FakeServer() as server:  # the CLI checks the server is up first
        busy = cli("run", str(tmp_path / "plan.py"), "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                   "--model", server.url, "--model-name", "x", "-q")
    assert busy.returncode == 2
    assert "Traceback" not in busy.stderr
    assert "another run is writing" in busy.stderr.strip().splitlines()[-1]


# -- specs travel ------------------------------------------------------------------------------


def test_model_specs_pickle_without_their_sessions_or_credentials(monkeypatch):
    import cloudpickle

    from distilfn.models import local, openai_compatible

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    remote = openai_compatible("http://127.0.0.1:9/v1", model="m", api_key="sk-never-travels-123")
    data = cloudpickle.dumps(remote)
    assert b"sk-never-travels-123" not in data
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-worker-env")
    copy = cloudpickle.loads(data)
    assert copy.identity == remote.identity and copy.max_concurrency is None
    assert copy._secrets.headers["authorization"] == "Bearer sk-from-the-worker-env"
    engine = cloudpickle.loads(cloudpickle.dumps(local()))
    assert not engine.running and engine.name == local().name


def test_a_capped_model_waiting_holds_no_slot_another_model_could_use():
    """A judge capped at 1 with requests waiting for it: the rows it judged go on to the
    generator at once, instead of waiting until every judge request has had its turn."""
    import asyncio

    events: list[str] = []

    class Capped:
        name = "judge"
        identity = None
        supports_n = False
        max_concurrency = 1

        async def agenerate(self, chats, *, n=1, schema=None, **params):
            await asyncio.sleep(0.02)
            events.append("judged")
            return [Generation(texts=("judged",)) for _ in chats]

        async def aclose(self):
            pass

    async def generator(chats):
        events.append("generated")
        return [c[-1]["content"] for c in chats]

    plan = echo("j", "q", "a", role="judge") >> echo("g", "a", "b")
    data = pl.DataFrame({"q": [f"q{i}" for i in range(12)]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = plan.run(data, model={"generator": generator, "judge": Capped()}, max_concurrency=4)
    assert out["b"].to_list() == ["g: judged"] * 12
    # each judged row is generated before the judge answers two more (the old order: 9 judged, then generated)
    judged = 0
    for event in events:
        judged = judged + 1 if event == "judged" else max(judged - 1, 0)
        assert judged <= 2, events
