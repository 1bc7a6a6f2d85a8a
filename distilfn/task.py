"""Tasks: frozen specs made of pure functions.

A task renders a row into a chat and parses the model's text into columns. It never
calls a model, reads a file, looks at the clock or draws an unseeded random number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from distilfn._types import Chat, Row
from distilfn.chat import check_chat, format_chat

__all__ = ["Task", "Parsed", "task", "preview"]



class Parsed(msgspec.Struct, frozen=True, kw_only=True):
    """What a parser read: the columns it could read, and why it could not read the rest.

    A parser may return a plain mapping instead; ``Parsed`` is for saying what went wrong
    while keeping what was read (e.g. 3 of 4 ratings).

    >>> Parsed(values={"score": 4}).error is None
    True
    """

    values: Mapping[str, Any]
    error: str | None = None


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """A frozen task spec. Build one with :func:`task`; derive variants with its methods.

    Fields:
        name: the step label in plans and metadata.
        inputs: the columns ``render`` reads (task-side names).
        outputs: the columns ``parse`` writes (task-side names).
        render: ``Row -> Chat``.
        parse: ``str -> Row | Parsed``; should never raise (an exception is recorded as the error).
        role: which bound model answers ("generator", "judge", ...).
        params: generation parameters sent with every request (temperature, max_tokens, ...).
        schema: optional msgspec Struct type; servers that support JSON schema constrain the
            answer to it, and a JSON answer is decoded with it before falling back to ``parse``.
        from_schema: turns a decoded ``schema`` value into a row (default: its fields).
        optional_inputs: columns ``render`` uses when present.
        input_map / output_map: task-side name -> frame column.
        example: a row used by :func:`preview` when none is given.
        description: one line shown in plan outlines.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    render: Callable[[Row], Chat]
    parse: Callable[[str], Row | Parsed]
    role: str = "generator"
    params: Mapping[str, Any] = {}
    schema: Any = None
    from_schema: Callable[[Any], Row] | None = None
    optional_inputs: tuple[str, ...] = ()
    input_map: Mapping[str, str] = {}
    output_map: Mapping[str, str] = {}
    example: Mapping[str, Any] | None = None
    description: str = ""

    # -- columns as the frame sees them -------------------------------------------------
    @property
    def input_columns(self) -> tuple[str, ...]:
        """The frame columns this task reads."""
        return tuple(self.input_map.get(c, c) for c in self.inputs)

    @property
    def optional_input_columns(self) -> tuple[str, ...]:
        """The frame columns this task reads when they exist."""
        return tuple(self.input_map.get(c, c) for c in self.optional_inputs)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The frame columns this task writes."""
        return tuple(self.output_map.get(c, c) for c in self.outputs)

    # -- derived variants ---------------------------------------------------------------
    def map_inputs(self, **columns: str) -> Task:
        """Read task input ``name`` from frame column ``columns[name]``.

        >>> t = task(name="t", inputs=["instruction"], outputs=["x"], render=lambda r: [], parse=dict)
        >>> t.map_inputs(instruction="evolved_instruction").input_columns
        ('evolved_instruction',)
        """
        _check_known(self, columns, (*self.inputs, *self.optional_inputs), "input")
        return msgspec.structs.replace(self, input_map={**self.input_map, **columns})

    def map_outputs(self, **columns: str) -> Task:
        """Write task output ``name`` to frame column ``columns[name]``."""
        _check_known(self, columns, self.outputs, "output")
        return msgspec.structs.replace(self, output_map={**self.output_map, **columns})

    def with_params(self, **params: Any) -> Task:
        """The same task with extra generation parameters (temperature, max_tokens, ...)."""
        return msgspec.structs.replace(self, params={**self.params, **params})

    def with_role(self, role: str) -> Task:
        """The same task answered by the model bound to ``role``."""
        return msgspec.structs.replace(self, role=role)

    def named(self, name: str) -> Task:
        """The same task under another step name."""
        return msgspec.structs.replace(self, name=name)

    # -- pure functions the interpreter calls -------------------------------------------
    def task_row(self, row: Row) -> dict[str, Any]:
        """The row as the task sees it: its inputs under task-side names."""
        view = {name: row[self.input_map.get(name, name)] for name in self.inputs}
        for name in self.optional_inputs:
            column = self.input_map.get(name, name)
            if column in row:
                view[name] = row[column]
        return view

    def chat_for(self, row: Row) -> Chat:
        """Render the chat for a frame row, checked."""
        return check_chat(self.render(self.task_row(row)), where=f"task {self.name!r}")

    def read(self, text: str | None) -> Parsed:
        """Parse model text into frame columns; never raises.

        Missing outputs come back as ``None`` with an error saying which.
        """
        if text is None:
            return Parsed(values=self._frame_values({}), error="no model output")
        parsed = self._read_structured(text) if self.schema is not None else None
        if parsed is None:
            try:
                result = self.parse(text)
            except Exception as exc:  # a user's parser may raise; the row keeps the error
                return Parsed(values=self._frame_values({}), error=f"parse failed: {type(exc).__name__}: {exc}")
            parsed = result if isinstance(result, Parsed) else Parsed(values=dict(result or {}))
        values = self._frame_values(parsed.values)
        error = parsed.error
        if error is None:
            missing = [self.output_map.get(c, c) for c in self.outputs if parsed.values.get(c) is None]
            if missing:
                error = "could not read " + ", ".join(repr(c) for c in missing)
        return Parsed(values=values, error=error)

    def _read_structured(self, text: str) -> Parsed | None:
        try:
            value = msgspec.json.decode(_strip_code_fence(text), type=self.schema)
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError, RecursionError):
            return None
        try:
            row = self.from_schema(value) if self.from_schema else msgspec.structs.asdict(value)
        except Exception:
            return None
        return row if isinstance(row, Parsed) else Parsed(values=dict(row))

    def _frame_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {self.output_map.get(c, c): values.get(c) for c in self.outputs}

    # -- display and composition --------------------------------------------------------
    def preview(self, row: Row | None = None) -> str:
        """The rendered chat as text, for ``row`` or for the task's example/placeholders."""
        return preview(self, row)

    def as_plan(self) -> Any:
        """This task as a one-step :class:`~distilfn.plan.Plan`."""
        from distilfn.plan import Plan

        return Plan(steps=(self,))

    def run(self, data: Any, model: Any = None, **options: Any) -> Any:
        """Run this task alone over a frame; see :meth:`distilfn.plan.Plan.run`."""
        return self.as_plan().run(data, model, **options)

    def run_to(self, data: Any, out: Any, model: Any = None, **options: Any) -> Any:
        """Run this task alone streaming rows to ``out``; see :meth:`distilfn.plan.Plan.run_to`."""
        return self.as_plan().run_to(data, out, model, **options)

    def retry_failed(self, data: Any, model: Any = None, **options: Any) -> Any:
        """Re-run with the cache, re-sending only failures; see :meth:`distilfn.plan.Plan.retry_failed`."""
        return self.as_plan().retry_failed(data, model, **options)

    def explain(self, columns: Any = ()) -> str:
        """The outline of this task as a plan, resolved against ``columns``."""
        return self.as_plan().explain(columns)

    def validate(self, columns: Any, **options: Any) -> Any:
        """Check this task against a frame's columns; see :meth:`distilfn.plan.Plan.validate`."""
        return self.as_plan().validate(columns, **options)

    def __rshift__(self, other: Any) -> Any:
        from distilfn.plan import then

        return then(self, other)

    def __rrshift__(self, other: Any) -> Any:
        from distilfn.plan import then

        return then(other, self)


