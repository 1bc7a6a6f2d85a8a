"""Compiling a plan against an input schema: the typed tree and the output schema.

Every step compiles itself into a :class:`Scope` (:meth:`distilfn.plan.Step.compile`):
it checks the columns it reads, declares the columns it makes with their dtypes, and
adds its nodes. The result, :class:`Compiled`, holds the tree, the exact output schema
(decided before the first request), which input columns the interpreter must load,
the roles the plan uses and a fingerprint of the work.

Compiling with no schema (``schema=None``) is for display: every column is assumed to
exist and conditional steps keep both branches, so ``str(plan)`` shows everything.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import polars as pl

from distilfn.errors import ColumnNotFoundError, PlanError
from distilfn.meta import META_PREFIX
from distilfn.tree import Node, outline_nodes

if TYPE_CHECKING:
    from distilfn.plan import Plan, Step

__all__ = ["MODEL_NAME", "Column", "Scope", "Compiled", "compile_plan", "compile_steps", "digest_lines", "plural", "RESERVED_PREFIX", "schema_of"]

MODEL_NAME = "model_name"
"""The top-level column naming the model that answered the plan's last model step (as distilabel has it)."""

RESERVED_PREFIX = "__distilfn"
"""Input columns may not start with this: distilfn's own bookkeeping columns do."""


class Column(msgspec.Struct, frozen=True):
    """A column as the plan sees it at some point: its name, its slot in a row's values,
    its dtype (None when compiled for display) and, for an input column, the input
    column its values are gathered from when the frame is assembled."""

    name: str
    slot: str
    dtype: Any
    source: str | None = None
    pick: str | None = None
    """For a column shown from a model step's metadata (``model_name``): the field it shows."""


class Compiled(msgspec.Struct, frozen=True):
    """A plan compiled against an input schema."""

    tree: tuple[Node, ...]
    input_schema: Any
    reads: tuple[str, ...]
    columns: tuple[Column, ...]
    meta: tuple[Column, ...]
    roles: Mapping[str, str]
    known: bool
    assumed: tuple[str, ...] = ()
    """Compiled for display (no schema): the input columns the plan reads, in the order
    first read; a column that some step makes (in any branch) is not one of them."""

    @property
    def schema(self) -> pl.Schema:
        """The output schema: every output column and its dtype, metadata columns last."""
        return pl.Schema([(c.name, c.dtype) for c in (*self.columns, *self.meta)])

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """The output columns in order, metadata last."""
        return (*self.columns, *self.meta)

    def outline(self) -> list[str]:
        """The numbered outline of the tree."""
        return outline_nodes(self.tree, 1)

    def fingerprint(self) -> str:
        """A hex digest of the work: every node's fingerprint and the output schema."""
        return digest_lines(self.fingerprint_lines())

    def fingerprint_lines(self) -> list[str]:
        """What the fingerprint hashes, one readable line per part (to say what changed)."""
        lines = [f"node {i + 1}: {node.fingerprint()}" for i, node in enumerate(self.tree)]
        lines.append("output schema: " + ", ".join(f"{n}: {d}" for n, d in self.schema.items()))
        return lines

    def check_roles(self, bound: set[str]) -> None:
        """Raise PlanError if a model step's role has no model bound."""
        for label, role in self.roles.items():
            if role not in bound:
                msg = (
                    f"step {label!r} uses the model role {role!r}, but no model is bound to it; "
                    f"bound roles: {', '.join(sorted(bound)) or 'none'}. "
                    f"Pass model={{{role!r}: ...}} or a single model for every role."
                )
                raise PlanError(msg)


def digest_lines(lines: list[str]) -> str:
    """The hex digest of a plan's fingerprint lines (see :meth:`Compiled.fingerprint_lines`)."""
    digest = hashlib.blake2b(digest_size=16)
    for line in lines:
        digest.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def plural(column: str) -> str:
    """The default name of a grouped or all-rounds column.

    >>> plural("generation"), plural("evolved_instruction"), plural("ratings")
    ('generations', 'evolved_instructions', 'ratings_list')
    """
    return column + "_list" if column.endswith("s") else column + "s"


