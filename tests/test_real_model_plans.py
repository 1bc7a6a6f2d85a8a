"""Every catalogue task in a plan against the real embedded model (SmolLM2-135M over HTTP).

A 135M model writes and judges poorly, so these tests check plumbing, not quality:
every row comes back, every output is either read or carries its error and raw text,
ratings that were read are in range, and token counts are recorded. Where a task sends a
fixed-length JSON schema, the engine enforces it, so the tiny judge's answers must parse.
"""

from __future__ import annotations

import polars as pl
import pytest

from distilfn import fanout, group
from distilfn.models.openai import openai_compatible
from distilfn.plan import META_PREFIX
from distilfn import tasks as T

pytestmark = pytest.mark.local_model

PARAMS = {"max_tokens": 96, "temperature": 0.0}
INSTRUCTION = ["Name a fruit that is yellow."]
TWO_ANSWERS = [["A banana is yellow.", "Grass is green."]]


@pytest.fixture(scope="module")
def model(local_server):
    return openai_compatible(local_server, model="smollm2-135m-instruct", max_concurrency=4, timeout=300)


def run(plan, frame, model, **params):
    return plan.run(frame, model=model, params={**PARAMS, **params}, cache=False, max_error_rate=None)


def meta_rows(out: pl.DataFrame) -> list[dict]:
    """Every step result in the frame (list metadata flattened)."""
    found = []
    for column in [c for c in out.columns if c.startswith(META_PREFIX)]:
        for value in out[column].to_list():
            found.extend(value if isinstance(value, list) else [value])
    return [m for m in found if m is not None]


def assert_nothing_silent(out: pl.DataFrame, outputs: list[str]) -> None:
    """Each output is read, or its step's metadata says why not and keeps the raw text."""
    metas = meta_rows(out)
    assert metas, "no step metadata"
    for meta in metas:
        if "raw_output" in meta:
            assert meta["error"] is not None or meta["raw_output"], meta
            if meta["raw_output"] is not None:
                assert meta["input_tokens"] is not None and meta["output_tokens"] is not None
    errors = [m.get("error") for m in metas]
    for column in outputs:
        for value in out[column].to_list():
            assert value is not None or any(errors), f"{column} is null with no error recorded"


def test_text_generation_answers_with_token_counts(model):
    out = run(T.text_generation(), pl.DataFrame({"instruction": INSTRUCTION * 2}), model)
    assert out.height == 2
    assert all(isinstance(g, str) and g for g in out["generation"].to_list())
    meta = out["meta.text_generation"].to_list()
    assert all(m["input_tokens"] > 0 and m["output_tokens"] > 0 and m["model_name"] for m in meta)


def test_evol_instruct_then_ultrafeedback_rates_every_answer(model):
    plan = T.evol_instruct(n=2) >> T.ultrafeedback(num_generations=2)
    out = run(plan, pl.DataFrame({"instruction": INSTRUCTION}), model)
    assert out.height == 1
    row = out.row(0, named=True)
    assert row["instruction"] == INSTRUCTION[0]
    assert row["evolved_instruction"]
    assert len(row["generations"]) == 2 and all(row["generations"])
    # the judge's schema fixes two ratings in 1-5; the engine enforces it, so they parse
    assert row["meta.ultrafeedback_overall_rating"]["error"] is None, row["meta.ultrafeedback_overall_rating"]
    assert len(row["ratings"]) == 2 and all(1 <= r <= 5 for r in row["ratings"])
    assert len(row["meta.evol_instruct"]) == 2  # one metadata entry per round


@pytest.mark.parametrize(
    ("name", "plan", "frame", "outputs"),
    [
        ("self_instruct", T.self_instruct(num_instructions=3), {"input": ["cooking pasta"]}, ["instructions"]),
        ("evol_instruct store", T.evol_instruct(n=1, store_evolutions=True, generate_answers=True), {"instruction": INSTRUCTION}, ["evolved_instructions", "answers"]),
        ("evol_instruct_generator", T.evol_instruct_generator(num_instructions=2, min_length=1), {"topic": ["science"]}, ["instruction"]),
        ("evol_complexity", T.evol_complexity(n=1), {"instruction": INSTRUCTION}, ["evolved_instruction"]),
        ("evol_complexity_generator", T.evol_complexity_generator(num_instructions=1, min_length=1), {"topic": ["math"]}, ["instruction"]),
        ("evol_quality", T.evol_quality(n=1), {"instruction": INSTRUCTION, "response": ["A banana."]}, ["evolved_response"]),
        ("ultrafeedback honesty", T.ultrafeedback(aspect="honesty"), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "rationales"]),
        ("ultrafeedback helpfulness", T.ultrafeedback(aspect="helpfulness", num_generations=2), {"instruction": INSTRUCTION}, ["ratings", "types"]),
        ("judgelm", T.judgelm(num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "rationale"]),
        ("ultrajudge", T.ultrajudge(num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "areas"]),
        ("complexity_scorer", T.complexity_scorer(num_instructions=2), {"instructions": [["Say hi.", "Prove Fermat's last theorem."]]}, ["scores"]),
        ("quality_scorer", T.quality_scorer(num_responses=2), {"instruction": INSTRUCTION, "responses": TWO_ANSWERS}, ["scores"]),
        ("ultracm", T.ultracm(num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["critiques", "scores"]),
        ("prometheus absolute", T.prometheus(), {"instruction": INSTRUCTION, "generation": ["A banana is yellow."]}, ["feedback", "result"]),
        ("prometheus relative", T.prometheus(mode="relative"), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["feedback", "result"]),
        ("elimination with equal judge", T.evol_instruct(n=1, generate_answers=True) >> T.eliminate_failed_evolutions(judge_equal=True), {"instruction": INSTRUCTION}, ["eliminated"]),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_catalogue_task_runs_on_the_real_model(model, name, plan, frame, outputs):
    data = pl.DataFrame(frame)
    out = run(plan, data, model)
    assert out.height >= 1 if "generator" in name else out.height == data.height
    for column in outputs:
        assert column in out.columns, f"{name}: no column {column!r} in {out.columns}"
    assert_nothing_silent(out, outputs)
    for column in ("ratings", "scores"):
        if column in out.columns:
            values = [v for row in out[column].to_list() for v in (row if isinstance(row, list) else [row]) if v is not None]
            assert all(1 <= v <= 10 for v in values), f"{name}: {column} out of range: {values}"
