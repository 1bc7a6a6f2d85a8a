"""Every catalogue task in a plan against the real embedded model (SmolLM2-135M over HTTP).

A 135M model writes and judges poorly, so these tests check plumbing, not quality:
every row comes back, every output is either read or carries its error and raw text,
ratings that were read are in range, and token counts are recorded. Where a task sends a
fixed-length JSON schema, the engine enforces it, so the tiny judge's answers must parse.
"""

from __future__ import annotations

import polars as pl
import pytest

from catalogue_cases import CASES, INSTRUCTION, check_case, meta_rows
from distilfn import tasks as T
from distilfn.models.openai import openai_compatible

pytestmark = pytest.mark.local_model

PARAMS = {"max_tokens": 96, "temperature": 0.0}


@pytest.fixture(scope="module")
def model(local_server):
    return openai_compatible(local_server, model="smollm2-135m-instruct", max_concurrency=4, timeout=300)


def run(plan, frame, model, **params):
    return plan.run(frame, model=model, params={**PARAMS, **params}, cache=False, max_error_rate=None)


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


@pytest.mark.parametrize(("name", "plan", "frame", "outputs"), CASES, ids=[c[0] for c in CASES])
def test_catalogue_task_runs_on_the_real_model(model, name, plan, frame, outputs):
    data = pl.DataFrame(frame)
    out = run(plan, data, model)
    check_case(name, data, out, outputs)
    for meta in meta_rows(out):
        if meta.get("raw_output") is not None:
            # the server reports usage (a request for n samples records it on the first one, 0 on the rest)
            assert meta["input_tokens"] is not None and meta["output_tokens"] is not None
