"""Plans: immutable compositions of steps, checked against a frame before any request."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from distilfn.errors import ColumnNotFoundError, PlanError
from distilfn.ops import Ensure, Evolve, Explode, Fanout, FilterRows, Group, MapRows, Prefer, Rename, Select, plural
from distilfn.task import Task

__all__ = ["Plan", "then", "as_steps", "identity", "resolve", "Resolved", "META_PREFIX"]

META_PREFIX = "meta."
"""Per-step metadata lives in struct columns named ``meta.<step label>``."""

_STEP_TYPES = (Task, Fanout, Explode, Group, Evolve, Ensure, Prefer, MapRows, FilterRows, Rename, Select)


class Plan(msgspec.Struct, frozen=True):
    """An immutable sequence of steps. Build with ``>>``; run with :meth:`run`.

    >>> from distilfn import task, fanout, group
    >>> gen = task(name="gen", inputs=["q"], outputs=["a"], render=lambda r: [], parse=dict)
    >>> plan = fanout(gen, 2) >> group()
    >>> (gen >> plan).steps == ((gen >> fanout(gen, 2)) >> group()).steps
    True
    """

    steps: tuple[Any, ...] = ()

    def __rshift__(self, other: Any) -> Plan:
        return then(self, other)

    def __rrshift__(self, other: Any) -> Plan:
        return then(other, self)

    def __bool__(self) -> bool:
        msg = "a plan has no truth value; use `len(plan.steps)` or run it with `plan.run(df)`"
        raise TypeError(msg)

    def __iter__(self) -> Any:
        msg = "a plan is not iterable; iterate `plan.steps`, or use `plan.run(df)` to get rows"
        raise TypeError(msg)

    def __str__(self) -> str:
        return "\n".join(["Plan", *_outline(self.steps, indent=1)])

    def __repr__(self) -> str:
        return " >> ".join(_expr(s) for s in self.steps) or "identity"

    def explain(self, columns: Iterable[str] | Any = ()) -> str:
        """The outline after resolving conditional steps against ``columns`` (or a frame)."""
        resolved = resolve(self, _columns_of(columns))
        lines = ["Plan resolved for columns: " + ", ".join(resolved.input_columns)]
        lines += _outline(resolved.flat, indent=1)
        lines.append("  output columns: " + ", ".join(resolved.columns))
        return "\n".join(lines)

    def validate(self, columns: Iterable[str] | Any, *, roles: Iterable[str] | None = None) -> Resolved:
        """Check the plan against a frame's columns (and bound roles); raise PlanError if it cannot run."""
        resolved = resolve(self, _columns_of(columns))
        if roles is not None:
            resolved.check_roles(set(roles))
        return resolved

    def run(self, data: Any, model: Any = None, **options: Any) -> Any:
        """Run the plan over a Polars DataFrame (or a path) and return a DataFrame.

        ``model`` is a model or a plain function ``chats -> texts`` bound to every role,
        or a ``{role: model}`` mapping; None picks the default model (env or local).
        Options: see :func:`distilfn.run.run_plan`.
        """
        from distilfn.run import run_plan

        return run_plan(self, data, model, **options)

    def run_to(self, data: Any, out: Any, model: Any = None, **options: Any) -> Any:
        """Run the plan streaming finished rows to ``out`` (Parquet or JSONL), resumable.

        See :func:`distilfn.run.arun_plan_to`.
        """
        from distilfn.run import run_plan_to

        return run_plan_to(self, data, out, model, **options)

    def retry_failed(self, data: Any, model: Any = None, **options: Any) -> Any:
        """Re-run with the cache: only failed requests and unreadable answers are re-sent."""
        return self.run(data, model, retry_failed=True, **options)

    async def arun(self, data: Any, model: Any = None, **options: Any) -> Any:
        """:meth:`run` for code already inside an event loop."""
        from distilfn.run import arun_plan

        return await arun_plan(self, data, model, **options)


identity = Plan()
"""The empty plan: ``plan >> identity`` is ``plan``."""


