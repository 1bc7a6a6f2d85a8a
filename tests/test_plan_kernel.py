"""The kernel: tasks, plans, operators, validation and the interpreter over scripted models."""

from __future__ import annotations

import asyncio

import msgspec
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn import Parsed, Plan, evolve, fanout, filter_rows, group, identity, map_rows, rename, select, task
from distilfn.errors import AuthenticationError, ColumnNotFoundError, PlanError
from distilfn.models import Generation
from distilfn.run import RunStats


def echo_task(name: str, source: str, target: str, *, role: str = "generator"):
    return task(
        name=name,
        inputs=[source],
        outputs=[target],
        role=role,
        render=lambda row: [{"role": "user", "content": f"{name}: {row[source]}"}],
        parse=lambda text: {target: text},
    )


class Counter:
    """A plain function model that answers with its prompt reversed and counts chats."""

    def __init__(self):
        self.chats: list = []

    def __call__(self, chats):
        self.chats.extend(chats)
        return [chat[-1]["content"] + " ok" for chat in chats]


def frame(n: int) -> pl.DataFrame:
    return pl.DataFrame({"q": [f"question {i}" for i in range(n)]})


# -- tasks --------------------------------------------------------------------------------


def test_task_is_frozen_and_derivations_copy():
    t = echo_task("gen", "q", "a")
    with pytest.raises(AttributeError):
        t.name = "other"  # type: ignore[misc]
    mapped = t.map_inputs(q="question")
    assert mapped.input_columns == ("question",) and t.input_columns == ("q",)
    assert t.with_params(temperature=0.2).params == {"temperature": 0.2} and t.params == {}
    with pytest.raises(ValueError, match="no input named 'nope'"):
        t.map_inputs(nope="x")


def test_task_read_never_raises_and_reports_missing_columns():
    def bad_parser(text):
        raise RuntimeError("boom")

    t = task(name="t", inputs=["q"], outputs=["a", "b"], render=lambda r: [], parse=bad_parser)
    parsed = t.read("anything")
    assert parsed.values == {"a": None, "b": None}
    assert "boom" in parsed.error
    partial = task(name="t", inputs=["q"], outputs=["a", "b"], render=lambda r: [], parse=lambda s: {"a": s})
    assert partial.read("x").error == "could not read 'b'"
    explicit = task(name="t", inputs=["q"], outputs={"a": int}, render=lambda r: [], parse=lambda s: Parsed(values={"a": 1}, error="half"))
    assert explicit.read("x") == Parsed(values={"a": 1}, error="half")


def test_structured_output_schema_is_decoded_before_the_text_parser():
    class Answer(msgspec.Struct):
        score: int

    t = task(name="t", inputs=[], outputs=["score"], render=lambda r: [], parse=lambda s: {"score": -1}, schema=Answer)
    assert t.read('{"score": 4}').values == {"score": 4}
    assert t.read('```json\n{"score": 5}\n```').values == {"score": 5}
    assert t.read("Score is four").values == {"score": -1}  # falls back to the text parser


# -- composition --------------------------------------------------------------------------

steps_strategy = st.lists(
    st.sampled_from([echo_task("a", "q", "x"), echo_task("b", "q", "y"), fanout(echo_task("c", "q", "z"), 2), group()]),
    max_size=4,
)


@given(steps_strategy, steps_strategy, steps_strategy)
def test_rshift_is_associative_and_identity_is_neutral(a, b, c):
    def chain(items):
        plan = identity
        for item in items:
            plan = plan >> item
        return plan

    pa, pb, pc = chain(a), chain(b), chain(c)
    assert ((pa >> pb) >> pc).steps == (pa >> (pb >> pc)).steps
    assert (pa >> identity).steps == pa.steps == (identity >> pa).steps


def test_plan_refuses_truthiness_and_iteration_with_a_hint():
    plan = echo_task("a", "q", "x") >> echo_task("b", "x", "y")
    with pytest.raises(TypeError, match="no truth value"):
        bool(plan)
    with pytest.raises(TypeError, match="not iterable"):
        list(plan)
    assert (echo_task("a", "q", "x") >> 3 if False else True)
    with pytest.raises(TypeError):
        plan >> 3  # type: ignore[operator]


def test_str_outlines_steps_roles_and_columns():
    plan = echo_task("a", "q", "x") >> fanout(echo_task("b", "x", "y"), 3) >> group() >> echo_task("j", "ys", "s", role="judge")
    text = str(plan)
    assert "a  [generator]  q -> x" in text
    assert "fanout x3" in text and "b  [generator]  x -> y" in text
    assert "j  [judge]  ys -> s" in text


