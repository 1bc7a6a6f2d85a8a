"""The interpreter: runs a resolved plan row by row, many requests in flight.

Each source row moves through the steps on its own: as soon as its request is
answered it goes on to the next step, so a slow row never holds the others back.
One semaphore bounds the requests in flight across all steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from distilfn.errors import FatalModelError, RunAbortedError
from distilfn.models._base import Generation
from distilfn.ops import Evolve, FilterRows, MapRows, Rename, Select, plural
from distilfn.plan import META_PREFIX, FanStart, Folded, Labeled, Resolved
from distilfn.run.stats import RunStats
from distilfn.task import Task

__all__ = ["Interpreter", "Answer"]


class Unit:
    """A row in flight: its values and its sample path (which fanout sample it is)."""

    __slots__ = ("row", "path")

    def __init__(self, row: dict[str, Any], path: tuple[int, ...] = ()):
        self.row = row
        self.path = path


@dataclass(frozen=True, slots=True)
class FanNode:
    n: int
    inner: tuple[Any, ...]
    fold: Folded | None
    explode: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """One sample's outcome: text or error, plus what the model reported."""

    text: str | None
    error: str | None = None
    model_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached: bool = False


def nest(flat: Sequence[Any]) -> tuple[Any, ...]:
    """Turn the resolved flat steps into a tree: each fanout holds the steps up to its group."""
    out: list[Any] = []
    i = 0
    while i < len(flat):
        step = flat[i]
        if isinstance(step, FanStart):
            depth, match = 0, None
            for k in range(i + 1, len(flat)):
                if isinstance(flat[k], FanStart):
                    depth += 1
                elif isinstance(flat[k], Folded):
                    if depth == 0:
                        match = k
                        break
                    depth -= 1
            end = match if match is not None else len(flat)
            out.append(FanNode(step.n, nest(flat[i + 1 : end]), flat[match] if match is not None else None, step.explode))
            i = end + 1
        else:
            out.append(step)
            i += 1
    return tuple(out)


