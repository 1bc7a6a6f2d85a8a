"""Tasks: frozen specs made of pure functions.

A task renders a row into a chat and parses the model's text into columns. It never
calls a model, reads a file, looks at the clock or draws an unseeded random number.
A task is also a step: it chains with ``>>`` and compiles to a model call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgspec

from distilfn._types import Chat, Row
from distilfn.chat import check_chat, format_chat, print_chat
from distilfn.dtypes import StoreError, checker, dtype_of
from distilfn.plan import Plan, Step

if TYPE_CHECKING:
    import polars as pl

    from distilfn.compile import Scope

__all__ = ["Task", "Parsed", "task"]

_UNSET: Any = object()


class Parsed(msgspec.Struct, frozen=True, kw_only=True):
    """What a parser read: the columns it could read, and why it could not read the rest.

    A parser may return a plain mapping instead; ``Parsed`` is for saying what went wrong
    while keeping what was read (e.g. 3 of 4 ratings).

    >>> Parsed(values={"score": 4}).error is None
    True
    """

    values: Mapping[str, Any]
    error: str | None = None
    note: str | None = None
    """What the parser did that the user should know but that does not fail the row
    (recorded in the step's metadata, e.g. extra items dropped)."""


class Task(Step, frozen=True, kw_only=True):
    """A frozen task spec. Build one with :func:`task`; derive variants with its methods.

    Fields:
        name: the step label in plans and metadata.
        inputs: the columns ``render`` reads (task-side names).
        outputs: the columns ``parse`` writes (task-side names).
        render: ``Row -> Chat``.
        parse: ``str -> Row | Parsed``, or ``(str, Row) -> Row | Parsed`` to see the
            row's inputs (e.g. how many generations a judge rated); should never raise
            (an exception is recorded as the row's error).
        output_types: task-side output name -> declared type (``str`` when absent);
            see :func:`distilfn.dtypes.dtype_of`.
        role: which bound model answers ("generator", "judge", ...).
        params: generation parameters sent with every request (temperature, max_tokens, ...).
        defaults: generation parameters the task suggests (a paper's answer length, as
            ``max_tokens``); a run's ``params=`` and the task's own ``params`` override them.
        schema: optional msgspec Struct type, or a function returning one (which keeps the
            task picklable) of no arguments or of the row (task-side names; e.g. a list of
            exactly as many ratings as the row has generations). A row-aware factory must
            accept a row without its inputs (``{}``: the schema shown at compile time).
            Servers that support JSON schema constrain the answer to it, and a JSON answer
            is decoded with it before ``parse``.
        from_schema: turns a decoded ``schema`` value into a row (default: its fields).
        optional_inputs: columns ``render`` uses when present.
        input_map / output_map: task-side name -> frame column.
        example: a row used by :meth:`preview` when none is given.
        description: one line shown in plan outlines.
        list_lengths: list output -> the list input whose length it must have (``{"ratings":
            "generations"}``); a list of another length is null with an error on that row, whatever
            the parser said.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    render: Callable[[Row], Chat]
    parse: Callable[..., Row | Parsed]
    output_types: Mapping[str, Any] = {}
    role: str = "generator"
    params: Mapping[str, Any] = {}
    defaults: Mapping[str, Any] = {}
    schema: Any = None
    from_schema: Callable[[Any], Row] | None = None
    optional_inputs: tuple[str, ...] = ()
    input_map: Mapping[str, str] = {}
    output_map: Mapping[str, str] = {}
    example: Mapping[str, Any] | None = None
    description: str = ""
    parse_sees_row: bool = False
    schema_sees_row: bool = False
    list_lengths: Mapping[str, str] = {}

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

    @property
    def output_dtypes(self) -> dict[str, pl.DataType]:
        """Frame column -> Polars dtype of every output (String when undeclared).

        >>> t = task(name="t", inputs=[], outputs={"score": int, "why": str}, render=lambda r: [], parse=dict)
        >>> t.output_dtypes
        {'score': Int64, 'why': String}
        """
        return dict(zip(self.output_columns, _dtypes(self), strict=True))

    @property
    def schema_type(self) -> Any:
        """The structured-output type (``schema`` itself, or what its factory returns), or None."""
        return self.schema_for({})

    def schema_for(self, row: Row) -> Any:
        """The structured-output type for ``row`` (task-side names), or None."""
        schema = self.schema
        if schema is None or isinstance(schema, type):
            return schema
        return schema(row) if self.schema_sees_row else schema()

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
        return self.chat_of(self.task_row(row))

    def chat_of(self, view: Row) -> Chat:
        """Render the chat for a row already in task-side names, checked."""
        return check_chat(self.render(view), where=f"task {self.name!r}")

    def read(self, text: str | None, row: Row | None = None) -> Parsed:
        """Parse model text into frame columns; never raises.

        ``row`` is the row in task-side names (see :meth:`task_row`), passed to parsers
        that take it. Missing outputs come back as ``None`` with an error saying which;
        a value that its column cannot store is dropped with an error naming the column.
        """
        if text is None:
            return Parsed(values=dict.fromkeys(self.output_columns), error="no model output")
        parsed = self.read_raw(text, row)
        return self.lengths_checked(self.checked(parsed), row)

    def lengths_checked(self, parsed: Parsed, row: Row | None) -> Parsed:
        """``parsed`` (frame names) with an error for each list output whose length is not
        its row input's (see ``list_lengths``). Such a list is null: which value belongs to
        which item cannot be told (the raw answer stays in the metadata).

        >>> t = task(name="t", inputs=["generations"], outputs={"ratings": list[int]},
        ...          render=lambda r: [], parse=lambda s: {"ratings": [4]}, list_lengths={"ratings": "generations"})
        >>> parsed = t.read("4", {"generations": ["a", "b"]})
        >>> parsed.values, parsed.error
        ({'ratings': None}, "column 'ratings' holds 1 values for 2 'generations'")
        """
        if not self.list_lengths or row is None:
            return parsed
        errors = []
        values = dict(parsed.values)
        for name, source in self.list_lengths.items():
            column = self.output_map.get(name, name)
            value, expected = values.get(column), row.get(source)
            if isinstance(value, list) and isinstance(expected, list | tuple) and len(value) != len(expected):
                errors.append(f"column {column!r} holds {len(value)} values for {len(expected)} {source!r}")
                values[column] = None
        if not errors:
            return parsed
        message = "; ".join(errors)
        if parsed.error and message not in parsed.error:
            message = f"{parsed.error}; {message}"
        return Parsed(values=values, error=message, note=parsed.note)

    def read_raw(self, text: str, row: Row | None = None, schema: Any = _UNSET) -> Parsed:
        """What the schema decoder or the parser made of ``text``, in task-side names, unchecked.

        ``schema`` is the resolved :attr:`schema_type`, when the caller already has it.
        """
        if schema is _UNSET:
            schema = self.schema_for(row if row is not None else {})
        parsed = self._read_structured(text, schema) if schema is not None else None
        if parsed is not None:
            return parsed
        try:
            result = self.parse(text, row if row is not None else {}) if self.parse_sees_row else self.parse(text)
        except Exception as exc:  # a user's parser may raise; the row keeps the error
            return Parsed(values={}, error=f"parse failed: {type(exc).__name__}: {exc}")
        if isinstance(result, Parsed):
            return result
        if not isinstance(result, Mapping):
            return Parsed(values={}, error=f"parse failed: the parser returned {type(result).__name__}, expected a dict or Parsed")
        return Parsed(values=result)

    def checked(self, parsed: Parsed, checks: tuple[Any, ...] | None = None) -> Parsed:
        """``parsed`` in frame column names (in output order), each value checked against its
        column's dtype (``checks``: the checkers, when the caller has them already)."""
        values: dict[str, Any] = {}
        error = parsed.error
        missing = None
        found = parsed.values
        output_map = self.output_map
        for name, check in zip(self.outputs, checks if checks is not None else _checks(self), strict=True):
            column = output_map.get(name, name)
            value = found.get(name)
            if value is not None:
                try:
                    value = check(value)
                except StoreError as exc:
                    error = "; ".join(filter(None, [error, self.store_error(name, column, value, exc)]))
                    value = None
            if value is None:
                missing = [*(missing or []), column]
            values[column] = value
        if error is None and missing:
            error = "could not read " + ", ".join(repr(c) for c in missing)
        return Parsed(values=values, error=error, note=parsed.note)

    def store_error(self, name: str, column: str, value: Any, exc: StoreError) -> str:
        """The error for a value of output ``name`` that its column cannot store."""
        return f"column {column!r} cannot store the value: {exc}{_type_hint(self, name, value)}"

    def _read_structured(self, text: str, schema: Any) -> Parsed | None:
        try:
            value = msgspec.json.decode(_strip_code_fence(text), type=schema)
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError, RecursionError, UnicodeError):
            return None
        try:
            row = self.from_schema(value) if self.from_schema else msgspec.structs.asdict(value)
        except Exception:
            return None
        return row if isinstance(row, Parsed) else Parsed(values=dict(row))

    # -- display and composition --------------------------------------------------------
    def preview(self, row: Row | None = None) -> str:
        """The rendered chat as text, for ``row`` (frame column names) or for the task's
        example or ``<column>`` placeholders; no model is called.

        >>> t = task(name="t", inputs=["q"], outputs=["a"],
        ...          render=lambda r: [{"role": "user", "content": "Q: " + r["q"]}], parse=dict)
        >>> print(t.preview())
        [user]
        Q: <q>
        """
        return format_chat(self.chat_for(self._shown_row(row)))

    def _shown_row(self, row: Row | None) -> Row:
        """``row``, else the task's example, else ``<column>`` placeholders (frame names)."""
        if row is not None:
            return row
        if self.example is not None:
            return {self.input_map.get(k, k): v for k, v in self.example.items()}
        return {c: f"<{c}>" for c in (*self.input_columns, *self.optional_input_columns)}

    def print(self, row: Row | None = None, *, file: Any = None) -> None:
        """Show the rendered chat (see :meth:`preview` for ``row``): a rich panel per message
        on a terminal, plain text elsewhere. No model is called.

        >>> t = task(name="t", inputs=["q"], outputs=["a"],
        ...          render=lambda r: [{"role": "user", "content": "Q: " + r["q"]}], parse=dict)
        >>> t.print()
        Prompt: t
        <BLANKLINE>
        [user]
        Q: <q>
        """
        print_chat(self.chat_for(self._shown_row(row)), title=f"Prompt: {self.name}", file=file)

    def compile(self, schema: Any) -> Any:
        """This task as a plan compiled against ``schema``; see :meth:`distilfn.plan.Plan.compile`."""
        return self.as_plan().compile(schema)

    def compile_into(self, scope: Scope) -> None:
        """A task compiles to a model call (see :mod:`distilfn.steps.call`)."""
        from distilfn.steps.call import compile_task

        compile_task(self, scope)

    def expr(self) -> str:
        return self.name

    def as_plan(self) -> Plan:
        """This task as a one-step :class:`~distilfn.plan.Plan`."""
        return Plan(steps=(self,))

    def run(self, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
        """Run this task alone over a frame; see :meth:`distilfn.plan.Plan.run`."""
        return self.as_plan().run(data, model, **options)

    def run_to(self, data: Any, out: Any, model: Any = None, **options: Any) -> Any:
        """Run this task alone streaming rows to ``out``; see :meth:`distilfn.plan.Plan.run_to`."""
        return self.as_plan().run_to(data, out, model, **options)

    def retry_failed(self, data: Any, model: Any = None, **options: Any) -> pl.DataFrame:
        """Re-run with the cache, re-sending failures; see :meth:`distilfn.plan.Plan.retry_failed`."""
        return self.as_plan().retry_failed(data, model, **options)

    def explain(self, columns: Any = ()) -> str:
        """The outline of this task as a plan, resolved against ``columns``."""
        return self.as_plan().explain(columns)

    def validate(self, columns: Any, **options: Any) -> Any:
        """Check this task against a frame's columns; see :meth:`distilfn.plan.Plan.validate`."""
        return self.as_plan().validate(columns, **options)


@lru_cache(maxsize=1024)
def _dtypes_of(names: tuple[str, ...], types: tuple[tuple[str, Any], ...], where: str) -> tuple[Any, ...]:
    declared = dict(types)
    return tuple(dtype_of(declared.get(n, str), where=f"{where} output {n!r}") for n in names)


def _dtypes(t: Task) -> tuple[Any, ...]:
    try:
        key = tuple(t.output_types.items())
        hash(key)
    except TypeError:
        return tuple(dtype_of(t.output_types.get(n, str), where=f"task {t.name!r} output {n!r}") for n in t.outputs)
    return _dtypes_of(t.outputs, key, f"task {t.name!r}")


def _checks(t: Task) -> tuple[Any, ...]:
    return tuple(checker(d) for d in _dtypes(t))


def _type_hint(t: Task, name: str, value: Any) -> str:
    if name in t.output_types:
        return ""
    return f" (undeclared outputs are strings: declare the type, e.g. outputs={{{name!r}: {_guess(value)}}})"


def _guess(value: Any) -> str:
    """A type annotation that would hold ``value``, for error hints.

    >>> _guess([1, 2]), _guess(3.5), _guess({"a": 1})
    ('list[int]', 'float', 'a msgspec Struct')
    """
    if isinstance(value, list | tuple):
        inner = {_guess(v) for v in value if v is not None}
        return f"list[{inner.pop() if len(inner) == 1 else 'str'}]"
    if isinstance(value, dict):
        return "a msgspec Struct"
    return type(value).__name__ if isinstance(value, bool | int | float | str) else "str"


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
    outputs: Iterable[str] | Mapping[str, Any],
    render: Callable[[Row], Chat],
    parse: Callable[..., Row | Parsed],
    role: str = "generator",
    params: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    schema: Any = None,
    from_schema: Callable[[Any], Row] | None = None,
    optional_inputs: Iterable[str] = (),
    example: Mapping[str, Any] | None = None,
    description: str = "",
    list_lengths: Mapping[str, str] | None = None,
) -> Task:
    """Build a task from a render and a parse function.

    ``outputs`` is a list of column names (strings), or a mapping of name -> type
    (``{"score": int, "reasons": list[str]}``). With a ``schema`` and no ``from_schema``,
    undeclared outputs take the types of the schema's fields of the same name.
    ``parse`` takes the text, or the text and the row (task-side input names); so may a
    ``schema`` factory take the row. ``list_lengths`` ties a list output's length to a list
    input's (an error on the row otherwise).

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
    if isinstance(inputs, str) or isinstance(outputs, str):
        msg = f"task {name!r}: inputs and outputs must be lists of column names, got a string"
        raise TypeError(msg)
    types = dict(outputs) if isinstance(outputs, Mapping) else {}
    input_names, output_names = tuple(inputs), tuple(outputs)
    if not all(isinstance(c, str) for c in (*input_names, *output_names)):
        msg = f"task {name!r}: inputs and outputs must be lists of column names"
        raise TypeError(msg)
    if not output_names:
        msg = f"task {name!r} declares no outputs"
        raise ValueError(msg)
    for fn_name, fn in (("render", render), ("parse", parse)):
        if not callable(fn):
            msg = f"task {name!r}: `{fn_name}` must be callable, got {type(fn).__name__}"
            raise TypeError(msg)
    schema_sees_row = schema is not None and not isinstance(schema, type) and _positional(schema) == 1
    if schema is not None and from_schema is None:
        types = {**_schema_types(schema(dict()) if schema_sees_row else schema, output_names), **types}
    optional_inputs = tuple(optional_inputs)
    lengths = dict(list_lengths or {})
    for output, source in lengths.items():
        if output not in output_names or source not in (*input_names, *optional_inputs):
            msg = f"task {name!r}: list_lengths ties list outputs to list inputs; got {output!r} -> {source!r}"
            raise ValueError(msg)
    built = Task(
        name=name,
        inputs=input_names,
        outputs=output_names,
        render=render,
        parse=parse,
        output_types=types,
        role=role,
        params=dict(params or {}),
        defaults=dict(defaults or {}),
        schema=schema,
        from_schema=from_schema,
        optional_inputs=tuple(optional_inputs),
        example=dict(example) if example is not None else None,
        description=description,
        parse_sees_row=_takes_row(parse),
        schema_sees_row=schema_sees_row,
        list_lengths=lengths,
    )
    _dtypes(built)  # an undeclarable type fails here, naming the task and the output
    return built


def _schema_types(schema: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The field types of a msgspec ``schema`` (or its factory's result) named in ``names``."""
    schema = schema if isinstance(schema, type) else schema()
    if not (isinstance(schema, type) and issubclass(schema, msgspec.Struct)):
        return {}
    return {f.name: f.type for f in msgspec.structs.fields(schema) if f.name in names}


def _positional(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` requires (0 when it cannot be told)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def _takes_row(parse: Callable[..., Any]) -> bool:
    """Whether ``parse`` takes a second positional argument (the row)."""
    try:
        parameters = list(inspect.signature(parse).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return False
    required = [p for p in positional if p.default is p.empty]
    return len(required) >= 2
