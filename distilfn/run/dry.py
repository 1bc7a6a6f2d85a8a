"""The dry run: the chats a plan would send for the first rows, with no model at all.

The same tree and the same nodes as a real run, driven with ``dry=True``: a model step
records its chat and fills its outputs with ``<column>`` placeholders, a fan shows one
sample, an evolve its first round.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from distilfn.inputs import as_frame
from distilfn.plan import Plan, as_plan
from distilfn.run.interpreter import Interpreter
from distilfn.run.options import RunOptions
from distilfn.steps.call import model_calls
from distilfn.tree import Unit, run_nodes

__all__ = ["preview_plan"]


def _sample_frame(plan: Plan) -> pl.DataFrame:
    """One row standing in for the input: the first task's example, else placeholders."""
    shown = plan.compile(None)
    row: dict[str, Any] = {column: f"<{column}>" for column in shown.assumed}
    call = next(model_calls(shown.tree), None)
    if call is not None and call.task.example is not None:
        t = call.task
        row.update({t.input_map.get(k, k): v for k, v in t.example.items()})
    return pl.DataFrame([row]) if row else pl.DataFrame(height=1)


def preview_plan(plan: Any, data: Any = None, *, rows: int = 1) -> str:
    """The chat every model step would send for the first ``rows`` rows of ``data``.

    Columns that earlier steps would make are shown as ``<column>`` placeholders; with
    no data, the plan's first task's example row (or placeholders) stands in.
    """
    resolved = as_plan(plan)
    if resolved is None:
        msg = f"preview expects a task or a plan, got {type(plan).__name__}"
        raise TypeError(msg)
    frame = as_frame(data).head(rows) if data is not None else _sample_frame(resolved)
    compiled = resolved.compile(frame.schema)
    dry = Interpreter(compiled, {}, RunOptions(), dry=True)
    blocks: list[str] = []
    for number, values in enumerate(frame.select(compiled.reads).iter_rows(named=True) if compiled.reads else [{}] * frame.height, start=1):
        dry.blocks = [f"=== row {number} ==="]
        _run(run_nodes(compiled.tree, dry, Unit(dict(values))))
        blocks += dry.blocks
    return "\n\n".join(blocks)


def _run(coro: Any) -> Any:
    from distilfn.run.runner import sync

    async def main() -> Any:
        return await coro

    return sync(main)
