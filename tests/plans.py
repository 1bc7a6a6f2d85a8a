"""Hypothesis strategies for the kernel's invariants: random plans over random frames,
with a deterministic model that fails some requests and writes some unreadable answers.

A plan is drawn as a list of step specs and built by :func:`build`; :func:`multiplicity`
says how many output rows each input row must give (before filters), from the specs
alone. Everything here is module-level, so plans pickle (cloudpickle) into subprocesses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import polars as pl
from hypothesis import strategies as st

from distilfn import Parsed, evolve, explode, fanout, filter_rows, group, map_rows, rename, task
from distilfn.plan import Plan, identity

__all__ = ["frames", "plan_specs", "build", "multiplicity", "model", "errors_in", "FAIL_EVERY", "UNREADABLE_EVERY"]

FAIL_EVERY = 3
UNREADABLE_EVERY = 4


def _bucket(text: str, every: int) -> bool:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") % every == 0


def model(chats: list[Any]) -> list[Any]:
    """Answers ``<prompt> ok``; a request fails when its prompt falls in one bucket of a hash."""
    out: list[Any] = []
    for chat in chats:
        text = chat[-1]["content"]
        out.append(RuntimeError(f"injected failure for {text[:20]!r}") if _bucket(text, FAIL_EVERY) else f"{text[-40:]} ok")
    return out


def reply(messages: list[dict[str, Any]], index: int) -> str:
    """The same answers from the fake server (``FakeServer(reply=reply)``): never a failure."""
    return f"{messages[-1]['content'][-40:]} ok {index}"


def _render(row: dict[str, Any], *, name: str, source: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{name}: {row[source]}"}]


def _parse(text: str, *, target: str) -> Any:
    if _bucket("p" + text, UNREADABLE_EVERY):
        return Parsed(values={target: None}, error="unreadable on purpose")
    return {target: text}


def _call(name: str, source: str, target: str) -> Any:
    from functools import partial

    return task(name=name, inputs=[source], outputs=[target], render=partial(_render, name=name, source=source),
                parse=partial(_parse, target=target))


def _length(row: dict[str, Any], *, source: str, target: str) -> dict[str, Any]:
    value = row[source]
    return {target: None if value is None else len(value)}


def _keep(row: dict[str, Any]) -> bool:
    return row["id"] % 3 != 0


# -- frames ---------------------------------------------------------------------------------

_EXTRA = {
    "i8": (pl.Int8, st.integers(-128, 127)),
    "u16": (pl.UInt16, st.integers(0, 65535)),
    "f": (pl.Float64, st.floats(allow_nan=False, allow_infinity=False, width=32)),
    "b": (pl.Boolean, st.booleans()),
    "day": (pl.Date, st.dates(dt.date(1990, 1, 1), dt.date(2090, 1, 1))),
    "at": (pl.Datetime("us"), st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2090, 1, 1))),
    "cat": (pl.Categorical, st.sampled_from(["x", "y", "z"])),
    "tags": (pl.List(pl.String), st.lists(st.sampled_from(["t1", "t2", "é"]), max_size=3)),
    "info": (pl.Struct({"k": pl.Int64, "v": pl.String}), st.fixed_dictionaries({"k": st.integers(-5, 5), "v": st.text(max_size=3)})),
}
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def frames(draw: Any, *, max_rows: int = 6) -> pl.DataFrame:
    """Frames with an ``id``, a text ``q`` (sometimes null), a list ``items`` (sometimes null
    or empty) and a few columns of other dtypes, with nulls."""
    n = draw(st.integers(0, max_rows))
    columns: dict[str, pl.Series] = {
        "id": pl.Series("id", list(range(n)), dtype=pl.Int64),
        "q": pl.Series("q", draw(st.lists(st.one_of(st.none(), _TEXT) if draw(st.booleans()) else _TEXT, min_size=n, max_size=n)), dtype=pl.String),
        "items": pl.Series(
            "items",
            draw(st.lists(st.one_of(st.none(), st.lists(_TEXT, max_size=3)), min_size=n, max_size=n)),
            dtype=pl.List(pl.String),
        ),
    }
    for name in draw(st.lists(st.sampled_from(sorted(_EXTRA)), unique=True, max_size=3)):
        dtype, values = _EXTRA[name]
        columns[name] = pl.Series(name, draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n)), dtype=dtype)
    return pl.DataFrame(list(columns.values()))


# -- plans ----------------------------------------------------------------------------------


def plan_specs(*, max_steps: int = 5) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Lists of step specs (see :func:`build`)."""
    step = st.one_of(
        st.tuples(st.just("call"), st.integers(0, 9)),
        st.tuples(st.just("fanout"), st.integers(1, 3), st.integers(0, 9)),
        st.tuples(st.just("explode")),
        st.tuples(st.just("group")),
        st.tuples(st.just("evolve"), st.integers(1, 3), st.sampled_from(["last", "all"]), st.integers(0, 9)),
        st.tuples(st.just("map"), st.integers(0, 9)),
        st.tuples(st.just("filter")),
        st.tuples(st.just("rename"), st.integers(0, 9)),
    )
    return st.lists(step, max_size=max_steps)