# -- validation before any request ---------------------------------------------------------


def test_missing_column_fails_before_the_first_request_naming_step_and_column():
    model = Counter()
    plan = echo_task("a", "q", "x") >> echo_task("b", "answer", "y")
    with pytest.raises(ColumnNotFoundError) as info:
        plan.run(frame(3), model=model)
    message = str(info.value)
    assert "'b'" in message and "'answer'" in message and "available: q, x" in message
    assert model.chats == []


def test_did_you_mean_and_overwrite_errors():
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'question'"):
        echo_task("a", "questoin", "x").validate(["question"])
    with pytest.raises(PlanError, match="overwrite the existing column 'q'"):
        echo_task("a", "q", "q").validate(["q"])
    with pytest.raises(PlanError, match="no fanout"):
        (echo_task("a", "q", "x") >> group()).validate(["q"])


def test_unbound_role_is_an_error_before_any_call():
    model = Counter()
    plan = echo_task("a", "q", "x") >> echo_task("j", "x", "s", role="judge")
    with pytest.raises(PlanError, match="role 'judge'"):
        plan.run(frame(2), model={"generator": model})
    assert model.chats == []


def test_models_bound_by_role():
    gen, judge = Counter(), Counter()
    plan = echo_task("a", "q", "x") >> echo_task("j", "x", "s", role="judge")
    out = plan.run(frame(4), model={"generator": gen, "judge": judge})
    assert len(gen.chats) == 4 and len(judge.chats) == 4
    assert out["s"][0] == "j: a: question 0 ok ok"


# -- operator properties -------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 6), n=st.integers(1, 5))
def test_fanout_makes_n_rows_and_group_inverts_it(rows, n):
    model = Counter()
    fanned = fanout(echo_task("g", "q", "a"), n).run(frame(rows), model=model)
    assert fanned.height == rows * n
    assert len(model.chats) == rows * n
    grouped = (fanout(echo_task("g", "q", "a"), n) >> group()).run(frame(rows), model=Counter())
    assert grouped.height == rows
    assert grouped["q"].to_list() == frame(rows)["q"].to_list()
    assert all(len(v) == n for v in grouped["as"].to_list())


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 5), n=st.integers(1, 5), keep=st.sampled_from(["last", "all"]))
def test_evolve_makes_exactly_n_requests_per_row_each_fed_the_last(rows, n, keep):
    model = Counter()
    out = evolve(echo_task("ev", "q", "q2"), n, keep=keep).run(frame(rows), model=model)
    assert len(model.chats) == rows * n
    expected_last = "question 0"
    history = []
    for _ in range(n):
        expected_last = f"ev: {expected_last} ok"
        history.append(expected_last)
    if keep == "last":
        assert out["q2"][0] == expected_last
    else:
        assert out["q2s"][0].to_list() == history
    assert out["q"].to_list() == frame(rows)["q"].to_list()  # the original stays


def test_group_takes_explicit_names_and_keeps_metadata_lists():
    out = (fanout(echo_task("g", "q", "generation"), 2) >> group(generation="answers")).run(frame(2), model=Counter())
    assert out.columns == ["q", "answers", "model_name", "meta.g"]
    assert len(out["meta.g"][0]) == 2


def test_model_accepting_n_gets_one_request_for_all_samples():
    class NModel:
        name = identity_name = "n-model"
        identity = "n-model"
        supports_n = True
        max_concurrency = None
        requests = 0

        async def agenerate(self, chats, *, n=1, schema=None, **params):
            NModel.requests += len(chats)
            return [Generation(texts=tuple(f"s{i}" for i in range(n)), model_name="n-model", input_tokens=10, output_tokens=n) for _ in chats]

        async def aclose(self):
            pass

    stats = RunStats()
    out = fanout(echo_task("g", "q", "a"), 4).run(frame(3), model=NModel(), cache=False, stats=stats)
    assert NModel.requests == 3
    assert (stats.step("g").input_tokens, stats.step("g").output_tokens) == (30, 12)  # the summary's token counts
    assert out["a"].to_list() == ["s0", "s1", "s2", "s3"] * 3
    tokens = out["meta.g"].struct.field("output_tokens")
    assert tokens.sum() == 12  # usage counted once per request, not once per sample


