"""Plans: immutable sequences of steps, composed with ``>>``.

This module knows no step kinds. A step is anything derived from :class:`Step`; it
says itself how it compiles (:mod:`distilfn.compile`), and the compiled tree says how
it prints and runs. A plan is a value: it pickles (cloudpickle for lambdas), prints,
and compiles against a frame's schema before any request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import os

    import polars as pl

    from distilfn.compile import Compiled, Scope
    from distilfn.run.options import RunOptions
    from distilfn.run.result import RunResult

__all__ = ["Step", "Plan", "then", "as_plan", "identity"]


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every step (tasks and operators): chains with ``>>`` into a :class:`Plan`."""

    def compile_into(self, scope: Scope) -> None:
        """Check this step against ``scope`` and add its nodes to the tree being built."""
        raise NotImplementedError

    def expr(self) -> str:
        """The expression that builds this step, as ``repr(plan)`` shows it."""
        return type(self).__name__

    def __rshift__(self, other: Any) -> Plan:
        return then(self, other)

    def __rrshift__(self, other: Any) -> Plan:
        return then(other, self)


class Plan(msgspec.Struct, frozen=True):
    """An immutable sequence of steps. Build with ``>>``; run with :meth:`run`.

    >>> from distilfn import task, fanout, group
    >>> gen = task(name="gen", inputs=["q"], outputs=["a"], render=lambda r: [], parse=dict)
    >>> plan = fanout(gen, 2) >> group()
    >>> (gen >> plan).steps == ((gen >> fanout(gen, 2)) >> group()).steps
    True
    """

    steps: tuple[Step, ...] = ()

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

    def __repr__(self) -> str:
        return " >> ".join(s.expr() for s in self.steps) or "identity"

    def __str__(self) -> str:
        return "\n".join(["Plan", *self.compile(None).outline()])

    # -- compiling -----------------------------------------------------------------------
    def compile(self, schema: Any) -> Compiled:
        """Compile against a frame, a schema, or column names; ``None`` compiles for display only.

        Raises :class:`~distilfn.errors.PlanError` when the plan cannot run on such a frame.
        """
        from distilfn.compile import compile_plan

        return compile_plan(self, schema)

    def explain(self, columns: Any = ()) -> str:
        """The outline after resolving conditional steps against ``columns`` (or a frame)."""
        compiled = self.compile(columns)
        lines = ["Plan resolved for columns: " + (", ".join(compiled.input_schema.names()) or "none")]
        lines += compiled.outline()
        shown = [f"{c.name} ({c.dtype})" for c in compiled.columns] + [c.name for c in compiled.meta]
        lines.append("  output columns: " + ", ".join(shown))
        return "\n".join(lines)

    def validate(self, columns: Any, *, roles: Iterable[str] | None = None) -> Compiled:
        """Check the plan against a frame's columns (and bound roles); raise PlanError if it cannot run."""
        compiled = self.compile(columns)
        if roles is not None:
            compiled.check_roles(set(roles))
        return compiled

    def preview(self, data: Any = None, *, rows: int = 1) -> str:
        """A dry run: the chat every model step would send for the first ``rows`` rows.

        Columns that earlier steps would make show as ``<column>`` placeholders. With no
        data, the first task's example row (or placeholders) stands in for the frame.
        """
        from distilfn.run.dry import preview_plan

        return preview_plan(self, data, rows=rows)

    # -- running -------------------------------------------------------------------------
    def run(self, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
        """Run the plan over a Polars DataFrame (or a file, rows or a column dict).

        ``model`` is a model or a plain function ``chats -> texts`` bound to every role,
        or a ``{role: model}`` mapping; None picks the default model (env or local).
        The options are the fields of :class:`~distilfn.run.options.RunOptions`.
        A ``ray.data.Dataset`` gives a Ray dataset of the same schema instead
        (:func:`distilfn.ray.run`, which also takes ``actors``, ``batch_rows``, ...).
        """
        if type(data).__module__.startswith("ray.data"):
            from distilfn.ray import is_dataset, run

            if is_dataset(data):
                return run(self, data, model, **options)
        from distilfn.run.runner import run_plan

        return run_plan(self, data, model, _options(options))

    def run_to(self, data: Any, out: str | os.PathLike[str], model: Any = None, **options: Any) -> RunResult:
        """Run the plan streaming finished rows to ``out`` (Parquet or JSONL); re-running resumes.

        See :func:`distilfn.run.runner.run_plan_to` and :class:`~distilfn.run.options.RunOptions`.
        """
        from distilfn.run.runner import run_plan_to

        return run_plan_to(self, data, out, model, _options(options))

    def retry_failed(self, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
        """Re-run with the cache: failed requests and answers the parser cannot read are re-sent."""
        return self.run(data, model, **{**options, "retry_failed": True})

    async def arun(self, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
        """:meth:`run` for code already inside an event loop."""
        from distilfn.run.runner import arun_plan

        return await arun_plan(self, data, model, _options(options))

    async def arun_to(self, data: Any, out: str | os.PathLike[str], model: Any = None, **options: Any) -> RunResult:
        """:meth:`run_to` for code already inside an event loop."""
        from distilfn.run.runner import arun_plan_to

        return await arun_plan_to(self, data, out, model, _options(options))


def _options(options: dict[str, Any]) -> RunOptions:
    from distilfn.run.options import RunOptions

    return RunOptions.of(**options)


identity = Plan()
"""The empty plan: ``plan >> identity`` is ``plan``."""


def as_plan(value: Any) -> Plan | None:
    """``value`` as a plan (a plan, or one step), or None for anything else.

    >>> as_plan(3) is None
    True
    """
    if isinstance(value, Plan):
        return value
    if isinstance(value, Step):
        return Plan(steps=(value,))
    return None


def then(left: Any, right: Any) -> Plan:
    """``left >> right`` as one flat plan (associative; the empty plan is neutral)."""
    a, b = as_plan(left), as_plan(right)
    if a is None or b is None:
        return NotImplemented
    return Plan(steps=a.steps + b.steps)
