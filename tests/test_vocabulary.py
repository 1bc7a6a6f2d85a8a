"""One vocabulary for the catalogue: a snapshot of every public constructor's signature and of
the columns it reads and writes, so that a rename is always deliberate.

After a deliberate change, rewrite the snapshot with
``DISTILFN_UPDATE_VOCABULARY=1 python -m pytest tests/test_vocabulary.py`` and review its diff.
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from pathlib import Path

import polars as pl
import pytest

from distilfn import Plan, Task
from distilfn import tasks as T

SNAPSHOT = Path(__file__).parent / "fixtures" / "vocabulary.json"

S = pl.String()
LIST = pl.List(pl.String())
CHAT = pl.List(pl.Struct({"role": S, "content": S}))
FRAMES = {
    # what a plan is compiled against: the columns its documentation says it reads
    "eliminate_failed_evolutions": {"instruction": S, "evolved_instruction": S, "answer": S},
    "evol_complexity_generator": {"topic": S},
    "evol_complexity": {"instruction": S},
    "evol_instruct_generator": {"topic": S},
    "evol_instruct": {"instruction": S},
    "evol_quality": {"instruction": S, "response": S},
    "ultrafeedback": {"instruction": S},
}


def signature(fn) -> list[str]:
    """Each keyword parameter as ``name: annotation = default``."""
    hints = typing.get_type_hints(fn)
    out = []
    for p in inspect.signature(fn).parameters.values():
        shown = str(hints.get(p.name, "")).replace("typing.", "").replace("collections.abc.", "")
        shown = shown.replace("distilfn.task.", "").replace("<class '", "").replace("'>", "")
        out.append(f"{p.name}: {shown} = {p.default!r}" if p.default is not p.empty else f"{p.name}: {shown}")
    return out


def columns(name: str, built) -> dict[str, list[str]]:
    if isinstance(built, Task):
        return {"inputs": list(built.input_columns), "optional_inputs": list(built.optional_input_columns),
                "outputs": list(built.output_columns)}
    frame = FRAMES[name]
    schema = built.compile(pl.Schema(frame)).schema
    written = [c for c in schema.names() if c not in frame and not c.startswith("meta.")]
    return {"inputs": list(frame), "outputs": written}


def vocabulary() -> dict[str, dict]:
    out = {}
    for name in (*T.TASKS, *T.PLANS):
        fn = getattr(T, name)
        built = fn()
        kind = "task" if isinstance(built, Task) else "plan"
        returns = typing.get_type_hints(fn)["return"]
        out[name] = {"returns": kind, "annotation": returns.__name__, "parameters": signature(fn), **columns(name, built)}
    return out


def test_every_constructor_says_by_name_and_type_whether_it_returns_a_task_or_a_plan():
    for name in T.TASKS:
        built = getattr(T, name)()
        assert isinstance(built, Task), name
        assert typing.get_type_hints(getattr(T, name))["return"] is Task, name
        if name.endswith("_task"):  # the one-call task of a plan of the same paper
            assert name.removesuffix("_task") in T.PLANS, name
    for name in T.PLANS:
        assert isinstance(getattr(T, name)(), Plan), name
        assert typing.get_type_hints(getattr(T, name))["return"] is Plan, name
        assert f"{name}_task" in T.TASKS or not any(t.startswith(name) for t in T.TASKS), name
    assert str(T.evol_instruct(n=3) >> T.ultrafeedback()).startswith("Plan")  # the README's headline
    assert set(T.TASKS) | set(T.PLANS) | {"TASKS", "PLANS", "elimination_reason", "ultrafeedback_principles", "wizardlm_mutations"} == set(T.__all__)


def test_one_name_per_concept_across_the_catalogue():
    params = {p.split(":")[0] for entry in vocabulary().values() for p in entry["parameters"]}
    for retired in ("num_evolutions", "num_responses", "include_original_instruction", "include_original_response", "answer_task", "generator"):
        assert retired not in params, retired
    outputs = {c for entry in vocabulary().values() for c in entry["outputs"]}
    assert "rationale" not in outputs and "responses" not in outputs


def test_the_vocabulary_matches_its_snapshot():
    current = vocabulary()
    if os.environ.get("DISTILFN_UPDATE_VOCABULARY"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, ensure_ascii=False) + "\n")
        pytest.skip("snapshot rewritten")
    expected = json.loads(SNAPSHOT.read_text())
    assert sorted(current) == sorted(expected), "a constructor was added or removed: update the snapshot deliberately"
    for name in expected:
        assert current[name] == expected[name], f"{name} changed: update the snapshot deliberately (see the module docstring)"
