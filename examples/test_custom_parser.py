"""Property-testing a custom parser with distilfn.testing (run: python -m pytest examples/test_custom_parser.py).

`check_parser` asserts the task reads ANY text without raising and always returns
exactly its output columns; the round-trip property below checks that well-formed
answers, with the noise models add, read back to what was written.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn.testing import check_parser

from structured_output import classify  # noqa: E402 - the example task next to this file


def test_classify_never_raises_on_any_text():
    check_parser(classify, max_examples=300)


@settings(max_examples=200, deadline=None)
@given(
    sentiment=st.sampled_from(["positive", "negative", "neutral"]),
    score=st.integers(1, 5),
    prefix=st.sampled_from(["", "Sure! ", "**Answer:** ", "\n\n"]),
    suffix=st.sampled_from(["", ".", " Hope this helps!", "\n"]),
)
def test_well_formed_answers_round_trip(sentiment, score, prefix, suffix):
    parsed = classify.read(f"{prefix}{sentiment.capitalize()}, {score}{suffix}")
    assert parsed.error is None
    assert parsed.values == {"sentiment": sentiment, "score": score}


def test_schema_answer_is_checked_not_clipped():
    assert classify.read('{"sentiment": "positive", "score": 9}').values["score"] is None
