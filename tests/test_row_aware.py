"""Row-aware reading: a schema that depends on the row, and list outputs held to the row's length."""

from __future__ import annotations

from typing import Annotated

import msgspec
import polars as pl
import pytest

from distilfn import Parsed, task
from distilfn import tasks as T
from distilfn.models.openai import openai_compatible
from distilfn.testing import scripted_model
from distilfn.testing.fakeserver import FakeServer


def scores_schema(row):
    """Exactly one score per item of the row (any number when the row has none)."""
    n = len(row.get("items") or [])
    scores = Annotated[list[int], msgspec.Meta(min_length=n, max_length=n)] if n else list[int]
    return msgspec.defstruct("Scores", [("scores", scores)])


def scorer(**options):
    return task(
        name="scorer",
        inputs=["items"],
        outputs={"scores": list[int]},
        render=lambda row: [{"role": "user", "content": "score " + ", ".join(row["items"])}],
        parse=lambda text: Parsed(values={"scores": [int(x) for x in text.split()]}),
        **options,
    )


def test_a_list_output_of_another_length_than_its_row_input_is_an_error_on_that_row():
    t = scorer(list_lengths={"scores": "items"})
    frame = pl.DataFrame({"items": [["a", "b"], ["c"]]})
    out = t.run(frame, model=scripted_model(["4", "5"]), cache=False, warn_failures=False)
    assert out["scores"].to_list() == [None, [5]]  # which score is whose cannot be told: null, raw kept
    assert out["meta.scorer"].struct.field("raw_output").to_list() == ["4", "5"]
    errors = out["meta.scorer"].struct.field("error").to_list()
    assert errors == ["column 'scores' holds 1 values for 2 'items'", None]


def test_list_lengths_must_name_a_list_output_and_an_input():
    with pytest.raises(ValueError, match="list_lengths ties list outputs to list inputs; got 'scores' -> 'nope'"):
        scorer(list_lengths={"scores": "nope"})


def test_a_row_aware_schema_is_sent_per_row_and_shown_unbounded_at_compile_time():
    t = scorer(schema=scores_schema, from_schema=lambda v: {"scores": list(v.scores)})
    assert t.schema_sees_row
    assert t.schema_type.__name__ == "Scores"
    with FakeServer(reply=lambda messages, i: '{"scores": [1, 2, 3]}') as server:
        model = openai_compatible(server.url, model="m")
        out = t.run(pl.DataFrame({"items": [["a", "b", "c"]]}), model=model, cache=False)
        sent = server.stats()["last_body"]["response_format"]["json_schema"]["schema"]
    assert out["scores"].to_list() == [[1, 2, 3]]
    scores = sent["$defs"]["Scores"]["properties"]["scores"] if "$defs" in sent else sent["properties"]["scores"]
    assert scores["minItems"] == 3 and scores["maxItems"] == 3


def test_the_catalogue_judges_send_the_row_count_in_their_schema():
    judge = T.ultrafeedback_task()
    reply = '{"assessments": [{"rating": 4, "rationale": "Ok."}, {"rating": 2, "rationale": "Meh."}, {"rating": 5, "rationale": "Yes."}]}'
    frame = pl.DataFrame({"instruction": ["q"], "generations": [["a", "b", "c"]]})
    with FakeServer(reply=lambda messages, i: reply) as server:
        out = judge.run(frame, model=openai_compatible(server.url, model="m"), cache=False)
        sent = server.stats()["last_body"]
    items = sent["response_format"]["json_schema"]["schema"]["$defs"]["UltraFeedbackAnswer"]["properties"]["assessments"]
    assert items["minItems"] == items["maxItems"] == 3
    assert sent["max_tokens"] == 764  # the default budget for four texts
    assert out["ratings"].to_list() == [[4, 2, 5]]


def test_a_parser_note_reaches_the_metadata_without_failing_the_row():
    t = T.self_instruct(num_instructions=2)
    out = t.run(pl.DataFrame({"input": ["x"]}), model=scripted_model(["A?\nB?\nC?"]), cache=False)
    meta = out["meta.self_instruct"].to_list()[0]
    assert out["instructions"].to_list() == [["A?", "B?"]]
    assert meta["error"] is None
    assert meta["note"] == "the answer listed 3 instructions; kept the first 2"
