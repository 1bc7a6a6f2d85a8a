"""Real answers of the embedded model (SmolLM2-135M), stored as fixtures, read by the catalogue.

``tests/fixtures/record.py`` ran every catalogue task on ~20 varied inputs, with and without
the JSON schema sent, and stored the raw answers under ``tests/fixtures/real_answers/``. These
tests only read them (no model runs). A 135M model writes poorly: what is checked is what a
user relies on, that a read is either right-shaped or an error, never a plausible wrong value.

``expected.json`` holds what each answer reads to (values and error); after a deliberate
parser change, rewrite it with ``DISTILFN_UPDATE_REAL_ANSWERS=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from real_cases import CASE_INPUTS, SCHEMA_CASES, build  # noqa: E402
from real_report import records  # noqa: E402

EXPECTED = FIXTURES / "real_answers" / "expected.json"
RECORDS = records()
SCALES = {"ultrafeedback_overall": (1, 5), "ultrafeedback_helpfulness": (1, 5), "judgelm": (1, 10), "ultracm": (1, 10),
          "ultrajudge": (1, 10), "prometheus_absolute": (1, 5)}
RATINGS = {"ultrafeedback_overall": "ratings", "ultrafeedback_helpfulness": "ratings", "judgelm": "ratings",
           "ultracm": "scores", "ultrajudge": "ratings", "prometheus_absolute": "result"}


def key(record: dict) -> str:
    same = [r for r in RECORDS if r["case"] == record["case"] and r["mode"] == record["mode"]]
    return f"{record['case']}/{record['mode']}/{same.index(record)}"


def read(record: dict):
    return build(record["case"]).read(record["raw"], record["row"])


def test_every_catalogue_case_was_recorded_with_and_without_its_schema():
    recorded = {(r["case"], r["mode"]) for r in RECORDS}
    wanted = {(c, m) for c in CASE_INPUTS for m in (("json", "text") if c in SCHEMA_CASES else ("text",))}
    assert wanted <= recorded, sorted(wanted - recorded)
    assert all(sum(1 for r in RECORDS if (r["case"], r["mode"]) == cm) >= 18 for cm in wanted)


def test_each_real_answer_reads_to_its_snapshot():
    current = {key(r): (lambda p: {"values": p.values, "error": p.error})(read(r)) for r in RECORDS}
    current = json.loads(json.dumps(current, default=str))
    if os.environ.get("DISTILFN_UPDATE_REAL_ANSWERS"):
        EXPECTED.write_text(json.dumps(current, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
        pytest.skip("snapshot rewritten")
    expected = json.loads(EXPECTED.read_text())
    changed = [k for k in expected if current.get(k) != expected[k]]
    assert not changed, f"{len(changed)} real answers read differently, e.g. {changed[0]}: {current.get(changed[0])}"


@pytest.mark.parametrize("record", RECORDS, ids=key)
def test_a_real_answer_is_read_right_shaped_or_reported(record):
    parsed = read(record)
    task = build(record["case"])
    assert set(parsed.values) == set(task.output_columns)
    assert parsed.error is None or not parsed.error.startswith("parse failed")
    if parsed.error is not None:
        return
    row = record["row"]
    for name, source in task.list_lengths.items():
        assert len(parsed.values[name]) == len(row[source]), (name, record["raw"])
    column = RATINGS.get(record["case"])
    if column is not None:
        low, high = SCALES[record["case"]]
        values = parsed.values[column]
        for value in values if isinstance(values, list) else [values]:
            assert low <= value <= high, (column, value)


def test_a_complete_schema_constrained_answer_has_the_rows_count_and_fails_only_on_range():
    """The engine enforces the row's schema (the count of items), not numeric ranges for
    floats: a complete JSON answer has one value per generation, and its only possible error
    is a value outside the scale (rejected, never clipped)."""
    for case in SCHEMA_CASES:
        task = build(case)
        complete = [r for r in RECORDS if r["case"] == case and r["mode"] == "json" and r["raw"].rstrip().endswith("}")]
        assert len(complete) >= 10, case
        for record in complete:
            parsed = read(record)
            for name, source in task.list_lengths.items():
                assert len(parsed.values[name]) == len(record["row"][source]), (case, record["raw"])
            assert parsed.error is None or all("outside the scale" in e for e in parsed.error.split("; ")), (case, parsed.error)