def test_map_filter_rename_select():
    plan = (
        map_rows(lambda r: {"length": len(r["q"])}, outputs={"length": int}, inputs=["q"], name="length")
        >> filter_rows(lambda r: r["length"] > 10, inputs=["length"], name="long")
        >> rename(q="question")
        >> select("question", "length")
    )
    data = pl.DataFrame({"q": ["short", "a much longer one"]})
    out = plan.run(data, model=Counter())
    assert out["question"].to_list() == ["a much longer one"]
    assert out["length"].to_list() == [17]


# -- failures lose nothing ------------------------------------------------------------------


def test_model_exception_and_parse_failure_keep_their_rows():
    def flaky(chats):
        out = []
        for chat in chats:
            text = chat[-1]["content"]
            if "question 1" in text:
                raise ConnectionError("server went away")
            out.append("unparseable" if "question 2" in text else "42")
        return out

    def parse_int(text):
        return {"n": int(text)} if text.isdigit() else Parsed(values={"n": None}, error=f"not a number: {text!r}")

    t = task(name="num", inputs=["q"], outputs={"n": int}, render=lambda r: [{"role": "user", "content": r["q"]}], parse=parse_int)
    plan = t >> echo_task("after", "n", "m")
    out = plan.run(pl.DataFrame({"q": ["question 0", "question 1", "question 2"]}), model=flaky)
    assert out.height == 3
    meta = out["meta.num"].to_list()
    assert out["n"].to_list() == [42, None, None]
    assert meta[0]["error"] is None
    assert "server went away" in meta[1]["error"] and meta[1]["raw_output"] is None
    assert meta[2]["raw_output"] == "unparseable" and "not a number" in meta[2]["error"]
    after = out["meta.after"].to_list()
    assert after[1]["error"].startswith("skipped: input column 'n' is null")


def test_authentication_error_stops_the_run():
    async def denied(chats):
        raise AuthenticationError("401: invalid key")

    with pytest.raises(AuthenticationError):
        echo_task("a", "q", "x").run(frame(50), model=denied)


# -- scheduling ----------------------------------------------------------------------------


def test_no_step_wide_barrier_rows_move_on_independently():
    """Row 0 is stuck in step 1 until another row has reached step 2."""
    reached_step_two = asyncio.Event()

    async def model(chats):
        text = chats[0][-1]["content"]
        if text.startswith("two:"):
            reached_step_two.set()
        elif "question 0" in text:
            await asyncio.wait_for(reached_step_two.wait(), timeout=5)
        return [text]

    plan = echo_task("one", "q", "x") >> echo_task("two", "x", "y")
    out = plan.run(frame(3), model=model, max_concurrency=4)
    assert out["meta.one"].struct.field("error").null_count() == 3  # no timeout anywhere


def test_requests_in_flight_are_bounded_across_steps():
    in_flight = 0
    peak = 0

    async def slow(chats):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return [c[-1]["content"] for c in chats]

    stats = RunStats()
    plan = echo_task("one", "q", "x") >> fanout(echo_task("two", "x", "y"), 3)
    out = plan.run(frame(40), model=slow, max_concurrency=8, stats=stats)
    assert out.height == 120
    assert stats.max_in_flight <= 8 and peak <= 8
    assert stats.max_in_flight == 8  # and the bound is actually reached


def test_same_input_same_answers_same_frame():
    plan = evolve(echo_task("ev", "q", "q2"), 2) >> fanout(echo_task("g", "q2", "a"), 2) >> group()
    first = plan.run(frame(5), model=Counter())
    second = plan.run(frame(5), model=Counter())
    assert first.equals(second)


def test_input_dtypes_are_kept():
    data = pl.DataFrame({"q": ["a", "b"], "id": pl.Series([1, 2], dtype=pl.UInt16)})
    out = echo_task("g", "q", "a").run(data, model=Counter())
    assert out.schema["id"] == pl.UInt16


def test_run_works_inside_a_running_event_loop():
    async def main():
        return echo_task("g", "q", "a").run(frame(2), model=Counter())

    assert asyncio.run(main()).height == 2


def test_empty_plan_returns_the_frame():
    assert Plan().run(frame(2), model=Counter()).equals(frame(2))


def test_run_stops_early_when_most_requests_fail():
    from distilfn.errors import RunAbortedError

    calls = 0

    def out_of_quota(chats):
        nonlocal calls
        calls += len(chats)
        raise RuntimeError("quota exceeded")

    with pytest.raises(RunAbortedError, match="quota exceeded"):
        echo_task("a", "q", "x").run(frame(1000), model=out_of_quota, max_concurrency=4)
    assert calls < 200  # stopped long before the 1000 rows
    out = echo_task("a", "q", "x").run(frame(60), model=out_of_quota, max_error_rate=None)
    assert out.height == 60 and out["x"].null_count() == 60


