"""URIAL: align a model with a fixed in-context prompt instead of fine-tuning.

Lin et al., 2023, "The Unlocking Spell on Base LLMs: Rethinking Alignment via In-Context
Learning", arXiv:2312.01552. The whole conversation goes into one prompt, each turn under
``# User:`` or ``# Assistant:``, and the model writes the next ``# Assistant:`` turn; a
base model often goes on to write the next ``# User:`` turn too, which is cut off.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from distilfn._types import Chat, Row
from distilfn.chat import chat
from distilfn.task import Parsed, Task, task
from distilfn.tasks._templates import render_template

__all__ = ["read_urial", "urial", "URIAL_MAX_TOKENS"]

URIAL_MAX_TOKENS = 1024
"""Default ``max_tokens``: URIAL asks for well-structured, detailed answers; a base model
without a stop often keeps writing turns, and the cap bounds that."""

_NEXT_TURN = re.compile(r"^[ \t]*#[ \t]*(?:User|Query)[ \t]*:", re.IGNORECASE | re.MULTILINE)


def read_urial(text: str) -> Parsed:
    """The assistant's turn: the text up to a ``# User:`` turn the model went on to write.

    >>> read_urial("Paris is the capital.\\n\\n# User:\\nAnd Spain?").values
    {'generation': 'Paris is the capital.'}
    >>> read_urial("# User: hi").error
    'the model returned an empty answer'
    """
    cut = _NEXT_TURN.search(text)
    answer = (text[: cut.start()] if cut else text).strip()
    if answer.startswith("# Assistant:"):
        answer = answer[len("# Assistant:") :].strip()
    if not answer:
        return Parsed(values={"generation": None}, error="the model returned an empty answer")
    return Parsed(values={"generation": answer})


def _turns(row: Row, column: str) -> list[dict[str, str]]:
    if column == "instruction":
        return [{"role": "user", "content": str(row["instruction"])}]
    conversation = row["conversation"]
    if not isinstance(conversation, list) or not conversation:
        msg = f"urial: column 'conversation' must be a non-empty list of {{'role', 'content'}} messages, got {conversation!r}"
        raise TypeError(msg)
    turns = []
    for i, message in enumerate(conversation):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant") or not isinstance(message.get("content"), str):
            msg = f"urial: message {i} of 'conversation' must be a user or assistant message with text content, got {message!r}"
            raise TypeError(msg)
        turns.append({"role": message["role"], "content": message["content"]})
    if turns[-1]["role"] != "user":
        msg = "urial: the 'conversation' must end with a user message (the turn to answer)"
        raise ValueError(msg)
    return turns


def _render(row: Row, *, column: str) -> Chat:
    return chat(render_template("urial/urial.jinja2", turns=_turns(row, column)))


def urial(*, conversation: bool = False, name: str = "urial", params: dict[str, Any] | None = None) -> Task:
    """The URIAL prompt, a task: answer ``instruction`` (or, with ``conversation=True``, the
    last user turn of the ``conversation`` column, a list of user/assistant messages) ->
    ``generation``.

    >>> print(urial().preview({"instruction": "<PLACEHOLDER_INSTRUCTION>"}).split("\\n\\n", 1)[0])
    [user]
    # Instruction
    >>> urial().read("Sure! Paris.\\n# User: next").values
    {'generation': 'Sure! Paris.'}
    """
    column = "conversation" if conversation else "instruction"
    example: dict[str, Any] = (
        {"conversation": [{"role": "user", "content": "What is the capital of France?"}]}
        if conversation
        else {"instruction": "What is the capital of France?"}
    )
    return task(
        name=name,
        inputs=[column],
        outputs={"generation": str},
        render=partial(_render, column=column),
        parse=read_urial,
        defaults={"max_tokens": URIAL_MAX_TOKENS}, params=dict(params or {}),
        example=example,
        description="answer with the URIAL in-context alignment prompt",
    )
