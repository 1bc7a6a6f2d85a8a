"""Evolve: apply a task ``n`` times, each round fed the previous round's output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import polars as pl

from distilfn.compile import Scope, plural
from distilfn.meta import MODEL_META
from distilfn.plan import Plan, Step
from distilfn.steps.call import Call, call_for
from distilfn.steps.fan import _check_count
from distilfn.task import Task
from distilfn.tree import Context, Node, Unit

__all__ = ["Evolve", "EvolveNode", "evolve"]


class EvolveNode(Node, frozen=True, kw_only=True, tag="evolve"):
    """``n`` rounds of ``call``; ``feed`` moves output ``i`` into input slot ``s`` between rounds."""

    call: Call
    n: int
    keep: Literal["last", "all"]
    feed: tuple[tuple[int, str], ...]
    writes: tuple[str, ...]
    originals: tuple[str | None, ...]
    """Per output: the input slot whose original value heads its list (``include_original``)."""
    meta_slot: str

    def outline(self, number: int, pad: str) -> list[str]:
        kept = "every round" if self.keep == "all" else "last round"
        return [f"{pad}{number}. evolve x{self.n} ({kept})  {self.call.line()}"]

    def fingerprint(self) -> str:
        return f"evolve x{self.n} keep={self.keep} feed={self.feed} originals={self.originals} {self.call.fingerprint()}"

    async def run(self, ctx: Context, unit: Unit) -> list[Unit]:
        call = self.call
        local = {slot: unit.values.get(slot) for _, slot, _ in call.reads}
        rounds: list[list[object]] = []
        metas = []
        failed = False
        for index in range(self.n):
            if ctx.dry and self.n > 1 and index == 0:
                ctx.show(f"--- {call.label}: evolve x{self.n}, round 1 shown ---")
            with ctx.muted(ctx.dry and index > 0):
                ((update, round_failed),) = await call.sample(ctx, Unit(local, (*unit.path, index), unit.failed, unit.void), 1)
            if not ctx.dry:
                metas.append(update[call.meta_slot])
            if round_failed:
                failed = True
                break
            outputs = [update[slot] for slot in call.writes]
            rounds.append(outputs)
            for output, slot in self.feed:
                local[slot] = outputs[output]
        values = unit.values
        if self.keep == "last":
            for i, slot in enumerate(self.writes):
                values[slot] = rounds[-1][i] if rounds and not failed else None
        else:
            for i, slot in enumerate(self.writes):
                history = [r[i] for r in rounds]
                original = self.originals[i]
                if original is not None:
                    history = [unit.values.get(original), *history]
                values[slot] = history
        values[self.meta_slot] = metas
        unit.failed = unit.failed or failed
        return [unit]


class Evolve(Step, frozen=True, kw_only=True, tag="evolve"):
    """Apply ``task`` ``n`` times, each round reading the previous round's output."""

    task: Task
    n: int
    keep: Literal["last", "all"] = "last"
    feed: Mapping[str, str] = {}
    include_original: bool = False
    name: str | None = None

    def compile_into(self, scope: Scope) -> None:
        t = self.task
        label = scope.label(self.name or t.name, role=t.role)
        call = call_for(t, scope, label=label, private=True)
        slot_of = {name: slot for name, slot, _ in call.reads}
        feed = tuple((t.outputs.index(out), slot_of[inp]) for out, inp in self.feed.items())
        fed = {t.outputs.index(out): slot_of[inp] for out, inp in self.feed.items()}
        writes, originals = [], []
        for i, (column, dtype) in enumerate(t.output_dtypes.items()):
            if self.keep == "last":
                writes.append(scope.make(label, column, dtype).slot)
                originals.append(None)
            else:
                writes.append(scope.make(label, plural(column), pl.List(dtype)).slot)
                originals.append(fed.get(i) if self.include_original else None)
        meta = scope.add_meta(label, pl.List(MODEL_META))
        scope.emit(
            EvolveNode(
                call=call, n=self.n, keep=self.keep, feed=feed, writes=tuple(writes),
                originals=tuple(originals), meta_slot=meta.slot,
            )
        )

    def expr(self) -> str:
        return f"evolve({self.task.name}, {self.n}, keep={self.keep!r})"


def evolve(
    task: Task,
    n: int,
    *,
    keep: Literal["last", "all"] = "last",
    feed: Mapping[str, str] | None = None,
    include_original: bool = False,
    name: str | None = None,
) -> Plan:
    """Apply ``task`` ``n`` times, each round fed the previous round's output.

    ``feed`` maps an output to the input it feeds (default: the only output feeds the
    only input). ``keep="all"`` stores every round in a list column named by
    :func:`~distilfn.compile.plural` (with the original first when ``include_original``).

    >>> from distilfn import task
    >>> t = task(name="rewrite", inputs=["q"], outputs=["q2"], render=lambda r: [], parse=dict)
    >>> print(evolve(t, 3, keep="all"))
    Plan
      1. evolve x3 (every round)  rewrite  [generator]  q -> q2
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
        task=task, n=_check_count(n, name="evolve n"), keep=keep, feed=dict(feed),
        include_original=include_original, name=name,
    )
    return Plan(steps=(step,))
