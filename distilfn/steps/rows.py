"""Row functions: ``map_rows`` adds or replaces columns, ``filter_rows`` drops rows on purpose.

Both are pure functions of a row (its visible columns by name). An exception keeps the
row, with the error in ``meta.<label>``; a filter never drops a row that an earlier
step failed for, so failures are never filtered away.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from distilfn._types import Row
from distilfn.compile import Scope
from distilfn.dtypes import StoreError, checker, dtype_of
from distilfn.meta import ROW_META, row_record
from distilfn.plan import Plan, Step
from distilfn.steps.call import placeholder
from distilfn.tree import Context, Node, Unit

__all__ = ["MapRows", "FilterRows", "MapNode", "FilterNode", "map_rows", "filter_rows"]


def _view(scope: Scope, step: str, inputs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not inputs:
        return scope.visible()
    return tuple((c.name, c.slot) for c in scope.need(step, inputs))


class MapNode(Node, frozen=True, kw_only=True, tag="map"):
    """Apply ``fn`` to the row's view; write each output, checked, into its slot."""

    label: str
    fn: Any
    view: tuple[tuple[str, str], ...]
    writes: tuple[tuple[str, str, Any], ...]
    """(column, slot, dtype) per output."""
    meta_slot: str
    shown: str

    def outline(self, number: int, pad: str) -> list[str]:
        return [f"{pad}{number}. {self.shown}"]

    def fingerprint(self) -> str:
        return f"map {self.label} {self.shown} types={[str(d) for _, _, d in self.writes]} fn={_qualname(self.fn)}"

    async def run(self, ctx: Context, unit: Unit) -> list[Unit]:
        values = unit.values
        row = {name: values.get(slot) for name, slot in self.view}
        error = None
        try:
            result = self.fn(row)
            if not isinstance(result, Mapping):
                msg = f"returned {type(result).__name__}, expected a mapping of {[c for c, _, _ in self.writes]}"
                raise TypeError(msg)
        except Exception as exc:
            result = {}
            if not ctx.dry:
                error = f"{type(exc).__name__}: {exc}"
        for column, slot, dtype in self.writes:
            value = result.get(column)
            if ctx.dry and column not in result:
                value = placeholder(column, dtype)
            if value is not None:
                try:
                    value = checker(dtype)(value)
                except StoreError as exc:
                    error = f"column {column!r} cannot store the value: {exc}"
                    value = None
            values[slot] = value
        values[self.meta_slot] = row_record(error)
        unit.failed = unit.failed or error is not None
        return [unit]


class FilterNode(Node, frozen=True, kw_only=True, tag="filter"):
    """Keep the row when ``predicate`` holds, or when a step failed for it, or when it raises."""

    label: str
    predicate: Any
    view: tuple[tuple[str, str], ...]
    meta_slot: str
    shown: str

    def outline(self, number: int, pad: str) -> list[str]:
        return [f"{pad}{number}. {self.shown}"]

    def fingerprint(self) -> str:
        return f"filter {self.label} {self.shown} fn={_qualname(self.predicate)}"

    async def run(self, ctx: Context, unit: Unit) -> list[Unit]:
        error = None
        if not (unit.failed or ctx.dry):
            values = unit.values
            try:
                if not self.predicate({name: values.get(slot) for name, slot in self.view}):
                    return []
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                unit.failed = True
        unit.values[self.meta_slot] = row_record(error)
        return [unit]


class MapRows(Step, frozen=True, kw_only=True, tag="map"):
    """Add or replace columns with a pure row function ``fn(row) -> {column: value}``."""

    fn: Callable[[Row], Mapping[str, Any]]
    outputs: tuple[str, ...]
    types: Mapping[str, Any] = {}
    inputs: tuple[str, ...] = ()
    name: str = "map"

    def compile_into(self, scope: Scope) -> None:
        view = _view(scope, self.name, self.inputs)
        label = scope.label(self.name)
        writes = []
        for column in self.outputs:
            if column in self.types:
                dtype = dtype_of(self.types[column], where=f"map_rows {self.name!r} output {column!r}")
            elif column in scope.columns:
                dtype = scope.columns[column].dtype  # replacing a column keeps its dtype
            else:
                dtype = dtype_of(str)
            made = scope.make(self.name, column, dtype, overwrite=True)
            writes.append((column, made.slot, dtype))
        meta = scope.add_meta(label, ROW_META)
        shown = f"{self.name}  [map]  {', '.join(self.inputs) or 'row'} -> {', '.join(self.outputs)}"
        scope.emit(MapNode(label=label, fn=self.fn, view=view, writes=tuple(writes), meta_slot=meta.slot, shown=shown))

    def expr(self) -> str:
        return f"map_rows({self.name}, outputs={list(self.outputs)!r})"


class FilterRows(Step, frozen=True, kw_only=True, tag="filter"):
    """Keep the rows for which ``predicate(row)`` is true."""

    predicate: Callable[[Row], bool]
    inputs: tuple[str, ...] = ()
    name: str = "filter"

    def compile_into(self, scope: Scope) -> None:
        view = _view(scope, self.name, self.inputs)
        label = scope.label(self.name)
        meta = scope.add_meta(label, ROW_META)
        shown = f"{self.name}  [filter]  {', '.join(self.inputs) or 'row'}"
        scope.emit(FilterNode(label=label, predicate=self.predicate, view=view, meta_slot=meta.slot, shown=shown))

    def expr(self) -> str:
        return f"filter_rows({self.name})"


def _qualname(fn: Any) -> str:
    """What identifies a row function in a fingerprint: its qualified name, and for a
    ``functools.partial`` the arguments it binds."""
    if isinstance(fn, functools.partial):
        bound = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in sorted(fn.keywords.items())]
        return f"{_qualname(fn.func)}({', '.join(bound)})"
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{module}.{getattr(fn, '__qualname__', None) or type(fn).__qualname__}"


def _fn_name(fn: Any, default: str) -> str:
    name = getattr(fn, "__name__", default)
    return default if name == "<lambda>" else name


def map_rows(
    fn: Callable[[Row], Mapping[str, Any]],
    *,
    outputs: Iterable[str] | Mapping[str, Any],
    inputs: Iterable[str] = (),
    name: str | None = None,
) -> Plan:
    """A pure row function that adds or replaces ``outputs``.

    ``outputs`` names the columns (strings, or a replaced column's own dtype), or maps
    each to its type. ``inputs`` are the columns ``fn`` reads; with none it sees every
    column.

    >>> print(map_rows(lambda r: {"n": len(r["q"])}, outputs={"n": int}, inputs=["q"], name="length"))
    Plan
      1. length  [map]  q -> n
    """
    types = dict(outputs) if isinstance(outputs, Mapping) else {}
    step = MapRows(fn=fn, outputs=tuple(outputs), types=types, inputs=tuple(inputs), name=name or _fn_name(fn, "map"))
    for column in step.outputs:
        if column in types:
            dtype_of(types[column], where=f"map_rows {step.name!r} output {column!r}")
    return Plan(steps=(step,))


def filter_rows(predicate: Callable[[Row], bool], *, inputs: Iterable[str] = (), name: str | None = None) -> Plan:
    """Keep the rows for which ``predicate(row)`` is true.

    A row an earlier step failed for is always kept (with its error), and so is a row
    the predicate raises on (the error goes to ``meta.<name>``).
    """
    return Plan(steps=(FilterRows(predicate=predicate, inputs=tuple(inputs), name=name or _fn_name(predicate, "filter")),))
