"""Fans: ``fanout`` (n samples per row), ``explode`` (one row per list element) and ``group``.

Both open a fan: the steps after them run once per sample, until ``group()`` folds the
samples back into one row with list columns. A fan never grouped keeps its rows apart,
so every later step runs inside it. An explode of a null or empty list keeps its row
once: with ``group()`` the lists come out empty; without it the element is null, and
the steps after it record why they were skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import polars as pl

from distilfn.compile import Scope, compile_steps
from distilfn.errors import PlanError
from distilfn.plan import Plan, Step, as_plan
from distilfn.steps.call import Call
from distilfn.tree import Context, Node, Unit, outline_nodes, run_nodes

__all__ = ["Fanout", "Explode", "Group", "Fan", "fanout", "explode", "group"]


class Fan(Node, frozen=True, kw_only=True, tag="fan"):
    """Run ``body`` per sample (``n`` of them, or one per element of the list in ``source``),
    then fold the samples' slots into the parent's list slots (``fold``), or, with no
    fold, return every sample as its own row."""

    n: int
    body: tuple[Node, ...]
    fold: tuple[tuple[str, str], ...] | None
    fold_names: tuple[tuple[str, str], ...] = ()
    source: str | None = None
    element: str | None = None
    column: str | None = None
    shown: str = ""

    @property
    def numbers(self) -> int:
        return 2 if self.fold is not None else 1

    def children(self) -> tuple[Node, ...]:
        return self.body

    def outline(self, number: int, pad: str) -> list[str]:
        lines = [f"{pad}{number}. {self.shown}", *outline_nodes(self.body, len(pad) // 2 + 2)]
        if self.fold is not None:
            names = ", ".join(f"{a} -> {b}" for a, b in self.fold_names) or "(no columns)"
            lines.append(f"{pad}{number + 1}. group  {names}")
        return lines

    def fingerprint(self) -> str:
        body = "; ".join(node.fingerprint() for node in self.body)
        return f"{self.shown} [{body}] fold={self.fold_names if self.fold is not None else None}"

    async def run(self, ctx: Context, unit: Unit) -> list[Unit]:
        rest = self.body
        if self.source is not None:
            items = unit.values.get(self.source)
            if not items:
                if self.fold is not None:
                    for _, parent in self.fold:
                        unit.values[parent] = []
                    return [unit]
                void = f"explode: {self.column!r} is {'null' if items is None else 'empty'}"
                children = [Unit({**unit.values, self.element: None}, (*unit.path, 0), unit.failed, void)]
            else:
                children = [unit.child(i, {self.element: item}) for i, item in enumerate(items)]
            if ctx.dry:
                ctx.show(f"--- {self.shown}: the next steps run once per element (shown: the first) ---")
        elif rest and isinstance(rest[0], Call):
            if ctx.dry:
                ctx.show(f"--- {self.shown}: the next step runs {self.n} times per row (shown: the first) ---")
            samples = await rest[0].sample(ctx, unit, self.n)
            children = []
            for i, (update, failed) in enumerate(samples):
                child = unit.child(i, update)
                child.failed = child.failed or failed
                children.append(child)
            rest = rest[1:]
        else:
            children = [unit.child(i) for i in range(self.n)]
        if rest and ctx.dry:  # one sample shown; the others run muted, so later steps see every sample
            results = []
            for i, child in enumerate(children):
                with ctx.muted(i > 0):
                    results += await run_nodes(rest, ctx, child)
        elif rest:
            if len(children) == 1:
                results = await run_nodes(rest, ctx, children[0])
            else:
                runs = await asyncio.gather(*(run_nodes(rest, ctx, child) for child in children))
                results = [u for units in runs for u in units]
        else:
            results = children
        if self.fold is None:
            return results
        for slot, parent in self.fold:
            unit.values[parent] = [child.values.get(slot) for child in results]
        unit.failed = unit.failed or any(child.failed for child in results)
        return [unit]


def _fan(scope: Scope, n: int, *, shown: str, source: str | None = None, column: str | None = None) -> None:
    def make(body: tuple[Node, ...], fold: tuple[tuple[str, str], ...] | None, names: tuple[tuple[str, str], ...],
             element: str | None) -> Fan:
        return Fan(n=n, body=body, fold=fold, fold_names=names, source=source, element=element, column=column, shown=shown)

    scope.open_fan(make)


class Fanout(Step, frozen=True, kw_only=True, tag="fanout"):
    """Run ``body`` ``n`` times per row; each sample becomes its own row until :func:`group`."""

    body: tuple[Step, ...]
    n: int

    def compile_into(self, scope: Scope) -> None:
        _fan(scope, self.n, shown=f"fanout x{self.n}")
        scope.index -= 1
        compile_steps(self.body, scope)

    def expr(self) -> str:
        return f"fanout({' >> '.join(s.expr() for s in self.body)}, {self.n})"


class Explode(Step, frozen=True, kw_only=True, tag="explode"):
    """One row per element of the list column ``column``, the element in ``into``."""

    column: str
    into: str

    def compile_into(self, scope: Scope) -> None:
        (listed,) = scope.need("explode", [self.column])
        dtype = listed.dtype
        if dtype is not None and not isinstance(dtype, pl.List | pl.Array):
            msg = f"step {scope.index} explode({self.column!r}) needs a list column; {self.column!r} is {dtype}"
            raise PlanError(msg)
        _fan(scope, 0, shown=f"explode {self.column} -> {self.into}", source=listed.slot, column=self.column)
        element = scope.make("explode", self.into, None if dtype is None else dtype.inner)
        scope.set_element(element)

    def expr(self) -> str:
        return f"explode({self.column!r}, into={self.into!r})"


class Group(Step, frozen=True, kw_only=True, tag="group"):
    """Fold the rows of the nearest open fan back into one row per source row.

    Columns made inside the fan become lists, renamed by ``names`` or
    :func:`~distilfn.compile.plural`; metadata columns become lists of their records.
    """

    names: Mapping[str, str] = {}

    def compile_into(self, scope: Scope) -> None:
        scope.close_fan(self.names)

    def expr(self) -> str:
        return "group(" + ", ".join(f"{k}={v!r}" for k, v in self.names.items()) + ")"


def _steps_of(value: Any, *, where: str) -> tuple[Step, ...]:
    plan = as_plan(value)
    if plan is None:
        msg = f"{where} expects a task or a plan, got {type(value).__name__}"
        raise TypeError(msg)
    return plan.steps


def _check_count(n: Any, *, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        msg = f"{name} must be a whole number >= 1, got {n!r}"
        raise ValueError(msg)
    return n


def fanout(body: Any, n: int) -> Plan:
    """``n`` samples of ``body`` (a task or plan) per row: ``n`` rows out per row in.

    When ``body`` starts with a task and the model accepts ``n``, one request asks for
    all samples; otherwise ``n`` requests are sent.

    >>> from distilfn import task
    >>> t = task(name="gen", inputs=["q"], outputs=["a"], render=lambda r: [], parse=dict)
    >>> print(fanout(t, 4))
    Plan
      1. fanout x4
          1. gen  [generator]  q -> a
    """
    return Plan(steps=(Fanout(body=_steps_of(body, where="fanout()"), n=_check_count(n, name="fanout n")),))


def explode(column: str, *, into: str) -> Plan:
    """Run the next steps once per element of the list column ``column``.

    Each element is put in the column ``into``; :func:`group` folds the results back
    into lists, one row per source row, and drops ``into``.

    >>> print(explode("evolved_instructions", into="evolved_instruction") >> group())
    Plan
      1. explode evolved_instructions -> evolved_instruction
      2. group  (no columns)
    """
    if not column or not into or column == into:
        msg = f"explode needs a list column and a different element column, got column={column!r}, into={into!r}"
        raise ValueError(msg)
    return Plan(steps=(Explode(column=column, into=into),))


def group(names: Mapping[str, str] | None = None, /, **rename: str) -> Plan:
    """Fold fanned-out rows back into one row per source row, with list columns.

    ``group(generation="generations")`` names the list columns; by default a column
    gets a trailing "s" (see :func:`~distilfn.compile.plural`).
    """
    return Plan(steps=(Group(names={**(names or {}), **rename}),))