class Interpreter:
    """Runs one resolved plan against bound models. Create one per run."""

    def __init__(
        self,
        resolved: Resolved,
        models: Mapping[str, Any],
        *,
        max_concurrency: int,
        cache: Any = None,
        stats: RunStats | None = None,
        key_for: Callable[..., str] | None = None,
        max_error_rate: float | None = None,
        min_results_for_error_rate: int = 50,
        refresh_parse_failures: bool = False,
        default_params: Mapping[str, Any] | None = None,
    ):
        self.resolved = resolved
        self.nodes = nest(resolved.flat)
        self.models = models
        self.max_concurrency = max_concurrency
        self.cache = cache
        self.key_for = key_for
        self.stats = stats or RunStats()
        self.max_error_rate = max_error_rate
        self.min_results = min_results_for_error_rate
        self.refresh_parse_failures = refresh_parse_failures
        self.default_params = dict(default_params or {})
        self._slots: asyncio.Semaphore | None = None

    # -- driving rows ---------------------------------------------------------------------
    async def run(
        self,
        rows: Iterable[dict[str, Any]],
        on_done: Callable[[int, list[dict[str, Any]]], None],
        *,
        window: int | None = None,
    ) -> None:
        """Run every source row; call ``on_done(index, output_rows)`` as each finishes."""
        await self.run_indexed(enumerate(rows), on_done, window=window)

    async def run_indexed(
        self,
        rows: Iterable[tuple[int, dict[str, Any]]],
        on_done: Callable[[int, list[dict[str, Any]]], None],
        *,
        window: int | None = None,
    ) -> None:
        """Run ``(index, row)`` pairs; call ``on_done(index, output_rows)`` as each finishes.

        At most ``window`` source rows are in progress at once (memory stays bounded);
        the first FatalModelError (authentication, model unavailable) cancels everything
        and propagates.
        """
        self._slots = asyncio.Semaphore(self.max_concurrency)
        window = window or max(256, 4 * self.max_concurrency)
        gate = asyncio.Semaphore(window)

        async def one(index: int, row: dict[str, Any]) -> None:
            try:
                units = await self.run_nodes(self.nodes, Unit(row))
                self.stats.rows_done += 1
                self.stats.rows_out += len(units)
                on_done(index, [u.row for u in units])
            finally:
                gate.release()

        try:
            async with asyncio.TaskGroup() as tasks:
                for index, row in rows:
                    await gate.acquire()
                    self.stats.rows_in += 1
                    tasks.create_task(one(index, row))
        except BaseExceptionGroup as group:
            raise _first_cause(group) from None

    async def run_nodes(self, nodes: Sequence[Any], unit: Unit) -> list[Unit]:
        """Run ``unit`` through ``nodes``; fanouts may turn it into several units."""
        for position, node in enumerate(nodes):
            if isinstance(node, FanNode):
                children = await self.fan(node, unit)
                if node.fold is None:
                    return children  # an ungrouped fanout holds every later step
                unit = fold(node.fold, unit, children)
                continue
            result = await self.step(node, unit)
            if result is None:
                return []
            unit = result
        return [unit]

    async def fan(self, node: FanNode, unit: Unit) -> list[Unit]:
        inner = node.inner
        if node.explode is not None:
            column, into = node.explode
            items = unit.row.get(column) or []
            children = [Unit({**unit.row, into: item}, (*unit.path, i)) for i, item in enumerate(items)]
            if not inner:
                return children
            results = await asyncio.gather(*(self.run_nodes(inner, child) for child in children))
            return [u for units in results for u in units]
        head = inner[0] if inner and isinstance(inner[0], Labeled) and isinstance(inner[0].step, Task) else None
        if head is not None:
            updates = await self.call_task(head, unit, n=node.n)
            children = [Unit({**unit.row, **update}, (*unit.path, i)) for i, update in enumerate(updates)]
            rest = inner[1:]
        else:
            children = [Unit(unit.row, (*unit.path, i)) for i in range(node.n)]
            rest = inner
        if not rest:
            return children
        results = await asyncio.gather(*(self.run_nodes(rest, child) for child in children))
        return [u for units in results for u in units]

    async def step(self, node: Any, unit: Unit) -> Unit | None:
        if isinstance(node, Labeled):
            step = node.step
            if isinstance(step, Task):
                (update,) = await self.call_task(node, unit, n=1)
                return Unit({**unit.row, **update}, unit.path)
            if isinstance(step, Evolve):
                return Unit({**unit.row, **await self.evolve(node, unit)}, unit.path)
            if isinstance(step, MapRows):
                return Unit({**unit.row, **map_row(node, unit.row)}, unit.path)
            if isinstance(step, FilterRows):
                return filter_row(node, unit)
        if isinstance(node, Rename):
            return Unit({node.mapping.get(k, k): v for k, v in unit.row.items()}, unit.path)
        if isinstance(node, Select):
            keep = set(node.columns)
            return Unit({k: v for k, v in unit.row.items() if k in keep or k.startswith(META_PREFIX)}, unit.path)
        msg = f"cannot run step {node!r}"
        raise TypeError(msg)

    # -- model steps ----------------------------------------------------------------------
    async def call_task(self, node: Labeled, unit: Unit, *, n: int, task: Task | None = None) -> list[dict[str, Any]]:
        """Render, request ``n`` samples, parse: one row update per sample. Never raises for a row."""
        t: Task = task or node.step
        meta_col = META_PREFIX + node.label
        stats = self.stats.step(node.label)
        stats.rows += n
        row = unit.row
        null = [c for c in t.input_columns if row.get(c) is None]
        if null:
            stats.skipped += n
            error = f"skipped: input column {null[0]!r} is null (an earlier step failed)"
            return [_failed(t, meta_col, None, Answer(text=None, error=error)) for _ in range(n)]
        try:
            chat = t.chat_for(row)
        except Exception as exc:
            stats.request_failed += n
            error = f"render failed: {type(exc).__name__}: {exc}"
            return [_failed(t, meta_col, None, Answer(text=None, error=error)) for _ in range(n)]
        answers = await self.ask(t, chat, unit.path, n, node.label)
        updates = []
        for answer in answers:
            if answer.error is not None:
                stats.request_failed += 1
                updates.append(_failed(t, meta_col, chat, answer))
                self._check_error_rate(answer.error)
                continue
            parsed = t.read(answer.text)
            if parsed.error is None:
                stats.ok += 1
            else:
                stats.parse_failed += 1
            updates.append({**parsed.values, meta_col: _meta(chat, answer, parsed.error)})
        return updates

    async def ask(self, t: Task, chat: list[dict[str, str]], path: tuple[int, ...], n: int, label: str) -> list[Answer]:
        """``n`` answers to ``chat``: from the cache where known, else from the model."""
        model = self.models[t.role]
        params = {**self.default_params, **t.params}
        schema_name = getattr(t.schema, "__name__", None) if t.schema is not None else None
        keys: list[str | None] = [None] * n
        answers: list[Answer | None] = [None] * n
        stats = self.stats.step(label)
        if self.cache is not None and self.key_for is not None and getattr(model, "identity", None):
            keys = [
                self.key_for(
                    chat=chat, model_identity=model.identity, params=params,
                    n_index=(*path, i), seed=params.get("seed"), schema_name=schema_name,
                )
                for i in range(n)
            ]
            hits = self.cache.get_many(keys)
            for i, key in enumerate(keys):
                hit = hits.get(key)
                if hit is not None and self.refresh_parse_failures and t.read(hit.text).error is not None:
                    hit = None  # asked to re-request answers the parser cannot read
                if hit is not None:
                    stats.cache_hits += 1
                    answers[i] = Answer(hit.text, None, hit.model_name, hit.input_tokens, hit.output_tokens, cached=True)
        todo = [i for i in range(n) if answers[i] is None]
        if todo:
            if len(todo) == 1:
                fresh = await self.request(model, chat, _sample_params(params, todo[0], n), t.schema, 1, stats)
            elif getattr(model, "supports_n", False):
                fresh = await self.request(model, chat, params, t.schema, len(todo), stats)
            else:
                per_sample = [_sample_params(params, i, n) for i in todo]
                groups = await asyncio.gather(*(self.request(model, chat, p, t.schema, 1, stats) for p in per_sample))
                fresh = [a for g in groups for a in g]
            for i, answer in zip(todo, fresh, strict=True):
                answers[i] = answer
                if self.cache is not None and answer.error is None and keys[i] is not None:
                    self.cache.put(keys[i], _cached(answer))
        return answers  # type: ignore[return-value]

    async def request(self, model: Any, chat: Any, params: dict[str, Any], schema: Any, n: int, stats: Any) -> list[Answer]:
        """One request for ``n`` samples; errors become answers, except authentication."""
        assert self._slots is not None
        async with self._slots:
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            stats.requests += 1
            try:
                (result,) = await model.agenerate([chat], n=n, schema=schema, **params)
            except FatalModelError:
                raise
            except Exception as exc:  # a model that raises instead of returning errors
                result = exc
            finally:
                self.stats.in_flight -= 1
        if isinstance(result, FatalModelError):
            raise result
        if isinstance(result, BaseException):
            error = str(result) or type(result).__name__
            return [Answer(text=None, error=f"request failed: {error}") for _ in range(n)]
        if not isinstance(result, Generation) or len(result.texts) != n:
            got = len(result.texts) if isinstance(result, Generation) else type(result).__name__
            return [Answer(text=None, error=f"request failed: model returned {got} texts for n={n}") for _ in range(n)]
        stats.input_tokens += result.input_tokens or 0
        stats.output_tokens += result.output_tokens or 0
        # usage is per request: it is recorded on the first sample so that sums are right
        return [
            Answer(
                text,
                None,
                result.model_name or getattr(model, "name", None),
                result.input_tokens if i == 0 else (0 if result.input_tokens is not None else None),
                result.output_tokens if i == 0 else (0 if result.output_tokens is not None else None),
            )
            for i, text in enumerate(result.texts)
        ]

    def _check_error_rate(self, last_error: str) -> None:
        """Stop the run when failed requests pass ``max_error_rate`` of all results so far."""
        if self.max_error_rate is None:
            return
        steps = self.stats.steps.values()
        failed = sum(s.request_failed for s in steps)
        total = sum(s.ok + s.parse_failed + s.request_failed for s in steps)
        if total >= self.min_results and failed / total > self.max_error_rate:
            msg = (
                f"stopped early: {failed} of {total} requests failed ({failed / total:.0%}, above "
                f"max_error_rate={self.max_error_rate}); last error: {last_error}. Answers already "
                f"received are kept in the cache, so a re-run after fixing the cause costs nothing done."
            )
            raise RunAbortedError(msg)

    async def evolve(self, node: Labeled, unit: Unit) -> dict[str, Any]:
        """Run the rounds of an evolve step; returns the output columns and metadata."""
        step: Evolve = node.step
        t = step.task
        meta_col = META_PREFIX + node.label
        row = dict(unit.row)
        rounds: list[dict[str, Any]] = []
        metas: list[Any] = []
        error = None
        for round_index in range(step.n):
            round_unit = Unit(row, (*unit.path, round_index))
            (update,) = await self.call_task(node, round_unit, n=1, task=t)
            meta = update.pop(meta_col)
            metas.append(meta)
            if meta["error"] is not None:
                error = f"round {round_index + 1} of {step.n}: {meta['error']}"
                break
            rounds.append(update)
            for out_name, in_name in step.feed.items():
                row[t.input_map.get(in_name, in_name)] = update[t.output_map.get(out_name, out_name)]
        outputs = t.output_columns
        if step.keep == "last":
            values = {c: (rounds[-1][c] if rounds and error is None else None) for c in outputs}
        else:
            values = {}
            for c in outputs:
                history = [r[c] for r in rounds]
                if step.include_original:
                    fed = {t.output_map.get(o, o): t.input_map.get(i, i) for o, i in step.feed.items()}
                    if c in fed:
                        history = [unit.row.get(fed[c]), *history]
                values[plural(c)] = history
        values[meta_col] = metas
        return values


