"""distilfn.parsing: shared pieces never raise and read what judges write."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn.parsing import (
    extract_json,
    labelled_fields,
    numbered_items,
    read_indexed_scores,
    read_rating_blocks,
    read_score,
    split_blocks,
)
from distilfn.testing import model_texts, rating_answers

FAST = settings(max_examples=200, deadline=None)


# -- never raise on arbitrary text ------------------------------------------------------


@FAST
@given(model_texts())
def test_pieces_never_raise_on_model_text(text):
    read_score(text)
    labelled_fields(text, ["rating", "rationale"])
    split_blocks(text)
    numbered_items(text)
    extract_json(text)
    blocks, error = read_rating_blocks(text, types=True)
    assert blocks is None or error is None or isinstance(error, str)
    scores, _ = read_indexed_scores(text)
    assert scores is None or all(s is None or s >= 1 for s in scores)


@FAST
@given(model_texts(), st.integers(min_value=1, max_value=6))
def test_rating_blocks_always_give_n_entries(text, n):
    blocks, error = read_rating_blocks(text, n=n)
    if blocks is None:
        assert error
    else:
        assert len(blocks) == n
        assert all(b.rating is None or 1 <= b.rating <= 5 for b in blocks)
        if any(b.rating is None for b in blocks):
            assert error


# -- scores ----------------------------------------------------------------------------


@FAST
@given(st.integers(min_value=1, max_value=5), st.sampled_from(["{}", "{}/5", "**{}**", "{} out of 5", " {} (good)", "{}.0"]))
def test_read_score_accepts_common_forms(value, form):
    assert read_score(form.format(value)).value == value


@FAST
@given(st.integers(min_value=-50, max_value=50).filter(lambda v: not 1 <= v <= 5))
def test_read_score_rejects_out_of_scale_never_clips(value):
    score = read_score(str(value))
    assert score.value is None
    assert "outside the scale 1-5" in score.error


def test_read_score_rejects_fractions_on_integer_scales_and_reads_them_otherwise():
    assert read_score("4.5").error == "score is 4.5, not a whole number"
    assert read_score("4.5", integer=False).value == 4.5
    assert read_score("four").error == "score is 'four', not a number"
    assert read_score(None).error == "score missing"


# -- rating blocks ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(rating_answers())
def test_rating_blocks_round_trip(answer):
    text, expected = answer
    blocks, error = read_rating_blocks(text)
    assert error is None, text
    assert [b.rating for b in blocks] == expected["ratings"]
    assert [b.rationale for b in blocks] == expected["rationales"]


@settings(max_examples=200, deadline=None)
@given(rating_answers(types=True))
def test_typed_rating_blocks_round_trip(answer):
    text, expected = answer
    blocks, error = read_rating_blocks(text, types=True)
    assert error is None, text
    assert [b.types for b in blocks] == expected["types"]
    assert [b.types_rationale for b in blocks] == expected["rationales"]
    assert [b.rationale for b in blocks] == expected["rationales_for_ratings"]


@settings(max_examples=100, deadline=None)
@given(rating_answers(n=4), st.integers(min_value=1, max_value=4))
def test_a_missing_block_keeps_the_others(answer, dropped):
    text, expected = answer
    blocks = split_blocks(text)
    kept = "\n\n".join(f"#### Output for Text {i}\n{b}" for i, b in blocks.items() if i != dropped)
    read, error = read_rating_blocks(kept, n=4)
    assert [b.rating for b in read] == [None if i == dropped else r for i, r in enumerate(expected["ratings"], 1)]
    assert f"rating for text {dropped} missing" in error


def test_small_model_answer():
    text = (
        "Sure! Here is my evaluation.\n\n"
        "#### Output for Text 1\nRating: 4\nRationale: The answer is correct but short.\n\n"
        "#### Output for Text 2\nRating: 5\nRationale: Correct and detailed.\n\n"
        "#### Output for Text 3\nRating: 2\nRationale: It names the wrong city.\n\n"
        "I hope this helps!"
    )
    blocks, error = read_rating_blocks(text, n=4)
    assert [b.rating for b in blocks] == [4, 5, 2, None]
    assert [b.rationale for b in blocks][:3] == [
        "The answer is correct but short.",
        "Correct and detailed.",
        "It names the wrong city.",
    ]
    assert error == "rating for text 4 missing"


def test_bold_labels_fraction_and_out_of_scale():
    text = "### Output for Text 1\n**Rating:** 4/5\n**Rationale:** Good.\n### Output for Text 2\nRating: 7\nRationale: Odd."
    blocks, error = read_rating_blocks(text)
    assert [b.rating for b in blocks] == [4, None]
    assert [b.rationale for b in blocks] == ["Good.", "Odd."]
    assert error == "rating for text 2 is 7, outside the scale 1-5"


def test_typed_block_in_the_paper_layout():
    text = (
        "#### Output for Text 1\nType: 1, 2\nRationale: Relevant and useful.\n"
        "Rating: 4\nRationale: Accurate and informative.\n"
        "#### Output for Text 2\nType: None\nRationale: No informativeness.\nRating: 1\nRationale: Wrong."
    )
    blocks, error = read_rating_blocks(text, types=True)
    assert error is None
    assert [b.types for b in blocks] == [[1, 2], []]
    assert [b.types_rationale for b in blocks] == ["Relevant and useful.", "No informativeness."]
    assert [b.rationale for b in blocks] == ["Accurate and informative.", "Wrong."]


def test_single_block_without_header():
    blocks, error = read_rating_blocks("Rating: 3\nRationale: Fine.", n=1)
    assert (blocks[0].rating, blocks[0].rationale, error) == (3, "Fine.", None)


def test_no_blocks_is_an_error_not_a_list_of_nones():
    assert read_rating_blocks("I cannot rate these.", n=4) == (None, "no '#### Output for Text i' blocks found")


# -- indexed scores, lists, JSON --------------------------------------------------------


@FAST
@given(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3), st.sampled_from(["[{i}] Score: {s}", "[Response {i}] Score: {s}", "**[{i}] Score:** {s}", "{i}. Score: {s}"]))
def test_indexed_scores_round_trip(scores, form):
    text = "Here are the scores:\n" + "\n".join(form.format(i=i, s=s) for i, s in enumerate(scores, 1)) + "\nDone."
    read, error = read_indexed_scores(text, n=len(scores), scale=(1, 4))
    assert (read, error) == ([float(s) for s in scores], None)


def test_indexed_scores_report_missing_and_out_of_scale():
    read, error = read_indexed_scores("[1] Score: 2\n[3] Score: 9", n=3)
    assert read == [2.0, None, None]
    assert error == "score for item 2 missing; score for item 3 is 9, outside the scale 1-4"


@FAST
@given(st.lists(st.text(alphabet="abc xyz", min_size=1, max_size=10).map(str.strip).filter(bool), max_size=5))
def test_numbered_items_round_trip(items):
    text = "Intro\n" + "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))
    assert numbered_items(text) == items


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@FAST
@given(st.dictionaries(st.text(max_size=5), json_values, min_size=1, max_size=3), st.sampled_from(["{}", "```json\n{}\n```", "Sure:\n```\n{}\n```\nBye", "The result is {} as asked."]))
def test_extract_json_round_trip(value, form):
    assert extract_json(form.format(json.dumps(value))) == value


# -- degenerate answers stay cheap ------------------------------------------------------


def test_degenerate_answers_are_read_in_linear_time():
    """A model stuck on spaces, asterisks or newlines must not stall the run (no regex blow-up).

    Counted in CPU time, as growth from 2,500 to 20,000 characters: linear, not quadratic.
    """
    from cpu_scaling import assert_linear

    from distilfn.tasks.deita_scorers import complexity_scorer
    from distilfn.tasks.judgelm import judgelm
    from distilfn.tasks.prometheus import prometheus
    from distilfn.tasks.ultracm import ultracm
    from distilfn.tasks.ultrafeedback import ultrafeedback_task
    from distilfn.tasks.ultrajudge import ultrajudge

    tasks = [ultrafeedback_task(aspect="helpfulness"), judgelm(), ultrajudge(), complexity_scorer(), ultracm(), prometheus()]
    prefixes = ["", "Rating:", "Text 1", "Assistant 1", "[1] Score:", "1. a", "Practical Accuracy:", "#### Output for Text 1\n"]
    for unit in ["*", "_", " ", "\t", "#", "\n", " \n", "** __ ## \t"]:
        for prefix in prefixes:
            for t in tasks:
                assert_linear(lambda size, t=t, prefix=prefix, unit=unit: t.read_raw(prefix + unit * (size // len(unit))),
                              2_500, what=f"{t.name} on {prefix!r} + {unit!r} * n")


def test_the_linear_time_check_catches_quadratic_backtracking():
    """The guard above is not vacuous: ``\\s+$`` on spaces and one letter backtracks quadratically."""
    import re

    from cpu_scaling import assert_linear

    trailing_space = re.compile(r"\s+$")
    with pytest.raises(AssertionError, match="faster than linearly"):
        assert_linear(lambda n: trailing_space.search(" " * n + "x"), 1_000)
