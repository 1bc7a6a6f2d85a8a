"""Chat generation: answer the last user turn of a multi-turn chat (a ``messages`` column).

The column holds OpenAI-style messages (``{"role", "content"}``, content text or a list of
``text`` / ``image_url`` parts); they are sent as they are (less the null fields a Polars
struct column adds to each part).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from distilfn._types import Chat, Row
from distilfn.chat import check_chat, system, without_nulls
from distilfn.task import Task, task
from distilfn.tasks.text_generation import read_generation

__all__ = ["chat_generation"]


def _render(row: Row, *, system_prompt: str | None) -> Chat:
    messages = row["messages"]
    if not isinstance(messages, list):
        msg = f"chat_generation: column 'messages' must be a list of {{'role', 'content'}} messages, got {messages!r}"
        raise TypeError(msg)
    messages = check_chat(without_nulls(messages), where="chat_generation: column 'messages'")
    if messages[-1]["role"] != "user":
        msg = f"chat_generation: column 'messages' must end with a user message (the turn to answer), got {messages[-1]['role']!r}"
        raise ValueError(msg)
    if system_prompt and messages[0]["role"] != "system":
        messages = [system(system_prompt), *messages]
    return messages


def chat_generation(
    *, system_prompt: str | None = None, name: str = "chat_generation", params: dict[str, Any] | None = None
) -> Task:
    """Answer each row's ``messages`` (a multi-turn chat ending with the user) -> ``generation``.

    ``system_prompt`` is put first when the chat has no system message of its own.

    >>> t = chat_generation(system_prompt="Be brief.")
    >>> t.chat_for({"messages": [{"role": "user", "content": "Hi"}]})[0]
    {'role': 'system', 'content': 'Be brief.'}
    >>> t.read(" Hello! ").values
    {'generation': 'Hello!'}
    """
    return task(
        name=name,
        inputs=["messages"],
        outputs={"generation": str},
        render=partial(_render, system_prompt=system_prompt),
        parse=read_generation,
        params=params,
        example={
            "messages": [
                {"role": "user", "content": "Name a yellow fruit."},
                {"role": "assistant", "content": "A banana."},
                {"role": "user", "content": "And a red one?"},
            ]
        },
        description="answer the last user turn of the chat",
    )
