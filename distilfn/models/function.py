"""Plain Python functions as models: ``fn(chats, **params) -> list[str]``, sync or async.

An async function gets one chat per call, as many calls in flight as the run allows
(the interpreter bounds them). A sync function gets micro-batches: the chats that are
waiting when it is free, up to ``max_batch``, so a function that is faster on many chats
at once (a local engine, a vectorised fake) gets them together.

A model holds no event-loop state between runs: what a sync function's queue needs
lives in a per-loop record that is dropped as soon as the queue is empty, so the same
object serves any number of ``plan.run`` calls, one after another or cancelled midway.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from distilfn._types import Chat
from distilfn.errors import FatalModelError, ModelError
from distilfn.models._base import Generation

__all__ = ["FunctionModel"]

_Item = tuple[Chat, dict[str, Any], asyncio.Future]
"""A chat waiting for a sync function: the chat, its parameters, the future for its answer."""


class FunctionModel:
    """Adapt ``fn(chats, **params) -> list[str | Generation]`` to the model protocol.

    Answers are cached (see ``plan.run(cache=...)``) only when ``identity`` is given: a
    string that changes whenever the function would answer differently.
    Async functions are awaited with one chat per call. Sync functions run in a worker
    thread (or on the loop with ``threaded=False``), one batch of at most ``max_batch``
    chats at a time, across every run and thread (so they need not be thread-safe and
    never block the event loop). If a batch raises, its chats are retried one by one so
    that one bad chat fails only its own row. Parameters the function does not accept
    are not passed.

    >>> import asyncio
    >>> m = FunctionModel(lambda chats: [c[-1]["content"].upper() for c in chats])
    >>> asyncio.run(m.agenerate([[{"role": "user", "content": "hi"}]]))[0].texts
    ('HI',)
    """

    supports_n = False

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        identity: str | None = None,
        max_batch: int = 256,
        max_concurrency: int | None = None,
        threaded: bool = True,
    ):
        if not isinstance(max_batch, int) or max_batch < 1:
            msg = f"`max_batch` must be an int >= 1, got {max_batch!r}"
            raise ValueError(msg)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        # a function's answers are cached only when the caller vouches for its identity:
        # two lambdas (or two fakes) share a qualified name but not their answers
        self.identity = identity
        self.max_batch = max_batch
        self.max_concurrency = max_concurrency
        self.threaded = threaded
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)
        )
        self._accepts = _accepted_params(fn)
        self._serial = threading.Lock()  # one call of a sync fn at a time, whatever the loop
        self._queues: dict[asyncio.AbstractEventLoop, _Queue] = {}  # only while chats wait

    def __repr__(self) -> str:
        return f"FunctionModel({self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration, not the lock or the queues of running loops."""
        state = dict(self.__dict__)
        del state["_serial"], state["_queues"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._serial = threading.Lock()
        self._queues = {}

    async def agenerate(
        self, chats: Sequence[Chat], *, n: int = 1, schema: Any = None, **params: Any
    ) -> list[Generation | BaseException]:
        """Answer each chat with ``n`` samples: ``n`` calls of an async function, or ``n``
        places in a sync function's batches."""
        if schema is not None:
            params = {**params, "schema": schema}
        params = self._accepted(params)
        if n == 1 and len(chats) == 1 and self._is_async:  # what the interpreter sends: one chat, one sample
            answer = await self._ask(chats[0], params)
            if isinstance(answer, BaseException | Generation):
                return [answer]
            return [Generation(texts=(answer,), model_name=self.name)]
        asks = [chat for chat in chats for _ in range(n)]
        if self._is_async:
            calls = [self._ask(chat, params) for chat in asks]
            answers = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
        else:
            queue = self._queue()
            futures = [queue.put(chat, params) for chat in asks]
            answers = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
        out: list[Generation | BaseException] = []
        for i in range(len(chats)):
            samples = answers[i * n : (i + 1) * n]
            failed = next((s for s in samples if isinstance(s, BaseException)), None)
            if failed is not None:
                out.append(failed)
            elif len(samples) == 1 and isinstance(samples[0], Generation):
                out.append(samples[0])
            else:
                texts = tuple(s.texts[0] if isinstance(s, Generation) else s for s in samples)
                out.append(Generation(texts=texts, model_name=self.name))
        return out

    async def aclose(self) -> None:
        """Nothing to release."""

    def _accepted(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._accepts is None:
            return params
        return {k: v for k, v in params.items() if k in self._accepts}

    # -- async functions: one chat per call ----------------------------------------------
    async def _ask(self, chat: Chat, params: dict[str, Any]) -> Any:
        """One call of an async ``fn`` with one chat: its answer, or the error it ended with."""
        try:
            (answer,) = _check_answers(self.name, await self.fn([chat], **params), 1)
        except FatalModelError:
            raise
        except Exception as exc:
            return _as_model_error(exc)
        return answer

    # -- sync functions: micro-batches -------------------------------------------------------
    def _queue(self) -> _Queue:
        """The running loop's queue of chats waiting for the function, made on first use."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue(self, loop)
        return queue

    def _forget(self, queue: _Queue) -> None:
        """Drop ``queue`` (its loop has no chat waiting any more)."""
        if self._queues.get(queue.loop) is queue:
            del self._queues[queue.loop]

    async def _run_batch(self, items: list[_Item]) -> None:
        """Answer ``items`` with one call; a failing batch is retried one chat at a time."""
        chats = [chat for chat, _, _ in items]
        params = items[0][1]
        try:
            answers = await self._call(chats, params)
        except FatalModelError as exc:
            for _, _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception as exc:
            if len(items) > 1:  # isolate the failing chat(s)
                for item in items:
                    if not item[2].done():
                        await self._run_batch([item])
                return
            answers = [_as_model_error(exc)]
        for (_, _, future), answer in zip(items, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    async def _call(self, chats: list[Chat], params: dict[str, Any]) -> list[Any]:
        if self.threaded:
            result = await asyncio.to_thread(self._call_serially, chats, params)
        else:
            result = self._call_serially(chats, params)
        return _check_answers(self.name, result, len(chats))

    def _call_serially(self, chats: list[Chat], params: dict[str, Any]) -> Any:
        """Call the sync ``fn`` under the lock (taken in the calling thread: never loop-bound)."""
        with self._serial:
            return self.fn(chats, **params)


class _Queue:
    """Chats of one event loop waiting for a sync function, drained by one task.

    The task forms a batch from what is waiting (oldest parameters first, up to
    ``max_batch`` chats with equal parameters), answers it, and goes on until nothing
    waits; then the queue forgets itself. Chats whose caller was cancelled are skipped;
    if the task itself is cancelled (the loop is shutting down), the chats it still holds
    are cancelled too, so no caller waits forever.
    """

    def __init__(self, model: FunctionModel, loop: asyncio.AbstractEventLoop):
        self.model = model
        self.loop = loop
        self.waiting: dict[Any, deque[_Item]] = {}
        self.task: asyncio.Task | None = None

    def put(self, chat: Chat, params: dict[str, Any]) -> asyncio.Future:
        """Queue ``chat``; the future gets its answer (or the error it ended with)."""
        future = self.loop.create_future()
        self.waiting.setdefault(_batch_key(params), deque()).append((chat, params, future))
        if self.task is None:
            self.task = self.loop.create_task(self._drain())
        return future

    def _next_batch(self) -> list[_Item]:
        """Up to ``max_batch`` live chats sharing the oldest parameters; round-robin over keys."""
        key = next(iter(self.waiting))
        items = self.waiting.pop(key)
        batch: list[_Item] = []
        while items and len(batch) < self.model.max_batch:
            item = items.popleft()
            if not item[2].done():
                batch.append(item)
        if items:
            self.waiting[key] = items  # to the back, behind the other parameters
        return batch

    async def _drain(self) -> None:
        batch: list[_Item] = []
        try:
            while self.waiting:
                batch = self._next_batch()
                if batch:
                    await self.model._run_batch(batch)
                batch = []
        finally:
            for _, _, future in [*batch, *(item for items in self.waiting.values() for item in items)]:
                future.cancel()
            self.waiting.clear()
            self.task = None
            self.model._forget(self)


def _check_answers(name: str, result: Any, expected: int) -> list[Any]:
    if type(result) is list and len(result) == expected and all(type(a) is str for a in result):
        return result  # the usual case, without the checks below
    if isinstance(result, str) or not isinstance(result, Sequence):
        msg = f"model {name!r} returned {type(result).__name__}, expected a list of {expected} strings"
        raise ModelError(msg)
    if len(result) != expected:
        msg = f"model {name!r} returned {len(result)} answers for {expected} chats"
        raise ModelError(msg)
    out: list[Any] = []
    for answer in result:
        if isinstance(answer, str | Generation):
            out.append(answer)
        elif isinstance(answer, BaseException):
            out.append(_as_model_error(answer))
        else:
            out.append(ModelError(f"model {name!r} returned {type(answer).__name__}, expected str"))
    return out


def _batch_key(params: dict[str, Any]) -> Any:
    """Requests with equal parameters share a batch; cheap for the usual hashable values."""
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:  # lists, dicts, schemas: fall back to their canonical JSON
        return json.dumps(params, sort_keys=True, default=repr)


def _as_model_error(exc: BaseException) -> ModelError:
    if isinstance(exc, ModelError):
        return exc
    error = ModelError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _accepted_params(fn: Callable[..., Any]) -> frozenset[str] | None:
    """Keyword parameters ``fn`` accepts after ``chats``; None when it takes ``**kwargs``."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = []
    for i, p in enumerate(signature.parameters.values()):
        if p.kind is p.VAR_KEYWORD:
            return None
        if i > 0 and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return frozenset(names)
