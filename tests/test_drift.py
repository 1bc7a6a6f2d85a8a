"""The seven families of drift real models show (distilfn.testing.drift), read by the catalogue.

For each family three properties hold over generated drift: the intended values are read
back, a mismatched count is reported, and nothing raises (also on arbitrary edits of the
drifted text).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilfn import tasks as T
from distilfn.testing import (
    count_drift,
    format_drift,
    instruction_list_drift,
    json_drift,
    layout_drift,
    result_drift,
    rewrite_drift,
    score_drift,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JUDGE = T.ultrafeedback_task()
ROW = {"instruction": "q"}


def judge_reads(drift):
    return JUDGE.read(drift.text, {**ROW, **drift.row})


def assert_read_as_intended(parsed, drift):
    if drift.count_mismatch:
        assert parsed.error is not None, (drift.variant, drift.text)
        return
    assert parsed.error is None, (drift.variant, drift.text, parsed.error)
    for column, value in drift.expected.items():
        assert parsed.values[column] == value, (drift.variant, drift.text)


# -- 1. the count --------------------------------------------------------------------------


@FAST
@given(count_drift())
def test_an_answer_for_another_number_of_texts_is_an_error_naming_the_count(drift):
    parsed = judge_reads(drift)
    assert parsed.error is not None
    n = len(drift.row["generations"])
    assert str(n) in parsed.error or f"text {n}" in parsed.error


def test_every_judge_without_an_explicit_count_reads_it_from_the_row():
    """A headerless or partial answer is short by one: with the row's count it is an error."""
    row = {"instruction": "q", "generations": ["a", "b", "c"], "instructions": ["a", "b", "c"]}
    partial = [
        (T.ultrafeedback_task(), "#### Output for Text 1\nRating: 4\nRationale: Fine.\n#### Output for Text 2\nRating: 3\nRationale: Ok."),
        (T.ultrafeedback_task(aspect="helpfulness"), "#### Output for Text 1\nType: 1\nRationale: a.\nRating: 4\nRationale: b."),
        (T.judgelm(), "8 7\nBoth fine."),
        (T.quality_scorer(), "[1] Score: 2\n[2] Score: 3"),
        (T.complexity_scorer(), "[1] Score: 2\n[2] Score: 3"),
        (T.ultracm(), "### Feedback for Answer 1\nGood.\nOverall Score: 8\n### Feedback for Answer 2\nBad.\nOverall Score: 2"),
        (T.ultrajudge(areas=["Accuracy"]), "#### Output for Text 1\nAccuracy: 8 - ok\nFinal Score: 8"),
    ]
    for judge, text in partial:
        view = {c: row[c] for c in (*judge.inputs,)}
        parsed = judge.read(text, view)
        assert parsed.error is not None, judge.name
        # numbered blocks keep what was read (None where missing); positional lists are null
        lists = [parsed.values[c] for c in judge.list_lengths]
        assert all(v is None or len(v) == 3 for v in lists), (judge.name, parsed.values)


# -- 2. UltraFeedback layouts ----------------------------------------------------------------


@FAST
@given(layout_drift())
def test_ultrafeedback_answers_without_headers_are_read_by_number(drift):
    assert_read_as_intended(judge_reads(drift), drift)


def test_sections_out_of_order_are_matched_by_number_never_by_position():
    text = "#### Output for Text 2\nRating: 1\nRationale: Wrong.\n\n#### Output for Text 1\nRating: 5\nRationale: Right."
    parsed = JUDGE.read(text, {**ROW, "generations": ["a", "b"]})
    assert parsed.values == {"ratings": [5, 1], "rationales": ["Right.", "Wrong."]}


def test_unnumbered_sections_of_another_count_are_not_guessed():
    parsed = JUDGE.read("Rating: 4\nRationale: Fine.\n\nRating: 2\nRationale: Off.", {**ROW, "generations": ["a", "b", "c"]})
    assert parsed.values == {"ratings": None, "rationales": None}
    assert parsed.error == "found 2 unnumbered ratings for 3 texts; cannot tell which text they rate"


# -- 3. small formatting drift ---------------------------------------------------------------


@FAST
@given(format_drift())
def test_small_formatting_drift_is_read(drift):
    assert_read_as_intended(judge_reads(drift), drift)


@FAST
@given(result_drift())
def test_prometheus_results_with_small_drift_are_read(drift):
    assert_read_as_intended(T.prometheus().read(drift.text, {}), drift)