def _strip_code_fence(text: str) -> str:
    r"""The body of a ```json fenced block, else the text (a plain string check: no regex
    backtracking on pathological answers).

    >>> _strip_code_fence('```json\n{"a": 1}\n```')
    '{"a": 1}'
    """
    stripped = text.strip()
    if len(stripped) >= 6 and stripped.startswith("```") and stripped.endswith("```"):
        head, _, rest = stripped[3:-3].partition("\n")
        return rest.strip() if head.strip().lower() in ("", "json") else stripped[3:-3]
    return text


def _check_known(t: Task, columns: Mapping[str, str], known: Iterable[str], kind: str) -> None:
    unknown = sorted(set(columns) - set(known))
    if unknown:
        msg = f"task {t.name!r} has no {kind} named {unknown[0]!r}; its {kind}s are {sorted(known)}"
        raise ValueError(msg)


def task(
    *,
    name: str,
    inputs: Iterable[str],
    outputs: Iterable[str],
    render: Callable[[Row], Chat],
    parse: Callable[[str], Row | Parsed],
    role: str = "generator",
    params: Mapping[str, Any] | None = None,
    schema: Any = None,
    from_schema: Callable[[Any], Row] | None = None,
    optional_inputs: Iterable[str] = (),
    example: Mapping[str, Any] | None = None,
    description: str = "",
) -> Task:
    """Build a task from a render and a parse function.

    >>> shout = task(
    ...     name="shout",
    ...     inputs=["text"],
    ...     outputs=["loud"],
    ...     render=lambda row: [{"role": "user", "content": "Shout: " + row["text"]}],
    ...     parse=lambda text: {"loud": text.upper()},
    ... )
    >>> shout.chat_for({"text": "hi"})
    [{'role': 'user', 'content': 'Shout: hi'}]
    >>> shout.read("ok").values
    {'loud': 'OK'}
    """
    if not name or not isinstance(name, str):
        msg = f"task name must be a non-empty string, got {name!r}"
        raise ValueError(msg)
    inputs, outputs = tuple(inputs), tuple(outputs)
    if isinstance(inputs, str) or not all(isinstance(c, str) for c in (*inputs, *outputs)):
        msg = f"task {name!r}: inputs and outputs must be lists of column names"
        raise TypeError(msg)
    if not outputs:
        msg = f"task {name!r} declares no outputs"
        raise ValueError(msg)
    for fn_name, fn in (("render", render), ("parse", parse)):
        if not callable(fn):
            msg = f"task {name!r}: `{fn_name}` must be callable, got {type(fn).__name__}"
            raise TypeError(msg)
    return Task(
        name=name,
        inputs=inputs,
        outputs=outputs,
        render=render,
        parse=parse,
        role=role,
        params=dict(params or {}),
        schema=schema,
        from_schema=from_schema,
        optional_inputs=tuple(optional_inputs),
        example=dict(example) if example is not None else None,
        description=description,
    )


def preview(t: Task, row: Row | None = None) -> str:
    """Show the chat ``t`` renders for ``row`` (frame column names), without calling a model.

    With no row, the task's example row is used, else ``<column>`` placeholders.

    >>> t = task(name="t", inputs=["q"], outputs=["a"],
    ...          render=lambda r: [{"role": "user", "content": "Q: " + r["q"]}], parse=dict)
    >>> print(preview(t))
    [user]
    Q: <q>
    """
    if row is None:
        if t.example is not None:
            row = {t.input_map.get(k, k): v for k, v in t.example.items()}
        else:
            row = {c: f"<{c}>" for c in (*t.input_columns, *t.optional_input_columns)}
    return format_chat(t.chat_for(row))
