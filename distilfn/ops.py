"""Plan operators: the steps a plan is made of, and their constructors.

Every constructor returns a one-step :class:`~distilfn.plan.Plan`, so operators chain
with ``>>`` like tasks do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import msgspec

from distilfn._types import Row
from distilfn.task import Task

__all__ = [
    "Fanout",
    "Explode",
    "Group",
    "Evolve",
    "Ensure",
    "Prefer",
    "MapRows",
    "FilterRows",
    "Rename",
    "Select",
    "fanout",
    "explode",
    "group",
    "evolve",
    "ensure",
    "prefer",
    "map_rows",
    "filter_rows",
    "rename",
    "select",
    "plural",
]


class _Step(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the non-task steps: they chain with ``>>`` like tasks."""

    def __rshift__(self, other: Any) -> Any:
        from distilfn.plan import then

        return then(self, other)

    def __rrshift__(self, other: Any) -> Any:
        from distilfn.plan import then

        return then(other, self)


class Fanout(_Step, frozen=True, kw_only=True, tag="fanout"):
    """Run ``body`` ``n`` times per row; each sample becomes its own row."""

    body: tuple[Any, ...]
    n: int


class Explode(_Step, frozen=True, kw_only=True, tag="explode"):
    """One row per element of the list column ``column``, the element in ``into``.

    Like a fanout whose size is the list's length: :func:`group` folds the rows back
    (and drops ``into``).
    """

    column: str
    into: str


class Group(_Step, frozen=True, kw_only=True, tag="group"):
    """Fold the rows of the nearest open fanout back into one row per source row.

    Columns made inside the fanout become lists, renamed by ``names`` or :func:`plural`.
    """

    names: Mapping[str, str] = {}


class Evolve(_Step, frozen=True, kw_only=True, tag="evolve"):
    """Apply ``task`` ``n`` times, each round reading the previous round's output."""

    task: Task
    n: int
    keep: Literal["last", "all"] = "last"
    feed: Mapping[str, str] = {}
    include_original: bool = False
    name: str | None = None


class Ensure(_Step, frozen=True, kw_only=True, tag="ensure"):
    """Run ``provider`` when one of ``columns`` is missing when the plan is resolved,
    else ``otherwise`` (nothing by default)."""

    columns: tuple[str, ...]
    provider: tuple[Any, ...]
    otherwise: tuple[Any, ...] = ()


class Prefer(_Step, frozen=True, kw_only=True, tag="prefer"):
    """Run ``task`` reading each input from the first listed column that exists."""

    task: Task
    alternatives: Mapping[str, tuple[str, ...]]


class MapRows(_Step, frozen=True, kw_only=True, tag="map"):
    """Add or replace columns with a pure row function ``fn(row) -> {column: value}``."""

    fn: Callable[[Row], Mapping[str, Any]]
    outputs: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    name: str = "map"


class FilterRows(_Step, frozen=True, kw_only=True, tag="filter"):
    """Keep the rows for which ``predicate(row)`` is true."""

    predicate: Callable[[Row], bool]
    inputs: tuple[str, ...] = ()
    name: str = "filter"


class Rename(_Step, frozen=True, kw_only=True, tag="rename"):
    """Rename columns: ``mapping`` old -> new."""

    mapping: Mapping[str, str]


class Select(_Step, frozen=True, kw_only=True, tag="select"):
    """Keep only ``columns`` (metadata columns are always kept)."""

    columns: tuple[str, ...]


def plural(column: str) -> str:
    """The default name of a grouped or all-rounds column.

    >>> plural("generation"), plural("evolved_instruction"), plural("ratings")
    ('generations', 'evolved_instructions', 'ratings_list')
    """
    return column + "_list" if column.endswith("s") else column + "s"


def _steps_of(value: Any, *, where: str) -> tuple[Any, ...]:
    from distilfn.plan import Plan, as_steps

    steps = as_steps(value)
    if steps is None:
        msg = f"{where} expects a task or a plan, got {type(value).__name__}"
        raise TypeError(msg)
    return Plan(steps=steps).steps


def _plan(step: Any) -> Any:
    from distilfn.plan import Plan

    return Plan(steps=(step,))