def as_steps(value: Any) -> tuple[Any, ...] | None:
    """The steps of a task, step or plan; None for anything else."""
    if isinstance(value, Plan):
        return value.steps
    if isinstance(value, _STEP_TYPES):
        return (value,)
    return None


def then(left: Any, right: Any) -> Plan:
    """``left >> right`` as one flat plan (associative; the empty plan is neutral)."""
    a, b = as_steps(left), as_steps(right)
    if a is None or b is None:
        return NotImplemented
    return Plan(steps=a + b)


# -- resolution -------------------------------------------------------------------------


class FanStart(msgspec.Struct, frozen=True):
    """Marker in a resolved plan: the steps after it run ``n`` times per row, or once
    per element of ``explode[0]`` with the element in column ``explode[1]``."""

    n: int
    explode: tuple[str, str] | None = None


class Folded(msgspec.Struct, frozen=True):
    """A resolved group: ``fold`` lists (column made inside the fanout, list column name)."""

    fold: tuple[tuple[str, str], ...]


class Labeled(msgspec.Struct, frozen=True):
    """A resolved step with its unique label (names its metadata column)."""

    step: Any
    label: str
    outputs: tuple[str, ...] = ()


class Resolved(msgspec.Struct, frozen=True):
    """A plan checked against a frame: flat steps, their labels, the columns out."""

    input_columns: tuple[str, ...]
    flat: tuple[Any, ...]
    columns: tuple[str, ...]
    meta_columns: tuple[str, ...]

    @property
    def roles(self) -> dict[str, str]:
        """Role of every model step, by label."""
        return {s.label: _task_of(s.step).role for s in self.flat if isinstance(s, Labeled) and _task_of(s.step)}

    def check_roles(self, bound: set[str]) -> None:
        """Raise PlanError if a model step's role has no model bound."""
        for label, role in self.roles.items():
            if role not in bound:
                msg = (
                    f"step {label!r} uses the model role {role!r}, but no model is bound to it; "
                    f"bound roles: {', '.join(sorted(bound)) or 'none'}. "
                    f"Pass model={{{role!r}: ...}} or a single model for every role."
                )
                raise PlanError(msg)


def _task_of(step: Any) -> Task | None:
    if isinstance(step, Task):
        return step
    if isinstance(step, Evolve):
        return step.task
    return None


class _Ctx:
    def __init__(self, columns: Iterable[str]):
        self.columns: list[str] = list(dict.fromkeys(columns))
        self.meta: list[str] = []
        self.labels: set[str] = set()
        self.fans: list[tuple[list[str], list[str], str | None]] = []
        self.index = 0

    def label(self, name: str) -> str:
        label, k = name, 2
        while label in self.labels:
            label, k = f"{name}_{k}", k + 1
        self.labels.add(label)
        self.meta.append(META_PREFIX + label)
        return label

    def need(self, step_name: str, columns: Iterable[str]) -> None:
        for column in columns:
            if column not in self.columns:
                raise ColumnNotFoundError(_missing_message(self.index, step_name, column, self.columns))

    def add(self, step_name: str, columns: Iterable[str], *, overwrite: bool = False) -> None:
        for column in columns:
            if column in self.columns:
                if overwrite:
                    continue
                msg = (
                    f"step {self.index} {step_name!r} would overwrite the existing column {column!r}; "
                    f"write it elsewhere with .map_outputs({column}='...') or rename the input"
                )
                raise PlanError(msg)
            self.columns.append(column)


def _missing_message(index: int, step: str, column: str, available: list[str]) -> str:
    close = difflib.get_close_matches(column, available, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"step {index} {step!r} needs the column {column!r}, which is neither in the frame nor made by "
        f"an earlier step; available: {', '.join(available) or 'none'}.{hint}"
    )


def resolve(plan: Plan, columns: Iterable[str]) -> Resolved:
    """Check ``plan`` against the frame ``columns``; expand conditional steps; label steps."""
    ctx = _Ctx(columns)
    input_columns = tuple(ctx.columns)
    flat: list[Any] = []
    _expand(plan.steps, ctx, flat)  # a fanout never grouped keeps its rows separate
    return Resolved(input_columns=input_columns, flat=tuple(flat), columns=tuple(ctx.columns), meta_columns=tuple(ctx.meta))