class _State:
    def __init__(self) -> None:
        self.texts = ["q"]  # string columns a step may read
        self.fans: list[tuple[list[str], str | None]] = []  # (texts before the fan, the element column)
        self.exploded = False
        self.k = 0

    def new(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}{self.k}"


def build(specs: list[tuple[Any, ...]]) -> tuple[Plan, list[tuple[Any, ...]]]:
    """The plan for ``specs`` and the specs actually used (impossible ones are skipped)."""
    state = _State()
    plan: Plan = identity
    used: list[tuple[Any, ...]] = []
    for spec in specs:
        kind = spec[0]
        if kind == "call":
            source = state.texts[spec[1] % len(state.texts)]
            target = state.new("c")
            plan = plan >> _call(target, source, target)
            state.texts.append(target)
        elif kind == "fanout":
            source = state.texts[spec[2] % len(state.texts)]
            target = state.new("f")
            state.fans.append((list(state.texts), None))
            plan = plan >> fanout(_call(target, source, target), spec[1])
            state.texts.append(target)
        elif kind == "explode":
            if state.exploded:
                continue
            state.exploded = True
            state.fans.append((list(state.texts), "item"))
            plan = plan >> explode("items", into="item")
            state.texts.append("item")
        elif kind == "group":
            if not state.fans:
                continue
            before, _ = state.fans.pop()
            plan = plan >> group()
            state.texts = before  # what the fan made became lists
        elif kind == "evolve":
            source = state.texts[spec[3] % len(state.texts)]
            target = state.new("e")
            rewrite = _call(target, source, target)
            plan = plan >> evolve(rewrite, spec[1], keep=spec[2], feed={target: source})
            if spec[2] == "last":
                state.texts.append(target)
        elif kind == "map":
            from functools import partial

            source = state.texts[spec[1] % len(state.texts)]
            target = state.new("n")
            plan = plan >> map_rows(partial(_length, source=source, target=target), outputs={target: int}, inputs=[source], name=target)
        elif kind == "filter":
            plan = plan >> filter_rows(_keep, inputs=["id"], name=state.new("keep"))
        elif kind == "rename":
            made = [c for c in state.texts if c not in ("q", "item")]
            if not made:
                continue
            old = made[spec[1] % len(made)]
            new = state.new("r")
            plan = plan >> rename({old: new})
            state.texts = [new if c == old else c for c in state.texts]
            state.fans = [([new if c == old else c for c in before], element) for before, element in state.fans]
        used.append(spec)
    return plan, used


def multiplicity(specs: list[tuple[Any, ...]], row: dict[str, Any]) -> tuple[int, int | None]:
    """Output rows ``row`` gives without filters, and the position of the first filter that
    drops its output rows on purpose (None when none does).

    A filter inside a fan that a later ``group()`` closes only shortens that fan's lists; it
    drops output rows when every fan open at its place stays open to the end.
    """
    factors: list[tuple[int, int]] = []  # (position of the fan, its size)
    filters: list[tuple[int, list[int]]] = []
    for position, spec in enumerate(specs):
        kind = spec[0]
        if kind == "fanout":
            factors.append((position, spec[1]))
        elif kind == "explode":
            factors.append((position, max(len(row["items"] or []), 1)))
        elif kind == "group":
            factors.pop()
        elif kind == "filter" and not _keep(row):
            filters.append((position, [p for p, _ in factors]))
    total = 1
    for _, factor in factors:
        total *= factor
    still_open = {p for p, _ in factors}
    dropping = [position for position, fans in filters if set(fans) <= still_open]
    return total, (dropping[0] if dropping else None)


def errors_in(value: Any) -> list[str]:
    """Every non-null ``error`` inside a metadata value (structs, lists of them, ...)."""
    if isinstance(value, dict):
        found = [value["error"]] if value.get("error") is not None else []
        return found
    if isinstance(value, list):
        return [e for item in value for e in errors_in(item)]
    return []