class _Frame:
    """An open sequence of nodes: the plan's top level, or the body of a fan."""

    def __init__(self, nodes: list[Node], fan: Any = None, columns: dict[str, Column] | None = None,
                 meta: dict[str, Column] | None = None):
        self.nodes = nodes
        self.fan = fan  # (body, fold, fold names, element slot) -> the fan's node; None at the top level
        self.columns = columns or {}
        self.meta = meta or {}
        self.element: Column | None = None


class Scope:
    """What compiling has seen so far: visible columns, metadata columns, labels, open fans.

    Steps call :meth:`need` for the columns they read, :meth:`make` for those they
    write, :meth:`label` for their metadata name, and :meth:`emit` for their node.
    """

    def __init__(self, input_schema: pl.Schema | None):
        self.known = input_schema is not None
        self.input_schema = input_schema if input_schema is not None else pl.Schema()
        self.columns: dict[str, Column] = {
            name: Column(name, name, dtype, name) for name, dtype in self.input_schema.items()
        }
        self.meta: dict[str, Column] = {}
        self.labels: set[str] = set()
        self.roles: dict[str, str] = {}
        self.reads: set[str] = set()
        self.index = 0
        self._slots: set[str] = set(self.columns)
        self._assumed: dict[str, None] = {}  # read before made, compiling for display (ordered)
        self._made: set[str] = set()
        self._frames: list[_Frame] = [_Frame([])]
        for name in self.columns:
            if name.startswith(RESERVED_PREFIX):
                msg = f"the input column {name!r} starts with {RESERVED_PREFIX!r}, which distilfn keeps for its own columns; rename it"
                raise PlanError(msg)

    # -- columns -------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether ``name`` is visible here (always true when compiling for display)."""
        return name in self.columns or not self.known

    def need(self, step: str, names: Iterable[str]) -> list[Column]:
        """The columns ``names`` read by ``step``; ColumnNotFoundError when one is missing."""
        out = []
        for name in names:
            column = self.columns.get(name)
            if column is None:
                if self.known:
                    raise ColumnNotFoundError(self.missing_message(step, name))
                column = self.columns[name] = Column(name, name, None, name)
                self._assumed[name] = None
                for frame in self._frames:  # an assumed input column exists outside every fan too
                    frame.columns.setdefault(name, column)
            if column.source is not None and column.slot == column.source:
                self.reads.add(column.slot)
            out.append(column)
        return out

    def missing_message(self, step: str, name: str) -> str:
        """The message for a missing column, with what is available and a close match."""
        available = list(self.columns)
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return (
            f"step {self.index} {step!r} needs the column {name!r}, which is neither in the frame nor made by "
            f"an earlier step; available: {', '.join(available) or 'none'}.{hint}"
        )

    def visible(self) -> tuple[tuple[str, str], ...]:
        """(name, slot) of every visible column and metadata column: what a whole-row function sees."""
        for column in self.columns.values():
            if column.source is not None and column.slot == column.source:
                self.reads.add(column.slot)
        return tuple((c.name, c.slot) for c in (*self.columns.values(), *self.meta.values()))

    def make(self, step: str, name: str, dtype: Any, *, overwrite: bool = False) -> Column:
        """Declare that ``step`` writes the column ``name`` of ``dtype``; returns its new slot."""
        if name in self.columns and not overwrite and (self.known or name not in self._assumed):
            msg = (
                f"step {self.index} {step!r} would overwrite the existing column {name!r}; "
                f"write it elsewhere with .map_outputs({name}='...') or rename the input"
            )
            raise PlanError(msg)
        if name.startswith(META_PREFIX) or name.startswith(RESERVED_PREFIX):
            msg = f"step {self.index} {step!r} cannot write {name!r}: the prefixes {META_PREFIX!r} and {RESERVED_PREFIX!r} are distilfn's"
            raise PlanError(msg)
        column = Column(name, self._slot(name), dtype)
        self.columns.pop(name, None)
        self.columns[name] = column
        self._made.add(name)
        return column

    def rename(self, mapping: Mapping[str, str]) -> None:
        """Rename visible columns, keeping their order and slots."""
        self.need("rename", mapping)
        renamed = {}
        for name, column in self.columns.items():
            new = mapping.get(name, name)
            if new in renamed:
                msg = f"step {self.index} rename: two columns would be named {new!r}"
                raise PlanError(msg)
            renamed[new] = msgspec.structs.replace(column, name=new)
        self.columns = renamed

    def keep(self, names: Iterable[str]) -> None:
        """Keep only the visible columns ``names`` (in that order); metadata stays."""
        names = list(names)
        columns = self.need("select", names)
        self.columns = {c.name: c for c in columns}

    def private_slot(self, name: str) -> str:
        """A slot no frame column shows (working values of a step)."""
        return self._slot(RESERVED_PREFIX + name)

    def _slot(self, name: str) -> str:
        slot, k = name, 2
        while slot in self._slots:
            slot, k = f"{name}#{k}", k + 1
        self._slots.add(slot)
        return slot

    # -- metadata ------------------------------------------------------------------------
    def label(self, name: str, *, role: str | None = None) -> str:
        """A label unique in the plan for a step called ``name`` (``name``, ``name_2``, ...)."""
        label, k = name, 2
        while label in self.labels:
            label, k = f"{name}_{k}", k + 1
        self.labels.add(label)
        if META_PREFIX + label in self.input_schema:
            msg = (
                f"step {self.index} {name!r} writes the metadata column {META_PREFIX + label!r}, which the input "
                f"already has (from an earlier run?); drop or rename that column, or name the step differently with .named(...)"
            )
            raise PlanError(msg)
        if role is not None:
            self.roles[label] = role
        return label

    def add_meta(self, label: str, dtype: Any) -> Column:
        """Declare the metadata column of step ``label``; returns its slot."""
        name = META_PREFIX + label
        column = Column(name, self._slot(name), dtype)
        self.meta[name] = column
        return column

    # -- nodes ---------------------------------------------------------------------------
    def emit(self, node: Node) -> None:
        """Add ``node`` to the sequence being built."""
        self._frames[-1].nodes.append(node)

    def open_fan(self, make: Any) -> None:
        """Start a fan body: the next nodes run per sample.

        When the fan closes, ``make(body, fold, fold_names, element_slot)`` builds its node.
        """
        self._frames.append(_Frame([], make, dict(self.columns), dict(self.meta)))

    def set_element(self, column: Column) -> None:
        """Mark ``column`` as the innermost fan's element (an explode's ``into``): dropped on fold."""
        self._frames[-1].element = column

    @property
    def open_fans(self) -> int:
        """How many fans are open (not yet grouped)."""
        return len(self._frames) - 1

    def close_fan(self, names: Mapping[str, str], *, fold: bool = True) -> None:
        """End the innermost fan; with ``fold``, its columns become lists named by ``names``."""
        if len(self._frames) < 2:
            msg = f"step {self.index} group() has no fanout before it to fold"
            raise PlanError(msg)
        frame = self._frames.pop()
        element = frame.element
        element_slot = element.slot if element is not None else None
        if not fold:
            self.emit(frame.fan(tuple(frame.nodes), None, (), element_slot))
            return
        changed = [n for n, c in frame.columns.items() if n in self.columns and self.columns[n].slot != c.slot]
        if changed:
            msg = f"step {self.index} group(): the fanout overwrote {changed[0]!r}; write its values to a new column instead"
            raise PlanError(msg)
        made = [c for n, c in self.columns.items() if n not in frame.columns and (element is None or c.slot != element.slot)]
        unknown = set(names) - {c.name for c in made}
        if unknown:
            msg = (
                f"step {self.index} group() names {sorted(unknown)[0]!r}, which the fanout did not make; "
                f"it made {[c.name for c in made]}"
            )
            raise PlanError(msg)
        self.columns = dict(frame.columns)
        pairs: list[tuple[str, str]] = []
        shown: list[tuple[str, str]] = []
        for column in made:
            folded = self.make("group", names.get(column.name, plural(column.name)), _listed(column.dtype))
            pairs.append((column.slot, folded.slot))
            shown.append((column.name, folded.name))
        inner_meta = {n: c for n, c in self.meta.items() if n not in frame.meta}
        self.meta = dict(frame.meta)
        for name, column in inner_meta.items():
            folded = Column(name, self._slot(name), _listed(column.dtype))
            self.meta[name] = folded
            pairs.append((column.slot, folded.slot))
        self.emit(frame.fan(tuple(frame.nodes), tuple(pairs), tuple(shown), element_slot))

    # -- sub-sequences (branches shown by str(plan)) -------------------------------------
    def branches(self, *alternatives: Iterable[Step]) -> list[tuple[Node, ...]]:
        """Compile each sequence of steps on its own copy of this scope (for display); then
        this scope sees what any of them made."""
        out = []
        copies = []
        for steps in alternatives:
            copy = Scope.__new__(Scope)
            copy.__dict__.update(self.__dict__)
            copy.columns, copy.meta = dict(self.columns), dict(self.meta)
            copy.labels, copy.roles, copy.reads = set(self.labels), dict(self.roles), set(self.reads)
            copy._slots, copy._assumed, copy._made = set(self._slots), dict(self._assumed), set(self._made)
            copy._frames = [_Frame([])]
            compile_steps(steps, copy)
            out.append(copy.finish())
            copies.append(copy)
        for copy in copies:
            self.columns.update(copy.columns)
            self.meta.update(copy.meta)
            self.labels |= copy.labels
            self.roles.update(copy.roles)
            self._slots |= copy._slots
            self._assumed.update(copy._assumed)
            self._made |= copy._made
        return out

    def finish(self) -> tuple[Node, ...]:
        """Close the fans left open (their rows stay separate) and return the top level."""
        while len(self._frames) > 1:
            self.close_fan({}, fold=False)
        return tuple(self._frames[0].nodes)


