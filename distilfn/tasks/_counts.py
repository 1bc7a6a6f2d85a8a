"""How many items a row holds: the count a judge expects when none was given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["count_of"]


def count_of(row: Mapping[str, Any] | None, column: str, explicit: int | None) -> int | None:
    """``explicit`` when given, else the length of the row's list ``column`` (None when unknown).

    >>> count_of({"generations": ["a", "b"]}, "generations", None), count_of({}, "generations", 3)
    (2, 3)
    >>> count_of({}, "generations", None) is None
    True
    """
    if explicit is not None:
        return explicit
    value = (row or {}).get(column)
    if isinstance(value, list | tuple) and value:
        return len(value)
    return None
