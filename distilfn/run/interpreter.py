"""The interpreter: runs a compiled tree over source rows, many requests in flight.

Each source row moves through the tree on its own: as soon as its request is answered
it goes on to the next node, so a slow row never holds the others back. One semaphore
(the run's ``max_concurrency``) bounds the requests in flight across all steps; a
model's own ``max_concurrency`` is a cap on its share. Cache lookups from rows that are
ready at the same moment are batched into one query.

This is the only place (with the model backends and the writer) that has effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from distilfn.compile import Compiled
from distilfn.errors import BudgetExceededError, FatalModelError, RunAbortedError
from distilfn.models._base import RUN_SLOT, Generation
from distilfn.run.answers import Answer, safe_text
from distilfn.run.cache import RequestCache, RequestKeys
from distilfn.run.cost import model_url, price_table
from distilfn.run.options import RunOptions, run_concurrency
from distilfn.run.stats import RunStats, StepStats
from distilfn.steps.call import Call
from distilfn.tree import Unit, run_nodes

__all__ = ["Interpreter", "MIN_RESULTS_FOR_ERROR_RATE"]

MIN_RESULTS_FOR_ERROR_RATE = 50


class _BatchedReader:
    """Cache lookups made in one turn of the event loop, answered by one query in a worker
    thread (SQLite releases the GIL, so the loop renders and parses other rows meanwhile)."""

    def __init__(self, cache: RequestCache, loop: asyncio.AbstractEventLoop):
        self.cache = cache
        self.loop = loop
        self.pending: list[tuple[list[str], asyncio.Future]] = []

    def get(self, keys: list[str]) -> asyncio.Future:
        future = self.loop.create_future()
        if not self.pending:
            self.loop.call_soon(self._flush)
        self.pending.append((keys, future))
        return future

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        query = self.loop.run_in_executor(None, self.cache.get_many, [k for keys, _ in pending for k in keys])
        query.add_done_callback(lambda done: self._answer(pending, done))

    @staticmethod
    def _answer(pending: list[tuple[list[str], asyncio.Future]], done: asyncio.Future) -> None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        for keys, future in pending:
            if future.done():
                continue
            if error is not None:  # a broken cache fails the run, not a row
                future.set_exception(error)
            else:
                found = done.result()
                future.set_result({k: found[k] for k in keys if k in found})


class Interpreter:
    """Runs one compiled plan against bound models. Create one per run (it is the nodes' Context)."""

    def __init__(
        self,
        compiled: Compiled,
        models: Mapping[str, Any],
        options: RunOptions,
        *,
        cache: RequestCache | None = None,
        stats: RunStats | None = None,
        dry: bool = False,
        notice: Callable[[str], None] | None = None,
    ):
        self.compiled = compiled
        self.models = dict(models)
        self.options = options
        self.limit = run_concurrency(options, self.models.values())
        """Requests in flight across the run (see :func:`run_concurrency`)."""
        self.cache = cache
        self.stats = stats if stats is not None else RunStats()
        self.dry = dry
        self.blocks: list[str] = []
        self._mute = 0
        self._notice = notice or (lambda text: print(text, file=sys.stderr))
        self._routes: dict[str, tuple[Any, dict[str, Any], asyncio.Semaphore | None, RequestKeys | None]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._caps: dict[int, asyncio.Semaphore] = {}
        self._reader: _BatchedReader | None = None
        self.prices = None if dry else price_table(options.prices)

    # -- the Context nodes see --------------------------------------------------------
    def step_stats(self, label: str) -> StepStats:
        return self.stats.step(label)

    def show(self, block: str) -> None:
        if not self._mute:
            self.blocks.append(block)

    @contextlib.contextmanager
    def muted(self, on: bool) -> Iterator[None]:
        self._mute += on
        try:
            yield
        finally:
            self._mute -= on

    async def ask(self, call: Call, chat: Any, view: Mapping[str, Any], path: tuple[int, ...], n: int) -> list[Answer]:
        """``n`` answers to ``chat`` for ``call``: from the cache where known, else from the model."""
        label = call.label
        route = self._routes.get(label)
        if route is None:
            route = self._routes[label] = self._route(call)
        model, params, cap, maker = route
        schema = call.schema_for(view)
        stats = self.stats.step(label)
        if maker is None:
            if n == 1:
                return await self._request(model, chat, params, schema, 1, stats, cap)
            return await self._fresh(model, chat, params, schema, list(range(n)), n, stats, cap)
        keys = [maker.key(chat, (*path, i)) for i in range(n)]
        hits = await self._reader.get(keys)  # type: ignore[union-attr]
        answers: list[Answer | None] = [None] * n
        for i, key in enumerate(keys):
            hit = hits.get(key)
            if hit is not None and self.options.retry_failed and call._read(hit.text or "", view)[1] is not None:
                hit = None  # asked to re-request answers the parser cannot read
            if hit is not None:
                stats.cache_hits += 1
                answers[i] = hit
        todo = [i for i in range(n) if answers[i] is None]
        if todo:
            fresh = await self._fresh(model, chat, params, schema, todo, n, stats, cap)
            stored = {}
            for i, answer in zip(todo, fresh, strict=True):
                answers[i] = answer
                if answer.error is None:
                    stored[keys[i]] = answer
            if stored:
                self.cache.put_many(stored)  # type: ignore[union-attr]
        return answers  # type: ignore[return-value]

    def _route(self, call: Call) -> tuple[Any, dict[str, Any], asyncio.Semaphore | None, RequestKeys | None]:
        """What every request of ``call`` uses: its model, parameters, the model's cap, and
        its cache keys (None when it is not cached)."""
        t = call.task
        model = self.models[t.role]
        params = {**t.defaults, **self.options.params, **t.params}  # a task's defaults < the run's < the task's own
        identity = getattr(model, "identity", None)
        maker = None
        if self._reader is not None and identity:
            schema = call.schema
            maker = RequestKeys(model_identity=identity, params=params, seed=params.get("seed"),
                                schema_name=getattr(schema, "__name__", None) if schema is not None else None)
        return model, params, self._caps.get(id(model)), maker

    async def _fresh(self, model: Any, chat: Any, params: dict[str, Any], schema: Any, todo: list[int], n: int,
                     stats: StepStats, cap: asyncio.Semaphore | None) -> list[Answer]:
        """Answers for samples ``todo`` of ``n``: one request for all when the model takes ``n``."""
        if len(todo) == 1:
            return await self._request(model, chat, _sample_params(params, todo[0], n), schema, 1, stats, cap)
        if getattr(model, "supports_n", False):
            return await self._request(model, chat, params, schema, len(todo), stats, cap)
        groups = await asyncio.gather(
            *(self._request(model, chat, _sample_params(params, i, n), schema, 1, stats, cap) for i in todo)
        )
        return [a for g in groups for a in g]

    async def _request(self, model: Any, chat: Any, params: dict[str, Any], schema: Any, n: int, stats: StepStats,
                       cap: asyncio.Semaphore | None) -> list[Answer]:
        """One request for ``n`` samples; errors become answers, except those that stop the run."""
        run = self.stats
        if cap is not None:  # the model's own cap first: waiting for it holds no run-wide slot
            await cap.acquire()
        try:
            async with self._slots:  # type: ignore[union-attr]
                if self.options.max_cost is not None:
                    self._check_budget()
                run.in_flight += 1
                if run.in_flight > run.max_in_flight:
                    run.max_in_flight = run.in_flight
                stats.requests += 1
                slot = RUN_SLOT.set(self._slots)  # a model may give it back while it waits to retry
                try:
                    (result,) = await model.agenerate([chat], n=n, schema=schema, **params)
                except FatalModelError:
                    raise
                except Exception as exc:  # a model that raises instead of returning errors
                    result = exc
                finally:
                    run.in_flight -= 1
                    RUN_SLOT.reset(slot)
        finally:
            if cap is not None:
                cap.release()
        if isinstance(result, Generation) and len(result.texts) == n:
            self._record(stats, model, result)
            answers = self._answers(result, model)
        elif isinstance(result, FatalModelError):
            raise result
        elif isinstance(result, BaseException):
            error = safe_text(str(result) or type(result).__name__)[0]
            answers = [Answer(None, f"request failed: {error}")] * n
        else:
            got = len(result.texts) if isinstance(result, Generation) else type(result).__name__
            answers = [Answer(None, f"request failed: model returned {got} texts for n={n}")] * n
        if answers[0].error is not None:
            self._check_error_rate(answers[0].error)
        return answers

    def _record(self, stats: StepStats, model: Any, result: Generation) -> None:
        """Count the tokens of an answered request and price them (None when the model has no price)."""
        name = result.model_name or getattr(model, "name", None) or type(model).__name__
        tokens_in, tokens_out = result.input_tokens or 0, result.output_tokens or 0
        cost = None if self.prices is None else self.prices.cost(name, model_url(model), tokens_in, tokens_out)
        self.stats.record(stats, name, tokens_in, tokens_out, cost)

    def _check_budget(self) -> None:
        """Send no request once the projected cost of those sent passes ``max_cost``."""
        limit = self.options.max_cost
        projected = self.stats.projected_cost()
        if limit is not None and projected >= limit:
            msg = (
                f"stopping: the requests sent would cost about ${projected:.4f}, which reaches max_cost=${limit:g} "
                f"(spent ${self.stats.cost:.4f}, {self.stats.in_flight} requests in flight). The finished rows are kept "
                "and the answers cached: raise max_cost (--max-cost) and run again to go on."
            )
            raise BudgetExceededError(msg)

    def _check_prices(self) -> None:
        """With ``max_cost``, every bound model must have a price, before the first request."""
        if self.options.max_cost is None:
            return
        for model in {id(m): m for m in self.models.values()}.values():
            name = getattr(model, "name", None) or type(model).__name__
            if self.prices is None or not self.prices.known(name, model_url(model)):
                msg = (
                    f"max_cost needs a price for the model {name!r}, and none is known; give one, "
                    f"prices={{{name!r}: (input, output)}} in dollars per million tokens (--price {name}=IN,OUT)"
                )
                raise ValueError(msg)

    def _answers(self, result: Generation, model: Any) -> list[Answer]:
        """One answer per sample of ``result``; usage is recorded on the first so that sums are right."""
        tokens_in, tokens_out = result.input_tokens, result.output_tokens
        name = result.model_name or getattr(model, "name", None)
        out = []
        for i, text in enumerate(result.texts):
            if i == 1:
                tokens_in = 0 if tokens_in is not None else None
                tokens_out = 0 if tokens_out is not None else None
            if type(text) is not str:
                out.append(Answer(None, f"request failed: model returned {type(text).__name__}, expected str", name))
                continue
            if text.isascii():
                out.append(Answer(text, None, name, tokens_in, tokens_out))
                continue
            fixed, problem = safe_text(text)
            error = None if problem is None else f"the model's answer cannot be stored: {problem}"
            out.append(Answer(fixed, error, name, tokens_in, tokens_out))
        return out

    def _check_error_rate(self, last_error: str) -> None:
        """Stop the run when failed requests pass ``max_error_rate`` of all results so far."""
        limit = self.options.max_error_rate
        if limit is None:
            return
        steps = self.stats.steps.values()
        failed = sum(s.request_failed for s in steps)
        done = failed + sum(s.ok + s.parse_failed for s in steps)
        if done >= MIN_RESULTS_FOR_ERROR_RATE and failed > limit * done:
            msg = (
                f"stopping: {failed} of {done} requests failed (more than max_error_rate={limit}); "
                f"last error: {last_error}. Fix the cause and re-run: answers so far are cached."
            )
            raise RunAbortedError(msg)

    # -- driving rows -----------------------------------------------------------------
    def _open(self) -> None:
        """Loop-bound state, made fresh for every run (models and options hold none)."""
        limit = self.limit
        self._slots = asyncio.Semaphore(limit)
        self._caps = {}
        for model in {id(m): m for m in self.models.values()}.values():
            cap = getattr(model, "max_concurrency", None)
            if isinstance(cap, int) and 0 < cap < limit:
                self._caps[id(model)] = asyncio.Semaphore(cap)
                self._notice(
                    f"distilfn: model {getattr(model, 'name', model)!r} takes at most {cap} requests at once "
                    f"(its own max_concurrency), below the run's max_concurrency={limit}"
                )
        self._reader = _BatchedReader(self.cache, asyncio.get_running_loop()) if self.cache is not None else None
        self._routes = {}

    async def run(
        self,
        rows: Iterable[tuple[int, dict[str, Any]]],
        on_done: Callable[[int, list[Unit]], None],
        *,
        window: int | None = None,
    ) -> None:
        """Run ``(index, values)`` pairs; call ``on_done(index, units)`` as each finishes.

        ``window`` workers share the rows, so at most that many source rows are in
        progress at once (memory stays bounded) and a row starts as soon as one finishes;
        the first error that stops the run (authentication, the error rate) cancels
        everything and propagates.
        """
        self._check_prices()
        self._open()
        window = window or max(256, 4 * self.limit)
        tree = self.compiled.tree
        stats = self.stats
        pending = iter(rows)

        async def worker() -> None:
            # a pool of workers shares the rows: a task per worker, not per row
            for index, values in pending:
                stats.rows_in += 1
                units = await run_nodes(tree, self, Unit(values))
                stats.rows_done += 1
                stats.rows_out += len(units)
                for u in units:
                    if u.failed:
                        stats.rows_failed += 1
                        break
                on_done(index, units)

        try:
            async with asyncio.TaskGroup() as tasks:
                for _ in range(window):
                    tasks.create_task(worker())
        except BaseExceptionGroup as group:
            raise _first_cause(group) from None


def _sample_params(params: dict[str, Any], index: int, n: int) -> dict[str, Any]:
    """Separate requests for ``n`` samples get distinct seeds when a seed is set."""
    if n > 1 and params.get("seed") is not None:
        return {**params, "seed": params["seed"] + index}
    return params


def _first_cause(group: BaseExceptionGroup) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_cause(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