def _check_count(n: Any, *, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        msg = f"{name} must be a whole number >= 1, got {n!r}"
        raise ValueError(msg)
    return n


def fanout(body: Any, n: int) -> Any:
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
    return _plan(Fanout(body=_steps_of(body, where="fanout()"), n=_check_count(n, name="fanout n")))


def explode(column: str, *, into: str) -> Any:
    """Run the next steps once per element of the list column ``column``.

    Each element is put in the column ``into``; :func:`group` folds the results back
    into lists, one row per source row, and drops ``into``.

    >>> print(explode("evolved_instructions", into="evolved_instruction") >> group())
    Plan
      1. explode evolved_instructions -> evolved_instruction
      2. group  (list columns named with a trailing 's')
    """
    if not column or not into or column == into:
        msg = f"explode needs a list column and a different element column, got column={column!r}, into={into!r}"
        raise ValueError(msg)
    return _plan(Explode(column=column, into=into))


def group(names: Mapping[str, str] | None = None, /, **rename: str) -> Any:
    """Fold fanned-out rows back into one row per source row, with list columns.

    ``group(generation="generations")`` names the list columns; by default a column
    gets a trailing "s" (see :func:`plural`).
    """
    return _plan(Group(names={**(names or {}), **rename}))


def evolve(
    task: Task,
    n: int,
    *,
    keep: Literal["last", "all"] = "last",
    feed: Mapping[str, str] | None = None,
    include_original: bool = False,
    name: str | None = None,
) -> Any:
    """Apply ``task`` ``n`` times, each round fed the previous round's output.

    ``feed`` maps an output to the input it feeds (default: the only output feeds the
    only input). ``keep="all"`` stores every round in a list column named by
    :func:`plural` (with the original first when ``include_original``).
    """
    if not isinstance(task, Task):
        msg = f"evolve() expects a task, got {type(task).__name__}"
        raise TypeError(msg)
    if keep not in ("last", "all"):
        msg = f"evolve keep must be 'last' or 'all', got {keep!r}"
        raise ValueError(msg)
    if feed is None:
        if len(task.outputs) != 1 or len(task.inputs) != 1:
            msg = (
                f"evolve({task.name!r}): say which output feeds which input with feed={{output: input}}; "
                f"the task has inputs {list(task.inputs)} and outputs {list(task.outputs)}"
            )
            raise ValueError(msg)
        feed = {task.outputs[0]: task.inputs[0]}
    for out_name, in_name in feed.items():
        if out_name not in task.outputs or in_name not in task.inputs:
            msg = f"evolve({task.name!r}): feed {out_name!r} -> {in_name!r} must map an output to an input"
            raise ValueError(msg)
    step = Evolve(
        task=task,
        n=_check_count(n, name="evolve n"),
        keep=keep,
        feed=dict(feed),
        include_original=include_original,
        name=name,
    )
    return _plan(step)


def ensure(columns: str | Iterable[str], provider: Any, *, otherwise: Any = None) -> Any:
    """Run ``provider`` only if one of ``columns`` is missing when the plan is resolved;
    run ``otherwise`` (a task or plan, optional) when they are all there.

    ``ensure("generations", fanout(text_generation(), 4) >> group())`` makes a judge
    complete on frames that have no answers yet, and free on frames that do.
    """
    cols = (columns,) if isinstance(columns, str) else tuple(columns)
    alternative = _steps_of(otherwise, where="ensure(otherwise=)") if otherwise is not None else ()
    return _plan(Ensure(columns=cols, provider=_steps_of(provider, where="ensure()"), otherwise=alternative))


def prefer(task: Task, **alternatives: str | Iterable[str]) -> Any:
    """Run ``task`` reading each named input from the first of its columns that exists.

    ``prefer(judge, instruction=("evolved_instruction", "instruction"))``.
    """
    unknown = set(alternatives) - set(task.inputs) - set(task.optional_inputs)
    if unknown:
        msg = f"prefer({task.name!r}): the task has no input named {sorted(unknown)[0]!r}"
        raise ValueError(msg)
    alts = {k: ((v,) if isinstance(v, str) else tuple(v)) for k, v in alternatives.items()}
    return _plan(Prefer(task=task, alternatives=alts))


def map_rows(
    fn: Callable[[Row], Mapping[str, Any]],
    *,
    outputs: Iterable[str],
    inputs: Iterable[str] = (),
    name: str | None = None,
) -> Any:
    """A pure row function that adds or replaces ``outputs``.

    >>> print(map_rows(lambda r: {"n": len(r["q"])}, outputs=["n"], inputs=["q"], name="length"))
    Plan
      1. length  [map]  q -> n
    """
    return _plan(MapRows(fn=fn, outputs=tuple(outputs), inputs=tuple(inputs), name=name or _fn_name(fn, "map")))


def filter_rows(predicate: Callable[[Row], bool], *, inputs: Iterable[str] = (), name: str | None = None) -> Any:
    """Keep the rows for which ``predicate(row)`` is true (an error keeps the row)."""
    return _plan(FilterRows(predicate=predicate, inputs=tuple(inputs), name=name or _fn_name(predicate, "filter")))


def rename(mapping: Mapping[str, str] | None = None, /, **columns: str) -> Any:
    """Rename columns, old name -> new name."""
    return _plan(Rename(mapping={**(mapping or {}), **columns}))


def select(*columns: str) -> Any:
    """Keep only ``columns`` (and the metadata columns)."""
    return _plan(Select(columns=tuple(columns)))


def _fn_name(fn: Any, default: str) -> str:
    name = getattr(fn, "__name__", default)
    return default if name == "<lambda>" else name