def _model_name_column(scope: Scope) -> tuple[Column, ...]:
    """``model_name``: the model of the last model step's answer, beside ``meta.*`` (none when
    the plan has no model step, or when a column of that name exists already: it wins)."""
    if MODEL_NAME in scope.columns:
        return ()
    last = next((c for c in reversed(scope.meta.values()) if c.name[len(META_PREFIX):] in scope.roles), None)
    if last is None:
        return ()
    return (Column(MODEL_NAME, last.slot, pl.String if scope.known else None, pick=MODEL_NAME),)


def _listed(dtype: Any) -> Any:
    return None if dtype is None else pl.List(dtype)


def compile_steps(steps: Iterable[Step], scope: Scope) -> None:
    """Compile ``steps`` into ``scope`` in order, numbering them for messages."""
    for step in steps:
        scope.index += 1
        step.compile_into(scope)


def schema_of(value: Any) -> pl.Schema | None:
    """The input schema of a frame, a lazy frame, a schema, a column mapping or column names.

    Column names alone give columns of unknown dtype (String is assumed).

    >>> dict(schema_of(["a", "b"]))
    {'a': String, 'b': String}
    """
    if value is None:
        return None
    if isinstance(value, pl.Schema):
        return value
    if isinstance(value, pl.DataFrame):
        return value.schema
    if isinstance(value, pl.LazyFrame):
        return value.collect_schema()
    if isinstance(value, Mapping):
        if all(isinstance(v, pl.DataType) or (isinstance(v, type) and issubclass(v, pl.DataType)) for v in value.values()):
            return pl.Schema(value)
        return pl.DataFrame(value).schema if value else pl.Schema()
    return pl.Schema([(name, pl.String) for name in value])


def compile_plan(plan: Plan, schema: Any) -> Compiled:
    """Compile ``plan`` against ``schema`` (a frame, a schema or column names); None for display."""
    input_schema = schema_of(schema)
    scope = Scope(input_schema)
    compile_steps(plan.steps, scope)
    tree = scope.finish()
    return Compiled(
        tree=tree,
        input_schema=scope.input_schema,
        reads=tuple(c for c in scope.input_schema if c in scope.reads),
        columns=(*scope.columns.values(), *_model_name_column(scope)),
        meta=tuple(scope.meta.values()),
        roles=dict(scope.roles),
        known=scope.known,
        assumed=tuple(c for c in scope._assumed if c not in scope._made),
    )
