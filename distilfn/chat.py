"""Building and checking chats (lists of OpenAI-style messages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distilfn._types import Chat, Message
from distilfn.dtypes import lone_surrogate

__all__ = ["system", "user", "assistant", "chat", "check_chat", "format_chat"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


def system(content: str) -> Message:
    """A system message.

    >>> system("Be brief.")
    {'role': 'system', 'content': 'Be brief.'}
    """
    return {"role": "system", "content": content}


def user(content: str) -> Message:
    """A user message.

    >>> user("Hi")
    {'role': 'user', 'content': 'Hi'}
    """
    return {"role": "user", "content": content}


def assistant(content: str) -> Message:
    """An assistant message.

    >>> assistant("Hello!")
    {'role': 'assistant', 'content': 'Hello!'}
    """
    return {"role": "assistant", "content": content}


def chat(prompt: str, *, system_prompt: str | None = None) -> Chat:
    """A one-turn chat: an optional system message, then the user's prompt.

    >>> chat("Hi", system_prompt="Be brief.")
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
    """
    messages = [system(system_prompt)] if system_prompt else []
    return [*messages, user(prompt)]


def check_chat(value: Any, *, where: str) -> Chat:
    """Return ``value`` as a chat, or raise TypeError naming ``where`` and what is wrong.

    >>> check_chat([{"role": "user", "content": "x"}], where="task 't'")
    [{'role': 'user', 'content': 'x'}]
    >>> check_chat("x", where="task 't'")
    Traceback (most recent call last):
    ...
    TypeError: task 't' rendered str, expected a list of {'role', 'content'} messages
    """
    if type(value) is not list:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            msg = f"{where} rendered {type(value).__name__}, expected a list of {{'role', 'content'}} messages"
            raise TypeError(msg)
        value = list(value)
    if not value:
        msg = f"{where} rendered an empty chat, expected a list of {{'role', 'content'}} messages"
        raise TypeError(msg)
    for i, message in enumerate(value):
        if type(message) is not dict or "role" not in message or "content" not in message:
            msg = f"{where} rendered message {i} as {message!r}, expected a dict with 'role' and 'content'"
            raise TypeError(msg)
        if message["role"] not in _ROLES:
            msg = f"{where} rendered message {i} with role {message['role']!r}, expected one of {sorted(_ROLES)}"
            raise TypeError(msg)
        content = message["content"]
        if type(content) is not str:
            msg = f"{where} rendered message {i} with content of type {type(content).__name__}, expected str"
            raise TypeError(msg)
        at = lone_surrogate(content)
        if at is not None:
            msg = f"{where} rendered message {i} with a lone surrogate at position {at}, which cannot be sent or stored"
            raise TypeError(msg)
    return value


def format_chat(messages: Chat) -> str:
    """Render a chat as readable text, one block per message.

    >>> print(format_chat([user("Hi")]))
    [user]
    Hi
    """
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
