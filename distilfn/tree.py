"""The compiled tree: typed nodes that print, dry-run and run themselves.

Compiling a plan (:mod:`distilfn.compile`) turns its steps into a tuple of nodes: a
model call, a fan (fanout or explode, with its body and an optional fold), an evolve,
a row function (map or filter), a reshape (rename or select, which only the outline
sees). Each node kind lives with its step in :mod:`distilfn.steps` and says there how
it prints (:meth:`Node.outline`), how it runs (:meth:`Node.run`) and what identifies it
(:meth:`Node.fingerprint`). The interpreter, the dry run, ``explain()`` and
``str(plan)`` all walk the same tree.

At run time a source row is a :class:`Unit`: a dict of the values the plan reads or
makes, keyed by *slot* (an internal column name that renames never change), plus its
sample path through fanouts and whether a step failed for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

if TYPE_CHECKING:
    from distilfn.run.answers import Answer
    from distilfn.run.stats import StepStats
    from distilfn.steps.call import Call

__all__ = ["Node", "Unit", "Context", "run_nodes", "outline_nodes"]


class Unit:
    """A row in flight: its values by slot, its sample path, and whether a step failed for it.

    ``void`` says why a row carries no element (an explode of an empty or null list).
    """

    __slots__ = ("values", "path", "failed", "void")

    def __init__(self, values: dict[str, Any], path: tuple[int, ...] = (), failed: bool = False, void: str | None = None):
        self.values = values
        self.path = path
        self.failed = failed
        self.void = void

    def child(self, index: int, updates: dict[str, Any] | None = None) -> Unit:
        """A copy for sample ``index`` of a fanout, with ``updates`` applied."""
        values = dict(self.values)
        if updates:
            values.update(updates)
        return Unit(values, (*self.path, index), self.failed, self.void)


class Context(Protocol):
    """What nodes may ask of the interpreter that runs them."""

    dry: bool
    """A dry run: render chats, call no model, fill outputs with placeholders."""

    def step_stats(self, label: str) -> StepStats: ...

    async def ask(self, call: Call, chat: Any, view: Any, path: tuple[int, ...], n: int) -> list[Answer]: ...

    def show(self, block: str) -> None:
        """Record a block of dry-run output."""

    def muted(self, on: bool) -> AbstractContextManager[None]:
        """While on, :meth:`show` records nothing (the other samples of a dry-run fan)."""


class Node(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of the compiled nodes (a tagged union: each kind has its ``tag``)."""

    @property
    def numbers(self) -> int:
        """How many numbered lines of its sequence the node takes in an outline."""
        return 1

    def outline(self, number: int, pad: str) -> list[str]:
        """The outline lines of this node, numbered ``number`` and indented by ``pad``."""
        raise NotImplementedError

    async def run(self, ctx: Context, unit: Unit) -> list[Unit]:
        """Run ``unit`` through this node: one unit out, none (filtered) or several (fanout)."""
        return [unit]

    def fingerprint(self) -> str:
        """What identifies this node's work (a change means earlier outputs are not comparable)."""
        return "\n".join(self.outline(1, ""))

    def children(self) -> Sequence[Node]:
        """Nested nodes (a fan's body)."""
        return ()


async def run_nodes(nodes: Sequence[Node], ctx: Context, unit: Unit) -> list[Unit]:
    """Run ``unit`` through ``nodes`` in order; an ungrouped fan ends the sequence with its rows."""
    for node in nodes:
        out = await node.run(ctx, unit)
        if len(out) != 1:
            return out
        unit = out[0]
    return [unit]


def outline_nodes(nodes: Sequence[Node], indent: int) -> list[str]:
    """The numbered outline of a sequence of nodes."""
    pad = "  " * indent
    lines: list[str] = []
    number = 1
    for node in nodes:
        lines += node.outline(number, pad)
        number += node.numbers
    return lines
