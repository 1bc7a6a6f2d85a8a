"""A true dry run: the chats a plan would send for the first rows, without any model."""

from __future__ import annotations

from typing import Any

import polars as pl

from distilfn.chat import format_chat
from distilfn.ops import Evolve, FilterRows, MapRows, Rename, Select
from distilfn.plan import FanStart, Folded, Labeled, Plan, as_steps, resolve
from distilfn.task import Task

__all__ = ["preview_plan"]


def _placeholder(column: str, *, as_list: bool = False) -> Any:
    return [f"<{column} 1>", f"<{column} 2>"] if as_list else f"<{column}>"


def preview_plan(plan: Any, data: pl.DataFrame | None = None, *, rows: int = 1) -> str:
    """The chat every model step would send for the first ``rows`` rows of ``data``.

    Columns that earlier steps would make are shown as ``<column>`` placeholders (lists
    of two placeholders for list columns); with no data, the plan's first task's example
    row (or placeholders) stands in for the frame.
    """
    steps = as_steps(plan)
    if steps is None:
        msg = f"preview expects a task or a plan, got {type(plan).__name__}"
        raise TypeError(msg)
    plan = Plan(steps=steps)
    samples = _sample_rows(plan, data, rows)
    resolved = resolve(plan, list(samples[0]) if samples else [])
    blocks = []
    for number, row in enumerate(samples, start=1):
        blocks.append(f"=== row {number} ===")
        blocks += _preview_row(resolved.flat, dict(row))
    return "\n\n".join(blocks)


def _sample_rows(plan: Plan, data: pl.DataFrame | None, rows: int) -> list[dict[str, Any]]:
    if data is not None:
        return list(data.head(rows).iter_rows(named=True)) or [{c: _placeholder(c) for c in data.columns}]
    first = next((s for s in plan.steps if isinstance(s, Task)), None)
    if first is None:
        first = next((s.task for s in plan.steps if isinstance(s, Evolve)), None)
    if first is not None and first.example is not None:
        return [{first.input_map.get(k, k): v for k, v in first.example.items()}]
    if first is not None:
        return [{c: _placeholder(c) for c in first.input_columns}]
    return [{}]


def _preview_row(flat: tuple[Any, ...], row: dict[str, Any]) -> list[str]:
    blocks = []
    for step in flat:
        if isinstance(step, Labeled) and isinstance(step.step, Task | Evolve):
            t = step.step if isinstance(step.step, Task) else step.step.task
            kind = f"evolve x{step.step.n}, round 1" if isinstance(step.step, Evolve) else t.role
            try:
                body = format_chat(t.chat_for(row))
            except Exception as exc:  # a template that needs real values
                body = f"(cannot render with placeholders: {type(exc).__name__}: {exc})"
            blocks.append(f"--- {step.label} [{kind}] ---\n{body}")
            list_outputs = isinstance(step.step, Evolve) and step.step.keep == "all"
            for column in step.outputs:
                row[column] = _placeholder(column.removesuffix("s") if list_outputs else column, as_list=list_outputs)
        elif isinstance(step, Labeled) and isinstance(step.step, MapRows):
            try:
                row.update(step.step.fn(row))
            except Exception:
                row.update({c: _placeholder(c) for c in step.outputs})
        elif isinstance(step, FanStart) and step.explode is not None:
            column, into = step.explode
            items = row.get(column)
            row[into] = items[0] if isinstance(items, list) and items else _placeholder(into)
            blocks.append(f"--- explode {column}: the next steps run once per element (shown: the first) ---")
        elif isinstance(step, FanStart):
            blocks.append(f"--- fanout x{step.n}: the next step runs {step.n} times per row ---")
        elif isinstance(step, Folded):
            for column, name in step.fold:
                if not name.startswith("meta."):
                    row[name] = _placeholder(column, as_list=True)
        elif isinstance(step, Rename):
            row = {step.mapping.get(k, k): v for k, v in row.items()}
        elif isinstance(step, Select):
            row = {k: v for k, v in row.items() if k in step.columns}
        elif isinstance(step, Labeled) and isinstance(step.step, FilterRows):
            continue
    return blocks


