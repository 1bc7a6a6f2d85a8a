"""distilfn.testing: the strategies, check_parser and scripted_model users rely on."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn import Parsed, task
from distilfn.chat import check_chat
from distilfn.testing import chats, check_parser, model_texts, rating_answers, rows, scripted_model


def _task(parse, outputs=("a",)):
    return task(name="t", inputs=["q"], outputs=outputs, render=lambda r: [], parse=parse)


def test_check_parser_passes_a_careful_parser():
    check_parser(_task(lambda text: {"a": text.strip() or None}), max_examples=50)


def test_check_parser_catches_a_parser_that_raises():
    def fragile(text):
        return {"a": int(text.split("Rating:")[1].split()[0])}

    with pytest.raises(AssertionError, match="raised"):
        check_parser(_task(fragile), max_examples=50)


def test_check_parser_catches_unstorable_values():
    with pytest.raises(AssertionError, match="cannot be stored"):
        check_parser(_task(lambda text: {"a": object()}), max_examples=5)


def test_check_parser_catches_values_of_another_type_than_declared():
    with pytest.raises(AssertionError, match="cannot be stored: column 'a' cannot store the value"):
        check_parser(_task(lambda text: {"a": len(text)}), max_examples=5)  # undeclared: a string column
    check_parser(_task(lambda text: {"a": len(text)}, outputs={"a": int}), max_examples=5)


def test_check_parser_accepts_custom_texts():
    seen = []

    def parse(text):
        seen.append(text)
        return Parsed(values={"a": None}, error="nothing")

    check_parser(_task(parse), st.just("fixed text"), max_examples=5)
    assert "fixed text" in seen


@settings(max_examples=100, deadline=None)
@given(chats())
def test_chats_are_valid_chats(chat):
    assert check_chat(chat, where="test") == chat
    assert chat[-1]["role"] == "user"


@settings(max_examples=50, deadline=None)
@given(rows(["instruction", "generations"]))
def test_rows_have_the_columns_and_list_columns_are_lists(row):
    assert set(row) == {"instruction", "generations"}
    assert isinstance(row["instruction"], str)
    assert isinstance(row["generations"], list) and row["generations"]


@settings(max_examples=50, deadline=None)
@given(rows({"n": st.integers(0, 3)}))
def test_rows_take_strategies_per_column(row):
    assert 0 <= row["n"] <= 3


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=5).flatmap(lambda n: st.tuples(st.just(n), rating_answers(n, (0, 9)))))
def test_rating_answers_match_their_expectations(drawn):
    n, (text, expected) = drawn
    assert len(expected["ratings"]) == len(expected["rationales"]) == n
    assert all(0 <= r <= 9 for r in expected["ratings"])
    for i in range(1, n + 1):
        assert f"Output for Text {i}" in text
    for rationale in expected["rationales"]:
        assert rationale in text


@settings(max_examples=100, deadline=None)
@given(model_texts(markers=["<<MINE>>"]))
def test_model_texts_are_text(text):
    assert isinstance(text, str)


def test_model_texts_use_custom_markers():
    from hypothesis import find

    assert "<<MINE>>" in find(model_texts(markers=["<<MINE>>"]), lambda t: "<<MINE>>" in t)


def test_scripted_model_cycles_a_list_and_counts():
    model = scripted_model(["a", "b"], name="fake")
    chat = [{"role": "user", "content": "x"}]
    assert model([chat, chat, chat]) == ["a", "b", "a"]
    assert model([chat], temperature=0.3) == ["b"]
    assert model.calls == 4 and model.chats == [chat] * 4
    assert model.__name__ == "fake"


def test_scripted_model_answers_from_a_function_and_is_thread_safe():
    model = scripted_model(lambda chat: chat[-1]["content"][::-1])
    chats_ = [[{"role": "user", "content": f"q{i}"}] for i in range(50)]
    threads = [threading.Thread(target=model, args=(chats_,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert model.calls == 200
    assert model([[{"role": "user", "content": "abc"}]]) == ["cba"]


def test_scripted_model_rejects_bad_scripts():
    with pytest.raises(TypeError, match="function of the chat or a list"):
        scripted_model("just a string")
    with pytest.raises(ValueError, match="empty list"):
        scripted_model([])


def test_scripted_model_runs_a_plan():
    import polars as pl

    from distilfn.tasks.judgelm import judgelm

    model = scripted_model(["8 6\nThe first is better."])
    out = judgelm().run(pl.DataFrame({"instruction": ["q1", "q2"], "generations": [["a", "b"], ["c", "d"]]}), model=model, cache=False)
    assert model.calls == 2
    assert out["ratings"].to_list() == [[8.0, 6.0], [8.0, 6.0]]
