"""A scripted stand-in model, for running plans offline (needs no extra).

    model = scripted_model(lambda chat: "#### Output for Text 1\\nRating: 4\\nRationale: Fine.")
    out = plan.run(df, model=model)
    assert model.calls == len(df)
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from distilfn._types import Chat

__all__ = ["ScriptedModel", "scripted_model"]


class ScriptedModel:
    """A plain-function model answering from a script, recording what it was asked.

    Call it as ``model(chats, **params) -> list[str]``; ``calls`` counts the chats
    answered and ``chats`` keeps them in order. Thread-safe.
    """

    def __init__(self, answer: Callable[[Chat], str] | Sequence[str], *, name: str = "scripted"):
        if isinstance(answer, str) or not (callable(answer) or isinstance(answer, Sequence)):
            msg = f"scripted_model: `answer` must be a function of the chat or a list of texts, got {answer!r}"
            raise TypeError(msg)
        if not callable(answer) and not answer:
            msg = "scripted_model: `answer` is an empty list; give at least one text"
            raise ValueError(msg)
        self.__name__ = name
        self.__qualname__ = f"scripted_model.{name}"
        self.name = name
        self._answer = answer
        self._cycle = None if callable(answer) else itertools.cycle(list(answer))
        self._lock = threading.Lock()
        self.chats: list[Chat] = []

    @property
    def calls(self) -> int:
        """The number of chats answered so far."""
        return len(self.chats)

    def __call__(self, chats: list[Chat], **params: Any) -> list[str]:
        out = []
        for chat in chats:
            with self._lock:
                self.chats.append(chat)
                text = next(self._cycle) if self._cycle is not None else None
            out.append(text if text is not None else self._answer(chat))  # type: ignore[operator]
        return out

    def __repr__(self) -> str:
        return f"scripted_model(name={self.name!r}, calls={self.calls})"


def scripted_model(answer: Callable[[Chat], str] | Sequence[str], *, name: str = "scripted") -> ScriptedModel:
    """A fake model: ``answer(chat) -> str`` for each chat, or the texts of a list in turn (cycling).

    >>> model = scripted_model(["yes", "no"])
    >>> model([[{"role": "user", "content": "a"}]] * 3)
    ['yes', 'no', 'yes']
    >>> model.calls
    3
    """
    return ScriptedModel(answer, name=name)