def _expand(steps: Iterable[Any], ctx: _Ctx, flat: list[Any]) -> None:
    for step in steps:
        ctx.index += 1
        if isinstance(step, Task):
            ctx.need(step.name, step.input_columns)
            label = ctx.label(step.name)
            ctx.add(step.name, step.output_columns)
            flat.append(Labeled(step=step, label=label, outputs=step.output_columns))
        elif isinstance(step, Prefer):
            chosen = {}
            for name, options in step.alternatives.items():
                found = next((c for c in options if c in ctx.columns), None)
                if found is None:
                    msg = _missing_message(ctx.index, step.task.name, " or ".join(options), ctx.columns)
                    raise ColumnNotFoundError(msg)
                chosen[name] = found
            ctx.index -= 1
            _expand([step.task.map_inputs(**chosen)], ctx, flat)
        elif isinstance(step, Ensure):
            ctx.index -= 1
            missing = any(c not in ctx.columns for c in step.columns)
            _expand(step.provider if missing else step.otherwise, ctx, flat)
        elif isinstance(step, Explode):
            ctx.need("explode", [step.column])
            ctx.fans.append((list(ctx.columns), list(ctx.meta), step.into))
            ctx.add("explode", [step.into])
            flat.append(FanStart(n=0, explode=(step.column, step.into)))
        elif isinstance(step, Fanout):
            ctx.fans.append((list(ctx.columns), list(ctx.meta), None))
            flat.append(FanStart(n=step.n))
            ctx.index -= 1
            _expand(step.body, ctx, flat)
        elif isinstance(step, Group):
            if not ctx.fans:
                msg = f"step {ctx.index} group() has no fanout before it to fold"
                raise PlanError(msg)
            before_cols, before_meta, element = ctx.fans.pop()
            made = [c for c in ctx.columns if c not in before_cols and c != element]
            unknown = set(step.names) - set(made)
            if unknown:
                msg = f"step {ctx.index} group() names {sorted(unknown)[0]!r}, which the fanout did not make; it made {made}"
                raise PlanError(msg)
            fold = [(c, step.names.get(c, plural(c))) for c in made]
            fold += [(m, m) for m in ctx.meta if m not in before_meta]
            ctx.columns = [c for c in ctx.columns if c not in made and c != element]
            ctx.add("group", [new for _, new in fold if not new.startswith(META_PREFIX)])
            flat.append(Folded(fold=tuple(fold)))
        elif isinstance(step, Evolve):
            t = step.task
            ctx.need(t.name, t.input_columns)
            label = ctx.label(step.name or t.name)
            outs = t.output_columns if step.keep == "last" else tuple(plural(c) for c in t.output_columns)
            ctx.add(label, outs)
            flat.append(Labeled(step=step, label=label, outputs=outs))
        elif isinstance(step, MapRows):
            ctx.need(step.name, step.inputs)
            label = ctx.label(step.name)
            ctx.add(step.name, step.outputs, overwrite=True)
            flat.append(Labeled(step=step, label=label, outputs=step.outputs))
        elif isinstance(step, FilterRows):
            ctx.need(step.name, step.inputs)
            flat.append(Labeled(step=step, label=step.name))
        elif isinstance(step, Rename):
            ctx.need("rename", step.mapping)
            ctx.columns = [step.mapping.get(c, c) for c in ctx.columns]
            flat.append(step)
        elif isinstance(step, Select):
            ctx.need("select", step.columns)
            ctx.columns = list(step.columns)
            flat.append(step)
        else:  # pragma: no cover - as_steps admits only the types above
            msg = f"unknown step {step!r}"
            raise PlanError(msg)


def _columns_of(value: Any) -> list[str]:
    columns = getattr(value, "columns", None)
    if columns is not None and not isinstance(value, Mapping):
        return list(columns)
    if isinstance(value, Mapping):
        return list(value)
    return list(value)


# -- display ----------------------------------------------------------------------------


