"""The model call: what a task compiles to, how it prints and how it runs.

A :class:`Call` renders the row's chat, asks the interpreter for ``n`` answers (from
the cache or the bound model), and parses each into the task's columns, checked
against their dtypes. Whatever fails keeps the row: outputs null, the raw text and
the error in ``meta.<label>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import polars as pl

from distilfn.chat import check_chat, format_chat
from distilfn.compile import Scope
from distilfn.dtypes import checker, instance
from distilfn.meta import MODEL_META, model_record
from distilfn.tree import Context, Node, Unit

if TYPE_CHECKING:
    from distilfn.task import Task

__all__ = ["Call", "compile_task", "call_for", "model_calls", "placeholder", "skip_reason"]


class Call(Node, frozen=True, kw_only=True, tag="call"):
    """A model step: render, ask, parse."""

    label: str
    task: Any
    reads: tuple[tuple[str, str, str], ...]
    """(task-side name, slot, frame column) of every input the chat needs."""
    writes: tuple[str, ...]
    """The slot of each task output, in the task's output order."""
    meta_slot: str
    dtypes: tuple[Any, ...]
    shown_inputs: str
    checks: tuple[Any, ...] = ()
    """Per output, the function that vets a value for its dtype (see :func:`distilfn.dtypes.checker`)."""
    schema: Any = None
    """The structured-output type, resolved once (the compile-time one when it depends on the row)."""
    row_schema: bool = False
    """Whether the schema depends on the row (see :meth:`schema_for`)."""
    where: str = ""
    required: frozenset[str] = frozenset()

    def outline(self, number: int, pad: str) -> list[str]:
        return [f"{pad}{number}. {self.line()}"]

    def line(self) -> str:
        """The node's outline text without its number."""
        t: Task = self.task
        return f"{t.name}  [{t.role}]  {self.shown_inputs} -> {', '.join(t.output_columns)}"

    def fingerprint(self) -> str:
        t: Task = self.task
        schema = t.schema_type
        try:
            example = t.preview()
        except Exception as exc:  # a template that needs real values
            example = f"(no example: {type(exc).__name__})"
        params = sorted((k, repr(v)) for k, v in t.params.items())
        defaults = sorted((k, repr(v)) for k, v in t.defaults.items())
        return (
            f"call {self.label} role={t.role} {self.line()} types={list(map(str, self.dtypes))} "
            f"params={params} defaults={defaults} schema={getattr(schema, '__name__', schema)} chat={example!r}"
        )

    async def run(self, ctx: Context, unit: Unit) -> list[Unit]:
        ((update, failed),) = await self.sample(ctx, unit, 1)
        unit.values.update(update)
        unit.failed = unit.failed or failed
        return [unit]

    async def sample(self, ctx: Context, unit: Unit, n: int) -> list[tuple[dict[str, Any], bool]]:
        """``n`` answers for ``unit``: per sample, the values to write and whether the row failed."""
        t: Task = self.task
        stats = ctx.step_stats(self.label)
        stats.rows += n
        values = unit.values
        view: dict[str, Any] = {}
        for name, slot, column in self.reads:
            value = values.get(slot)
            if value is None and name in self.required:
                stats.skipped += n
                return [self._failed(None, skip_reason(unit, column))] * n
            view[name] = value
        try:
            chat = check_chat(t.render(view), where=self.where)
        except Exception as exc:
            stats.request_failed += n
            return [self._failed(None, f"render failed: {type(exc).__name__}: {exc}")] * n
        if ctx.dry:
            ctx.show(f"--- {self.label} [{t.role}] ---\n{format_chat(chat)}")
            shown = {s: placeholder(c, d) for s, c, d in zip(self.writes, t.output_columns, self.dtypes, strict=True)}
            return [(dict(shown), False) for _ in range(n)]
        answers = await ctx.ask(self, chat, view, unit.path, n)
        out = []
        for answer in answers:
            if answer.error is not None:
                stats.request_failed += 1
                out.append(self._failed(chat, answer.error, answer))
                continue
            text = answer.text or ""
            update, error, note = self._read(text, view)
            if error is None:
                stats.ok += 1
            else:
                stats.parse_failed += 1
            update[self.meta_slot] = model_record(
                chat, text, answer.model_name, answer.input_tokens, answer.output_tokens, error, answer.cached, note
            )
            out.append((update, error is not None))
        return out

    def schema_for(self, view: Mapping[str, Any]) -> Any:
        """The structured-output type for a row (in task-side names)."""
        return self.task.schema_for(view) if self.row_schema else self.schema

    def _read(self, text: str, view: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
        """The slots to write for ``text``, each value checked against its dtype and the row's
        list lengths, the error and the parser's note."""
        t: Task = self.task
        parsed = t.lengths_checked(t.checked(t.read_raw(text, view, self.schema_for(view)), self.checks), view)
        return dict(zip(self.writes, parsed.values.values(), strict=True)), parsed.error, parsed.note

    def _failed(self, chat: Any, error: str, answer: Any = None) -> tuple[dict[str, Any], bool]:
        update: dict[str, Any] = dict.fromkeys(self.writes)
        if answer is None:
            update[self.meta_slot] = model_record(chat, None, None, None, None, error, False)
        else:
            update[self.meta_slot] = model_record(
                chat, answer.text, answer.model_name, answer.input_tokens, answer.output_tokens, error, False
            )
        return update, True


def skip_reason(unit: Unit, column: str) -> str:
    """Why a step did not run for ``unit``: its input ``column`` is null, and why that is."""
    if unit.failed:
        return f"skipped: input column {column!r} is null (an earlier step failed)"
    if unit.void is not None:
        return f"skipped: input column {column!r} is null ({unit.void})"
    return f"skipped: input column {column!r} is null in the input"


def placeholder(column: str, dtype: Any) -> Any:
    """A stand-in value of ``dtype`` for a column a dry run cannot compute.

    >>> placeholder("generation", pl.List(pl.String))
    ['<generation 1>', '<generation 2>']
    """
    dtype = None if dtype is None else instance(dtype)
    if dtype is None or isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return f"<{column}>"
    if isinstance(dtype, pl.List | pl.Array):
        return [placeholder(f"{column} {i}", dtype.inner) for i in (1, 2)]
    if isinstance(dtype, pl.Struct):
        return {f.name: placeholder(f.name, f.dtype) for f in dtype.fields}
    if dtype.is_numeric():
        return 0
    if isinstance(dtype, pl.Boolean):
        return False
    return None


def call_for(t: Task, scope: Scope, *, shown_inputs: str | None = None, label: str | None = None,
             private: bool = False) -> Call:
    """Compile ``t`` into a Call in ``scope``: check its inputs, declare its outputs and metadata.

    With ``private`` (an evolve's rounds), the outputs and metadata go to slots of their
    own that no frame column shows; ``label`` reuses a label made by the caller.
    """
    required = scope.need(t.name, t.input_columns)
    reads = [(name, c.slot, c.name) for name, c in zip(t.inputs, required, strict=True)]
    for name, column in zip(t.optional_inputs, t.optional_input_columns, strict=True):
        if scope.known and column in scope.columns:
            (c,) = scope.need(t.name, [column])
            reads.append((name, c.slot, c.name))
    label = label or scope.label(t.name, role=t.role)
    dtypes = tuple(t.output_dtypes.values())
    extra = {
        "checks": tuple(checker(d) for d in dtypes),
        "schema": t.schema_type,
        "row_schema": t.schema_sees_row,
        "where": f"task {t.name!r}",
        "required": frozenset(t.inputs),
    }
    if private:
        writes = tuple(scope.private_slot(f"{label}.{c}") for c in t.output_columns)
        meta_slot = scope.private_slot(f"{label}.meta")
    else:
        writes = tuple(scope.make(t.name, c, d).slot for c, d in t.output_dtypes.items())
        meta_slot = scope.add_meta(label, MODEL_META).slot
    return Call(
        label=label,
        task=t,
        reads=tuple(reads),
        writes=writes,
        meta_slot=meta_slot,
        dtypes=dtypes,
        shown_inputs=shown_inputs or ", ".join(t.input_columns) or "-",
        **extra,
    )


def compile_task(t: Task, scope: Scope, *, shown_inputs: str | None = None) -> None:
    """A task on its own is one Call node."""
    scope.emit(call_for(t, scope, shown_inputs=shown_inputs))


def model_calls(nodes: Any) -> Iterator[Call]:
    """Every model call of a compiled tree, in order (an evolve's rounds are one call)."""
    for node in nodes:
        if isinstance(node, Call):
            yield node
        inner = getattr(node, "call", None)
        if isinstance(inner, Call):
            yield inner
        yield from model_calls(node.children())
