"""Reshaping: ``rename`` and ``select`` change which columns are visible and how they are named.

They cost nothing at run time: values live in slots that a rename never moves, and a
select only narrows the output schema. Their node exists for the outline.
"""

from __future__ import annotations

from collections.abc import Mapping

from distilfn.compile import Scope
from distilfn.plan import Plan, Step
from distilfn.tree import Node

__all__ = ["Rename", "Select", "Reshape", "rename", "select"]


class Reshape(Node, frozen=True, kw_only=True, tag="reshape"):
    """A rename or select, shown in outlines; nothing to run."""

    shown: str

    def outline(self, number: int, pad: str) -> list[str]:
        return [f"{pad}{number}. {self.shown}"]


class Rename(Step, frozen=True, kw_only=True, tag="rename"):
    """Rename columns: ``mapping`` old -> new."""

    mapping: Mapping[str, str]

    def compile_into(self, scope: Scope) -> None:
        scope.rename(self.mapping)
        scope.emit(Reshape(shown="rename  " + ", ".join(f"{k} -> {v}" for k, v in self.mapping.items())))

    def expr(self) -> str:
        return f"rename({dict(self.mapping)!r})"


class Select(Step, frozen=True, kw_only=True, tag="select"):
    """Keep only ``columns`` (metadata columns are always kept)."""

    columns: tuple[str, ...]

    def compile_into(self, scope: Scope) -> None:
        scope.keep(self.columns)
        scope.emit(Reshape(shown="select  " + ", ".join(self.columns)))

    def expr(self) -> str:
        return f"select({', '.join(map(repr, self.columns))})"


def rename(mapping: Mapping[str, str] | None = None, /, **columns: str) -> Plan:
    """Rename columns, old name -> new name.

    >>> print(rename(q="question"))
    Plan
      1. rename  q -> question
    """
    return Plan(steps=(Rename(mapping={**(mapping or {}), **columns}),))


def select(*columns: str) -> Plan:
    """Keep only ``columns`` (and the metadata columns)."""
    return Plan(steps=(Select(columns=tuple(columns)),))