def test_word_ratings_and_ratings_inside_prose_are_explicit_errors():
    two = {**ROW, "generations": ["a", "b"]}
    word = JUDGE.read("#### Output for Text 1\nRating: four\nRationale: Ok.\n#### Output for Text 2\nRating: 2\nRationale: Meh.", two)
    assert word.values["ratings"] == [None, 2] and "rating for text 1 is 'four', not a number" in word.error
    prose = JUDGE.read("Text 1 deserves a 4 and Text 2 deserves a 2.", two)
    assert prose.values["ratings"] is None and prose.error
    other_scale = JUDGE.read("#### Output for Text 1\nRating: 8/10\nRationale: Ok.\n#### Output for Text 2\nRating: 4/10\nRationale: Meh.", two)
    assert other_scale.values["ratings"] == [None, None]
    assert "rating for text 2 is 4/10, not on the scale 1-5" in other_scale.error


# -- 4. JSON in text mode ----------------------------------------------------------------------


@FAST
@given(json_drift())
def test_json_answers_in_text_mode_are_read_and_wrong_lengths_reported(drift):
    assert_read_as_intended(judge_reads(drift), drift)


def test_a_short_json_list_is_an_error_even_when_the_schema_decoder_accepts_it():
    """In JSON mode the row's schema fixes the count; a model that ignores it still fails the row."""
    parsed = JUDGE.read('{"assessments": [{"rating": 4, "rationale": "Ok."}]}', {**ROW, "generations": ["a", "b"]})
    assert parsed.values == {"ratings": None, "rationales": None}
    assert parsed.error == "expected 2 assessments, got 1: a JSON list of another length cannot be matched to the texts"


# -- 5. Self-Instruct lists --------------------------------------------------------------------


@FAST
@given(instruction_list_drift())
def test_self_instruct_lists_are_read_and_extra_items_noted(drift):
    asked = drift.row["num_instructions"]
    parsed = T.self_instruct(num_instructions=asked).read(drift.text, {"input": "x"})
    assert_read_as_intended(parsed, drift)
    if "more than asked" in drift.variant:
        assert parsed.note == f"the answer listed {asked + 2} instructions; kept the first {asked}"


# -- 6. Evol rewrites ------------------------------------------------------------------------


@FAST
@given(rewrite_drift())
def test_evol_rewrites_are_unwrapped(drift):
    assert_read_as_intended(T.evol_instruct_task().read(drift.text, {"instruction": "x"}), drift)


@FAST
@given(rewrite_drift(response=True))
def test_evol_quality_rewrites_are_unwrapped_and_lose_the_explanation(drift):
    assert_read_as_intended(T.evol_quality_task().read(drift.text, {"instruction": "x", "response": "y"}), drift)


# -- 7. Deita scorers ------------------------------------------------------------------------


@FAST
@given(score_drift())
def test_deita_scores_in_any_layout_are_read(drift):
    assert_read_as_intended(T.complexity_scorer().read(drift.text, drift.row), drift)


# -- nothing raises ----------------------------------------------------------------------------

FAMILIES = st.one_of(
    count_drift(), layout_drift(), format_drift(), result_drift(), json_drift(),
    instruction_list_drift(), rewrite_drift(), rewrite_drift(response=True), score_drift(),
)
READERS = [
    T.ultrafeedback_task(), T.ultrafeedback_task(aspect="truthfulness"), T.judgelm(), T.ultrajudge(), T.ultracm(),
    T.prometheus(), T.prometheus(mode="relative"), T.complexity_scorer(), T.quality_scorer(),
    T.self_instruct(), T.evol_instruct_task(), T.evol_quality_task(), T.urial(),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FAMILIES, st.data())
def test_no_reader_raises_on_drifted_or_mangled_answers(drift, data):
    text = drift.text
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    text = data.draw(st.sampled_from([text, text[:cut], text[cut:], text[:cut] + data.draw(st.text(max_size=8)) + text[cut:]]))
    row = {"instruction": "q", "response": "r", "input": "i", "generation": "g", "generations": ["a", "b"], "instructions": ["a", "b"], **drift.row}
    for reader in READERS:
        parsed = reader.read(text, {c: row[c] for c in reader.inputs})
        assert set(parsed.values) == set(reader.output_columns)
        assert parsed.error is None or not parsed.error.startswith("parse failed"), (reader.name, parsed.error)
