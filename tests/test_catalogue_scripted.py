"""Every catalogue task runs in a plan against a scripted model: rows kept, columns made
with their declared dtypes, nothing null without its error, and well-formed answers read
without error."""

from __future__ import annotations

import polars as pl
import pytest

from catalogue_cases import CASES, DTYPES, MAY_BE_NULL, MORE_CASES, canonical_answer, check_case, meta_rows
from distilfn.plan import as_plan
from distilfn.testing import scripted_model

# one answer mixing the layouts the judges ask for; each parser reads its own part
ANSWER = (
    "#### Output for Text 1\nType: 1, 2\nRationale: clear.\nRating: 4\nRationale: correct.\n\n"
    "#### Output for Text 2\nType: 1\nRationale: off.\nRating: 2\nRationale: wrong colour.\n\n"
    "[1] Score: 3\n[2] Score: 5\n\n"
    "1. Describe a yellow fruit.\n2. Name a red fruit.\n3. Name a green fruit."
)


@pytest.mark.parametrize(("name", "plan", "frame", "outputs"), CASES, ids=[c[0] for c in CASES])
def test_catalogue_task_runs_on_a_scripted_model(name, plan, frame, outputs):
    model = scripted_model(lambda chat: ANSWER)
    data = pl.DataFrame(frame)
    out = plan.run(data, model=model, cache=False, max_error_rate=None)
    check_case(name, data, out, outputs)
    assert model.calls == sum(1 for m in meta_rows(out) if "raw_input" in m and m["raw_input"] is not None)


ALL_CASES = CASES + MORE_CASES


def test_every_case_declares_its_dtypes():
    assert sorted(DTYPES) == sorted(c[0] for c in ALL_CASES)


@pytest.mark.parametrize(("name", "plan", "frame", "outputs"), ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_well_formed_answers_come_out_with_their_declared_dtypes_and_no_error(name, plan, frame, outputs):
    model = scripted_model(canonical_answer)
    data = pl.DataFrame(frame)
    out = plan.run(data, model=model, cache=False)
    check_case(name, data, out, outputs)
    assert out.height >= 1
    errors = [m["error"] for m in meta_rows(out) if m.get("error") is not None]
    assert errors == [], f"{name}: {errors}"
    for column in DTYPES[name]:
        if column not in MAY_BE_NULL:
            assert out[column].null_count() == 0, f"{name}: {column} has nulls: {out[column].to_list()}"
    # the compiled plan promises the same dtypes before any request
    compiled = {c.name: c.dtype for c in as_plan(plan).compile(data.schema).columns}
    for column, dtype in DTYPES[name].items():
        assert compiled[column] == dtype, f"{name}: {column} compiles to {compiled[column]}, declared {dtype}"


def test_ultrafeedback_reads_the_scripted_ratings():
    from distilfn.tasks import ultrafeedback

    data = pl.DataFrame({"instruction": ["Name a fruit that is yellow."], "generations": [["A banana.", "Grass."]]})
    out = ultrafeedback().run(data, model=scripted_model(lambda chat: ANSWER), cache=False)
    assert out["ratings"].to_list() == [[4, 2]]
    assert out.schema["ratings"] == pl.List(pl.Int64)
