"""The model protocol: what the interpreter calls, and how plain functions fit it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from distilfn._types import Chat

__all__ = ["Generation", "Model", "is_model"]


class Generation(msgspec.Struct, frozen=True, kw_only=True):
    """One answered request: ``n`` sampled texts plus what the server reported.

    >>> Generation(texts=("hi",), model_name="m").texts
    ('hi',)
    """

    texts: tuple[str, ...]
    model_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


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
