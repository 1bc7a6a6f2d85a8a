"""The README's plan, end to end with its fake model: model_name, and exports that follow the data."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from readme_fake import fake

from distilfn import read_output
from distilfn.exports import PromptChoiceWarning, answered_prompt, preference_pairs, sft_rows
from distilfn.tasks import evol_instruct, ultrafeedback

DF = pl.DataFrame({"instruction": ["Explain photosynthesis.", "Write a haiku about rain."]})
PLAN = evol_instruct(n=3) >> ultrafeedback()


@pytest.fixture(scope="module")
def out():
    return PLAN.run(DF, model=fake, cache=False)


def test_the_readme_fake_answers_every_step(out):
    for column in ("meta.ultrafeedback_overall_rating",):
        assert out[column].struct.field("error").null_count() == out.height
    assert out["ratings"].to_list() == [[5, 4, 3, 2]] * 2
    assert all(e.startswith(i) and e != i for i, e in zip(out["instruction"], out["evolved_instruction"], strict=True))


def test_model_name_is_a_column_of_the_schema_before_any_request(out):
    schema = PLAN.compile(DF).schema
    assert schema["model_name"] == pl.String
    names = schema.names()
    assert names.index("model_name") == min(i for i, n in enumerate(names) if n.startswith("meta.")) - 1
    assert out.schema == schema
    assert out["model_name"].to_list() == ["fake", "fake"]


def test_model_name_is_the_judges_and_run_to_agrees(tmp_path):
    def writer(chats):
        return fake(chats)

    def judge(chats):
        return fake(chats)

    models = {"generator": writer, "judge": judge}
    ran = PLAN.run(DF, model=models, cache=False)
    assert ran["model_name"].to_list() == ["judge", "judge"]
    streamed = read_output(PLAN.run_to(DF, tmp_path / "out.parquet", model=models, cache=False))
    assert streamed.schema == ran.schema  # the fake's texts differ from run to run; the names do not
    assert_frame_equal(streamed.select("instruction", "model_name"), ran.select("instruction", "model_name"))


def test_a_failed_last_step_leaves_model_name_null():
    def broken_judge(chats):
        raise RuntimeError("judge down")

    out = PLAN.run(DF, model={"generator": fake, "judge": broken_judge}, cache=False, warn_failures=False)
    assert out["model_name"].to_list() == [None, None]


def test_pairs_of_the_readme_plan_pair_the_evolved_instruction(out):
    pairs = preference_pairs(out)
    assert pairs.height == 2
    assert pairs["prompt"].to_list() == out["evolved_instruction"].to_list()
    assert set(pairs["chosen"]) <= {g for gs in out["generations"] for g in gs}
    sft = sft_rows(out)
    assert [m[0]["content"] for m in sft["messages"]] == out["evolved_instruction"].to_list()
    chat = preference_pairs(out, chat_format=True)
    assert chat["prompt"].to_list()[0] == [{"role": "user", "content": out["evolved_instruction"][0]}]


def test_answers_to_the_original_instruction_are_paired_with_it():
    from distilfn import fanout, group
    from distilfn.tasks import text_generation

    # answers written for the original instruction, then an evolved_instruction made after them
    answered = (
        fanout(text_generation(), 2) >> group() >> evol_instruct(n=1)
    ).run(DF, model=fake, cache=False)
    rated = answered.with_columns(ratings=pl.lit([5, 1]))
    assert answered_prompt(rated) == "instruction"
    assert preference_pairs(rated)["prompt"].to_list() == DF["instruction"].to_list()


def test_without_recorded_chats_the_export_says_what_it_chose(out):
    bare = out.select("instruction", "evolved_instruction", "generations", "ratings")
    with pytest.warns(PromptChoiceWarning, match="using 'evolved_instruction'.*prompt='instruction'"):
        pairs = preference_pairs(bare)
    assert pairs["prompt"].to_list() == out["evolved_instruction"].to_list()
    assert preference_pairs(bare, prompt="instruction")["prompt"].to_list() == DF["instruction"].to_list()
