"""Every catalogue task runs in a plan against a scripted model: rows kept, columns made,
nothing null without its error, and well-formed answers read without error."""

from __future__ import annotations

import polars as pl
import pytest

from catalogue_cases import CASES, check_case, meta_rows
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


def test_ultrafeedback_reads_the_scripted_ratings():
    from distilfn.tasks import ultrafeedback

    data = pl.DataFrame({"instruction": ["Name a fruit that is yellow."], "generations": [["A banana.", "Grass."]]})
    out = ultrafeedback().run(data, model=scripted_model(lambda chat: ANSWER), cache=False)
    assert out["ratings"].to_list() == [[4, 2]]