@settings(max_examples=20, deadline=None)
@given(lengths=st.lists(st.integers(0, 4), min_size=1, max_size=5))
def test_explode_runs_a_task_per_list_element_and_group_folds_back(lengths):
    from distilfn import explode

    data = pl.DataFrame({"items": [[f"item {r}.{i}" for i in range(k)] for r, k in enumerate(lengths)]})
    model = Counter()
    plan = explode("items", into="item") >> echo_task("answer", "item", "answer") >> group()
    out = plan.run(data, model=model)
    assert out.columns == ["items", "answers", "model_name", "meta.answer"]
    assert len(model.chats) == sum(lengths)
    for items, answers in zip(out["items"].to_list(), out["answers"].to_list(), strict=True):
        assert answers == [f"answer: {item} ok" for item in items]


def test_ensure_runs_the_provider_only_when_a_column_is_missing():
    from distilfn import ensure

    make = echo_task("make", "q", "a")
    judge_fresh = echo_task("judge_fresh", "a", "s")
    judge_given = echo_task("judge_given", "a", "s")
    plan = ensure("a", make >> judge_fresh, otherwise=judge_given)
    fresh = plan.run(frame(2), model=Counter())
    assert "meta.make" in fresh.columns and "meta.judge_fresh" in fresh.columns
    given_frame = frame(2).with_columns(a=pl.lit("given"))
    given = plan.run(given_frame, model=Counter())
    assert "meta.make" not in given.columns and given["s"].to_list() == ["judge_given: given ok"] * 2
    assert "otherwise:" in str(plan)


def test_structured_read_survives_pathological_text():
    """Degenerate text is read in time linear in its length (CPU time, 1/8 to full size)."""
    from cpu_scaling import assert_linear

    class Answer(msgspec.Struct):
        score: int

    t = task(name="t", inputs=[], outputs=["score"], render=lambda r: [], parse=lambda s: {"score": None}, schema=Answer)
    for head, unit, size in [("", "[", 100_000), ("```json", "\n", 20_000), ("```", "`", 10_000)]:
        assert t.read(head + unit * size).values == {"score": None}
        assert_linear(lambda n, head=head, unit=unit: t.read(head + unit * n), size // 8, what=f"{head!r} + {unit!r} * n")


def test_the_dry_run_is_a_method_that_shows_each_step_once_with_every_sample_downstream():
    from distilfn.tasks import evol_instruct, ultrafeedback

    text = (evol_instruct(n=2) >> ultrafeedback()).preview()
    assert text.count("--- evol_instruct [generator] ---") == 1
    assert text.count("--- text_generation [generator] ---") == 1
    assert "4 text outputs" in text  # the judge sees the four placeholder answers
    import distilfn

    assert callable(distilfn.Plan.preview) and not hasattr(distilfn, "preview_plan")


def _catalogue() -> list[str]:
    from distilfn import tasks

    return [*tasks.TASKS, *tasks.PLANS]


@pytest.mark.parametrize("name", _catalogue())
def test_every_catalogue_entry_previews_without_data(name):
    """`ultrafeedback().preview()` and `eliminate_failed_evolutions().preview()` raised
    ColumnNotFoundError: the stand-in row left out the columns read inside an ensure()'s
    branches. Now it holds every column the plan reads and no step makes."""
    from distilfn import tasks
    from distilfn.steps.call import model_calls

    plan = getattr(tasks, name)()
    text = plan.preview()
    if next(model_calls(plan.compile(None).tree), None) is not None:  # all but a map step
        assert "[user]" in text


def test_the_stand_in_row_holds_what_the_plan_reads_and_no_step_makes():
    from distilfn.tasks import evol_instruct, ultrafeedback

    assert ultrafeedback().compile(None).assumed == ("evolved_instruction",)  # `generations` is made in a branch
    assert (evol_instruct(n=3) >> ultrafeedback()).compile(None).assumed == ("instruction",)
    assert "<evolved_instruction>" in ultrafeedback().preview()


def test_the_dry_run_calls_no_model_and_needs_none():
    calls = []
    plan = echo_task("a", "q", "x") >> echo_task("j", "x", "s", role="judge")
    text = plan.preview(pl.DataFrame({"q": ["hello"]}))
    assert "a: hello" in text and "j: <x>" in text and calls == []
