"""Building and checking chats (lists of OpenAI-style messages).

A message's content is text, or a list of content parts as OpenAI-compatible servers
take them (``{"type": "text", "text": ...}``, ``{"type": "image_url", "image_url":
{"url": ...}}``); parts are sent unchanged and stored in metadata as their JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from distilfn._types import Chat, Message
from distilfn.dtypes import lone_surrogate

__all__ = ["system", "user", "assistant", "chat", "check_chat", "format_chat", "image_message", "print_chat", "stored_chat", "without_nulls"]

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


def image_message(text: str, url: str, *, role: str = "user") -> Message:
    """A message of a text part and an image part (a URL or a ``data:`` URI).

    >>> image_message("What is this?", "https://example.org/cat.png")["content"][1]
    {'type': 'image_url', 'image_url': {'url': 'https://example.org/cat.png'}}
    """
    return {"role": role, "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}  # type: ignore[typeddict-item]


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
            _check_parts(content, where=f"{where} rendered message {i}")
            continue
        at = lone_surrogate(content)
        if at is not None:
            msg = f"{where} rendered message {i} with a lone surrogate at position {at}, which cannot be sent or stored"
            raise TypeError(msg)
    return value


def _check_parts(content: Any, *, where: str) -> None:
    """Check a list of content parts: ``text`` parts with a str ``text``, ``image_url`` parts
    with a str ``url``.

    >>> _check_parts([{"type": "image_url", "image_url": {"url": 3}}], where="m")
    Traceback (most recent call last):
    ...
    TypeError: m has content part 0 of type 'image_url' without a str image_url.url, got {'url': 3}
    """
    if not isinstance(content, list) or not content:
        msg = f"{where} with content of type {type(content).__name__}, expected str or a non-empty list of content parts"
        raise TypeError(msg)
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                msg = f"{where} has content part {j} of type 'text' without a str text, got {text!r}"
                raise TypeError(msg)
            at = lone_surrogate(text)
            if at is not None:
                msg = f"{where} has content part {j} with a lone surrogate at position {at}, which cannot be sent or stored"
                raise TypeError(msg)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                msg = f"{where} has content part {j} of type 'image_url' without a str image_url.url, got {image!r}"
                raise TypeError(msg)
        else:
            msg = f"{where} has content part {j} {part!r}; expected a dict of type 'text' or 'image_url'"
            raise TypeError(msg)


def without_nulls(value: Any) -> Any:
    """``value`` with null entries of its dicts removed, recursively: a chat read from a frame
    column, where Polars gives every struct the union of the fields (``{"type": "image_url",
    "text": None, ...}``), as it was written.

    >>> without_nulls([{"role": "user", "content": [{"type": "image_url", "text": None, "image_url": {"url": "u", "detail": None}}]}])
    [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': 'u'}}]}]
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def stored_chat(messages: Any) -> Any:
    """``messages`` as metadata stores them: content parts as their JSON text (``raw_input``
    holds strings); a chat of text messages is returned as it is.

    >>> stored_chat([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    [{'role': 'user', 'content': '[{"type":"text","text":"Hi"}]'}]
    """
    if messages is None or all(type(m.get("content")) is str for m in messages):
        return messages
    return [
        m if type(m.get("content")) is str else {**m, "content": msgspec.json.encode(m["content"]).decode()}
        for m in messages
    ]


def _shown(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") == "text":
            parts.append(part.get("text", ""))
        else:
            image = part.get("image_url")
            parts.append(f"[image: {image.get('url') if isinstance(image, dict) else image}]")
    return "\n".join(parts)


def print_chat(messages: Chat, *, title: str, file: Any = None) -> None:
    """Print a chat: on a terminal, one rich panel per message inside a panel titled
    ``title``; elsewhere (a pipe, a file, a notebook log) the plain :func:`format_chat` text.

    >>> import io
    >>> out = io.StringIO()
    >>> print_chat([user("Hi")], title="Prompt: t", file=out)
    >>> print(out.getvalue())
    Prompt: t
    <BLANKLINE>
    [user]
    Hi
    <BLANKLINE>
    """
    import sys

    from rich.console import Console, Group
    from rich.panel import Panel
    from rich.text import Text

    stream = file if file is not None else sys.stdout
    console = Console(file=stream)
    if not console.is_terminal:
        stream.write(f"{title}\n\n{format_chat(messages)}\n")
        return
    panels = [
        Panel(Text(_shown(m["content"])), title=f"[bold magenta]{m['role'].capitalize()} Message[/]", border_style="cyan")
        for m in messages
    ]
    console.print(Panel(Group(*panels), title=f"[bold magenta]{title}[/]", border_style="cyan", expand=False))


def format_chat(messages: Chat) -> str:
    """Render a chat as readable text, one block per message.

    >>> print(format_chat([user("Hi")]))
    [user]
    Hi
    """
    return "\n\n".join(f"[{m['role']}]\n{_shown(m['content'])}" for m in messages)
