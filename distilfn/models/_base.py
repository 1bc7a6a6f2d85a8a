"""The model protocol: what the interpreter calls, and how plain functions fit it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from distilfn._types import Chat

__all__ = ["RUN_SLOT", "EndpointStats", "Generation", "Model", "is_model", "outside_run_slot"]

RUN_SLOT: contextvars.ContextVar[asyncio.Semaphore | None] = contextvars.ContextVar("distilfn_run_slot", default=None)
"""The run-wide slot the interpreter holds while a model answers a request (None outside a run)."""


@contextlib.asynccontextmanager
async def outside_run_slot() -> AsyncIterator[None]:
    """Give the run's slot back while waiting (a retry sitting out its ``Retry-After`` or
    backoff is not a request in flight), and take it again before going on.

    The slot is taken back shielded: if the wait is cancelled, the slot still comes back
    before the interpreter releases it, so the run's count stays right.
    """
    slot = RUN_SLOT.get()
    if slot is None:
        yield
        return
    slot.release()
    try:
        yield
    finally:
        await asyncio.shield(slot.acquire())


class Generation(msgspec.Struct, frozen=True, kw_only=True):
    """One answered request: ``n`` sampled texts plus what the server reported.

    >>> Generation(texts=("hi",), model_name="m").texts
    ('hi',)
    """

    texts: tuple[str, ...]
    model_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class EndpointStats(msgspec.Struct, frozen=True, kw_only=True):
    """What one endpoint of an HTTP model went through since its session opened (one run).

    A model that talks to servers may offer ``endpoint_stats() -> list[EndpointStats]``;
    the run adds them to its summary.

    Attributes:
        endpoint: the base URL (never with credentials).
        requests: HTTP requests sent (retries included).
        retries: requests that repeated an earlier attempt.
        throttled: 429 answers.
        timeouts: requests that ran out of a deadline (connect, first byte, stall, whole).
        errors: other failed requests (5xx, dropped connections, unreadable 200s).
        max_in_flight: the most requests in flight at once (the concurrency reached).
        limit: the adaptive in-flight limit at the end; ``limit_cuts``: times it was cut.
        retry_after_clamped: ``Retry-After`` values raised to the minimum or capped.
        slots: what the server said of its slots (llama.cpp ``/props``), or None.
    """

    endpoint: str
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    timeouts: int = 0
    errors: int = 0
    max_in_flight: int = 0
    limit: int = 0
    limit_cuts: int = 0
    retry_after_clamped: int = 0
    slots: int | None = None


@runtime_checkable
class Model(Protocol):
    """The rich model protocol the interpreter speaks.

    ``agenerate`` answers each chat with a :class:`Generation` of ``n`` texts, or with
    the :class:`~distilfn.errors.ModelError` that request ended with. It raises only for
    errors that must stop the whole run (``AuthenticationError``).

    Attributes:
        name: the model name shown in metadata.
        identity: what makes two instances answer alike (model + endpoint, never a key);
            part of every cache key.
        supports_n: whether one request can return ``n`` samples.
        max_concurrency: how many requests this model wants in flight, or None.
    """

    name: str
    identity: str
    supports_n: bool
    max_concurrency: int | None

    async def agenerate(
        self, chats: Sequence[Chat], *, n: int = 1, schema: Any = None, **params: Any
    ) -> list[Generation | BaseException]: ...

    async def aclose(self) -> None: ...


def is_model(value: Any) -> bool:
    """Whether ``value`` speaks the rich protocol (has ``agenerate``)."""
    return callable(getattr(value, "agenerate", None))