def _task_line(t: Task) -> str:
    inputs = ", ".join(t.input_columns) or "-"
    return f"{t.name}  [{t.role}]  {inputs} -> {', '.join(t.output_columns)}"


def _outline(steps: Iterable[Any], indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    number = 0
    for step in steps:
        if isinstance(step, Labeled):
            step = step.step
        number += 1
        head = f"{pad}{number}. "
        if isinstance(step, Task):
            lines.append(head + _task_line(step))
        elif isinstance(step, Evolve):
            kept = "every round" if step.keep == "all" else "last round"
            lines.append(f"{head}evolve x{step.n} ({kept})  {_task_line(step.task)}")
        elif isinstance(step, Fanout):
            lines.append(f"{head}fanout x{step.n}")
            lines += _outline(step.body, indent + 2)
        elif isinstance(step, FanStart):
            lines.append(f"{head}explode {step.explode[0]} -> {step.explode[1]}" if step.explode else f"{head}fanout x{step.n}")
        elif isinstance(step, Explode):
            lines.append(f"{head}explode {step.column} -> {step.into}")
        elif isinstance(step, Group):
            names = ", ".join(f"{k} -> {v}" for k, v in step.names.items())
            lines.append(f"{head}group" + (f"  {names}" if names else "  (list columns named with a trailing 's')"))
        elif isinstance(step, Folded):
            names = ", ".join(f"{k} -> {v}" for k, v in step.fold if not k.startswith(META_PREFIX))
            lines.append(f"{head}group  {names}")
        elif isinstance(step, Ensure):
            lines.append(f"{head}if {', '.join(step.columns)} missing:")
            lines += _outline(step.provider, indent + 2)
            if step.otherwise:
                lines.append(f"{pad}   otherwise:")
                lines += _outline(step.otherwise, indent + 2)
        elif isinstance(step, Prefer):
            t = step.task
            ins = ", ".join(
                "|".join(step.alternatives.get(n, (t.input_map.get(n, n),))) for n in t.inputs
            )
            lines.append(f"{head}{t.name}  [{t.role}]  {ins} -> {', '.join(t.output_columns)}")
        elif isinstance(step, MapRows):
            lines.append(f"{head}{step.name}  [map]  {', '.join(step.inputs) or 'row'} -> {', '.join(step.outputs)}")
        elif isinstance(step, FilterRows):
            lines.append(f"{head}{step.name}  [filter]  {', '.join(step.inputs) or 'row'}")
        elif isinstance(step, Rename):
            lines.append(f"{head}rename  " + ", ".join(f"{k} -> {v}" for k, v in step.mapping.items()))
        elif isinstance(step, Select):
            lines.append(f"{head}select  " + ", ".join(step.columns))
    return lines


def _expr(step: Any) -> str:
    if isinstance(step, Task):
        return step.name
    if isinstance(step, Evolve):
        return f"evolve({step.task.name}, {step.n}, keep={step.keep!r})"
    if isinstance(step, Fanout):
        return f"fanout({' >> '.join(_expr(s) for s in step.body)}, {step.n})"
    if isinstance(step, Explode):
        return f"explode({step.column!r}, into={step.into!r})"
    if isinstance(step, Group):
        return "group(" + ", ".join(f"{k}={v!r}" for k, v in step.names.items()) + ")"
    if isinstance(step, Ensure):
        otherwise = f", otherwise={' >> '.join(_expr(s) for s in step.otherwise)}" if step.otherwise else ""
        return f"ensure({list(step.columns)!r}, {' >> '.join(_expr(s) for s in step.provider)}{otherwise})"
    if isinstance(step, Prefer):
        alts = ", ".join(f"{k}={v!r}" for k, v in step.alternatives.items())
        return f"prefer({step.task.name}, {alts})"
    if isinstance(step, MapRows):
        return f"map_rows({step.name}, outputs={list(step.outputs)!r})"
    if isinstance(step, FilterRows):
        return f"filter_rows({step.name})"
    if isinstance(step, Rename):
        return f"rename({dict(step.mapping)!r})"
    if isinstance(step, Select):
        return f"select({', '.join(map(repr, step.columns))})"
    return repr(step)
