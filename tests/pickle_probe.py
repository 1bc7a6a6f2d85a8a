"""What a plan's pieces do on fixed inputs, to compare a plan with its unpickled copy.

Imported by the tests and by the fresh interpreter they start, which unpickles the
plans it is sent (it never builds them) and probes them the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from distilfn.plan import as_plan
from distilfn.steps.rows import FilterRows, MapRows
from distilfn.task import Task

SAMPLE_ROW = {
    "seed_instruction": "Name a fruit.",
    "instruction": "Name a fruit.",
    "evolved_instruction": "Rewrite the given prompt so that it names a fruit.",
    "answer": "Sorry, no.",
    "equal": False,
    "eliminated": True,
}
"""The row every map and filter function is applied to."""


def leaves(value: Any) -> Iterator[Task | MapRows | FilterRows]:
    """The tasks and row functions inside a plan or step, depth first, in order."""
    if isinstance(value, Task | MapRows | FilterRows):
        yield value
    elif isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(type(value)):
            yield from leaves(getattr(value, field.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from leaves(item)


def task_view(t: Task) -> dict[str, Any]:
    """The task's example row in task-side names, or ``<name>`` placeholders."""
    if t.example is not None:
        return dict(t.example)
    return {c: f"<{c}>" for c in (*t.inputs, *t.optional_inputs)}


def probe(value: Any, answers: list[str | None]) -> dict[str, Any]:
    """The outline, and per leaf: a task's chat, what it reads from its answer, its dtypes and
    schema; a map's output or a filter's verdict on :data:`SAMPLE_ROW`."""
    found: list[Any] = []
    for leaf, answer in zip(leaves(value), answers, strict=True):
        if isinstance(leaf, Task):
            view = task_view(leaf)
            parsed = leaf.read(answer, view)
            schema = leaf.schema_type
            found.append(
                {
                    "name": leaf.name,
                    "chat": leaf.chat_of(view),
                    "values": dict(parsed.values),
                    "error": parsed.error,
                    "dtypes": {k: str(v) for k, v in leaf.output_dtypes.items()},
                    "schema": msgspec.json.schema(schema) if schema is not None else None,
                    "params": dict(leaf.params),
                }
            )
        elif isinstance(leaf, MapRows):
            found.append({"name": leaf.name, "map": leaf.fn(dict(SAMPLE_ROW))})
        else:
            found.append({"name": leaf.name, "keep": leaf.predicate(dict(SAMPLE_ROW))})
    return {"outline": str(as_plan(value)), "leaves": found}
