"""Choices made when a plan is compiled: ``ensure`` (run a provider when columns are
missing) and ``prefer`` (read an input from the first column that exists).

Against a real schema they resolve to the steps they choose. Compiled for display,
``ensure`` keeps both branches (a :class:`Branch` node) and ``prefer`` shows its
alternatives, so ``str(plan)`` says what could happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from distilfn.compile import Scope, compile_steps
from distilfn.errors import ColumnNotFoundError
from distilfn.plan import Plan, Step
from distilfn.steps.call import compile_task
from distilfn.steps.fan import _steps_of
from distilfn.task import Task
from distilfn.tree import Node, outline_nodes

__all__ = ["Ensure", "Prefer", "Branch", "ensure", "prefer"]


class Branch(Node, frozen=True, kw_only=True, tag="branch"):
    """Both sides of an ``ensure``, in a tree compiled for display only."""

    columns: tuple[str, ...]
    then: tuple[Node, ...]
    otherwise: tuple[Node, ...]

    def outline(self, number: int, pad: str) -> list[str]:
        indent = len(pad) // 2 + 2
        lines = [f"{pad}{number}. if {', '.join(self.columns)} missing:", *outline_nodes(self.then, indent)]
        if self.otherwise:
            lines += [f"{pad}   otherwise:", *outline_nodes(self.otherwise, indent)]
        return lines

    def children(self) -> tuple[Node, ...]:
        return (*self.then, *self.otherwise)


class Ensure(Step, frozen=True, kw_only=True, tag="ensure"):
    """Run ``provider`` when one of ``columns`` is missing when the plan is compiled,
    else ``otherwise`` (nothing by default)."""

    columns: tuple[str, ...]
    provider: tuple[Step, ...]
    otherwise: tuple[Step, ...] = ()

    def compile_into(self, scope: Scope) -> None:
        scope.index -= 1
        if scope.known:
            missing = any(not scope.has(c) for c in self.columns)
            compile_steps(self.provider if missing else self.otherwise, scope)
            return
        scope.index += 1
        then, otherwise = scope.branches(self.provider, self.otherwise)
        scope.emit(Branch(columns=self.columns, then=then, otherwise=otherwise))

    def expr(self) -> str:
        otherwise = f", otherwise={' >> '.join(s.expr() for s in self.otherwise)}" if self.otherwise else ""
        return f"ensure({list(self.columns)!r}, {' >> '.join(s.expr() for s in self.provider)}{otherwise})"


class Prefer(Step, frozen=True, kw_only=True, tag="prefer"):
    """Run ``task`` reading each input from the first listed column that exists."""

    task: Task
    alternatives: Mapping[str, tuple[str, ...]]

    def compile_into(self, scope: Scope) -> None:
        t = self.task
        if not scope.known:
            shown = ", ".join("|".join(self.alternatives.get(n, (t.input_map.get(n, n),))) for n in t.inputs)
            first = {name: options[0] for name, options in self.alternatives.items()}
            compile_task(t.map_inputs(**first), scope, shown_inputs=shown)
            return
        chosen = {}
        for name, options in self.alternatives.items():
            found = next((c for c in options if c in scope.columns), None)
            if found is None:
                raise ColumnNotFoundError(scope.missing_message(t.name, " or ".join(options)))
            chosen[name] = found
        compile_task(t.map_inputs(**chosen), scope)

    def expr(self) -> str:
        alts = ", ".join(f"{k}={v!r}" for k, v in self.alternatives.items())
        return f"prefer({self.task.name}, {alts})"


def ensure(columns: str | Iterable[str], provider: Any, *, otherwise: Any = None) -> Plan:
    """Run ``provider`` only if one of ``columns`` is missing when the plan is compiled;
    run ``otherwise`` (a task or plan, optional) when they are all there.

    ``ensure("generations", fanout(text_generation(), 4) >> group())`` makes a judge
    complete on frames that have no answers yet, and free on frames that do.
    """
    cols = (columns,) if isinstance(columns, str) else tuple(columns)
    alternative = _steps_of(otherwise, where="ensure(otherwise=)") if otherwise is not None else ()
    return Plan(steps=(Ensure(columns=cols, provider=_steps_of(provider, where="ensure()"), otherwise=alternative),))


def prefer(task: Task, **alternatives: str | Iterable[str]) -> Plan:
    """Run ``task`` reading each named input from the first of its columns that exists.

    ``prefer(judge, instruction=("evolved_instruction", "instruction"))``.
    """
    unknown = set(alternatives) - set(task.inputs) - set(task.optional_inputs)
    if unknown:
        msg = f"prefer({task.name!r}): the task has no input named {sorted(unknown)[0]!r}"
        raise ValueError(msg)
    alts = {k: ((v,) if isinstance(v, str) else tuple(v)) for k, v in alternatives.items()}
    return Plan(steps=(Prefer(task=task, alternatives=alts),))