def _cached(answer: Answer) -> Any:
    from distilfn.run.cache import CachedAnswer

    return CachedAnswer(
        text=answer.text or "", model_name=answer.model_name,
        input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
    )


def _sample_params(params: dict[str, Any], index: int, n: int) -> dict[str, Any]:
    """Separate requests for ``n`` samples get distinct seeds when a seed is set."""
    if n > 1 and params.get("seed") is not None:
        return {**params, "seed": params["seed"] + index}
    return params


def _meta(chat: Any, answer: Answer, error: str | None) -> dict[str, Any]:
    return {
        "raw_input": chat,
        "raw_output": answer.text,
        "model_name": answer.model_name,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "error": error,
        "cached": answer.cached,
    }


def _failed(t: Task, meta_col: str, chat: Any, answer: Answer) -> dict[str, Any]:
    return {**{c: None for c in t.output_columns}, meta_col: _meta(chat, answer, answer.error)}


def fold(folded: Folded, parent: Unit, children: list[Unit]) -> Unit:
    """One row per source: the parent's columns plus a list per column made in the fanout."""
    row = dict(parent.row)
    for column, name in folded.fold:
        row[name] = [child.row.get(column) for child in children]
    return Unit(row, parent.path)


def map_row(node: Labeled, row: dict[str, Any]) -> dict[str, Any]:
    """Apply a map step; an exception keeps the row with null outputs and the error."""
    step: MapRows = node.step
    try:
        result = step.fn(row)
        if not isinstance(result, Mapping):
            msg = f"returned {type(result).__name__}, expected a mapping of {list(step.outputs)}"
            raise TypeError(msg)
        values = {c: result.get(c) for c in step.outputs}
        error = None
    except Exception as exc:
        values = {c: None for c in step.outputs}
        error = f"{type(exc).__name__}: {exc}"
    return {**values, META_PREFIX + node.label: {"error": error}}


def filter_row(node: Labeled, unit: Unit) -> Unit | None:
    """Apply a filter step; an exception keeps the row (nothing is dropped on errors)."""
    step: FilterRows = node.step
    try:
        return unit if step.predicate(unit.row) else None
    except Exception:
        return unit


def _first_cause(group: BaseExceptionGroup) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_cause(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]

