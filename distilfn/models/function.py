"""Plain Python functions as models: ``fn(chats, **params) -> list[str]``, sync or async.

Requests from many rows are gathered into batches, so a function that is faster on
many chats at once (a local engine, a vectorised fake) gets them together.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any

from distilfn._types import Chat
from distilfn.errors import FatalModelError, ModelError
from distilfn.models._base import Generation

__all__ = ["FunctionModel"]


class FunctionModel:
    """Adapt ``fn(chats, **params) -> list[str | Generation]`` to the model protocol.

    Answers are cached (see ``plan.run(cache=...)``) only when ``identity`` is given: a
    string that changes whenever the function would answer differently.
    Sync functions run in a worker thread, one batch at a time (so they need not be
    thread-safe and never block the event loop); async functions are awaited directly.
    If a batch raises, its chats are retried one by one so that one bad chat fails
    only its own row. Parameters the function does not accept are not passed.

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
        self._pending: dict[Any, list[tuple[Chat, dict[str, Any], asyncio.Future]]] = {}
        self._flush_scheduled = False
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"FunctionModel({self.name!r})"

    async def agenerate(
        self, chats: Sequence[Chat], *, n: int = 1, schema: Any = None, **params: Any
    ) -> list[Generation | BaseException]:
        """Answer each chat with ``n`` samples (``n`` calls' worth of chats in the batch)."""
        if schema is not None:
            params = {**params, "schema": schema}
        params = self._accepted(params)
        loop = asyncio.get_running_loop()
        futures = [self._enqueue(loop, chat, params) for chat in chats for _ in range(n)]
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

    # -- batching ---------------------------------------------------------------------
    def _accepted(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._accepts is None:
            return params
        return {k: v for k, v in params.items() if k in self._accepts}

    def _enqueue(self, loop: asyncio.AbstractEventLoop, chat: Chat, params: dict[str, Any]) -> asyncio.Future:
        future = loop.create_future()
        key = _batch_key(params)
        self._pending.setdefault(key, []).append((chat, params, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        for items in pending.values():
            for start in range(0, len(items), self.max_batch):
                asyncio.ensure_future(self._run_batch(items[start : start + self.max_batch]))

    async def _run_batch(self, items: list[tuple[Chat, dict[str, Any], asyncio.Future]]) -> None:
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
                await asyncio.gather(*(self._run_batch([item]) for item in items))
                return
            answers = [_as_model_error(exc)]
        for (_, _, future), answer in zip(items, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    async def _call(self, chats: list[Chat], params: dict[str, Any]) -> list[Any]:
        if self._is_async:
            result = await self.fn(chats, **params)
        elif self.threaded:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                result = await asyncio.to_thread(self.fn, chats, **params)
        else:
            result = self.fn(chats, **params)
        return _check_answers(self.name, result, len(chats))


def _check_answers(name: str, result: Any, expected: int) -> list[Any]:
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
