"""The catalogue tasks as plan cases shared by the scripted and the real-model tests."""

from __future__ import annotations

import polars as pl

from distilfn import tasks as T
from distilfn.meta import META_PREFIX

INSTRUCTION = ["Name a fruit that is yellow."]
TWO_ANSWERS = [["A banana is yellow.", "Grass is green."]]

CASES = [
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
]
"""(name, plan, input columns, output columns that must exist)."""


def meta_rows(out: pl.DataFrame) -> list[dict]:
    """Every step result in the frame (list metadata flattened)."""
    found = []
    for column in [c for c in out.columns if c.startswith(META_PREFIX)]:
        for value in out[column].to_list():
            found.extend(value if isinstance(value, list) else [value])
    return [m for m in found if m is not None]


def check_case(name: str, data: pl.DataFrame, out: pl.DataFrame, outputs: list[str]) -> None:
    """Rows all there, outputs present, nothing null without an error, ranges respected."""
    assert out.height >= 1 if "generator" in name else out.height == data.height
    for column in outputs:
        assert column in out.columns, f"{name}: no column {column!r} in {out.columns}"
    metas = meta_rows(out)
    assert metas, "no step metadata"
    for meta in metas:
        if "raw_output" in meta:
            assert meta["error"] is not None or meta["raw_output"], meta
    errors = [m.get("error") for m in metas]
    for column in outputs:
        for value in out[column].to_list():
            assert value is not None or any(errors), f"{name}: {column} is null with no error recorded"
    for column in ("ratings", "scores"):
        if column in out.columns:
            values = [v for row in out[column].to_list() for v in (row if isinstance(row, list) else [row]) if v is not None]
            assert all(1 <= v <= 10 for v in values), f"{name}: {column} out of range: {values}"
