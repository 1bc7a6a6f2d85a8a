"""Self-Instruct (arXiv 2212.10560): write new user queries for an application from a seed text.

The input column ``input`` holds a topic or a passage; the model writes
``num_instructions`` queries, read into the list column ``instructions``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from distilfn._types import Chat, Row
from distilfn.chat import chat
from distilfn.task import Parsed, Task, task
from distilfn.tasks._templates import render_template

__all__ = ["default_criteria", "parse_instruction_list", "self_instruct"]

_WORD_MARK = r"(?:instruction|query|question|task|prompt|request)"
_NUMBERED = re.compile(
    r"^[ \t]*(?:[-*\u2022+][ \t]+)?(?P<bold>\*\*|__)?[ \t]*(?:" + _WORD_MARK + r"[ \t]*#?[ \t]*)?"
    r"[(\[]?(\d{1,3})[ \t]*(?:[.)\]:]|[ \t]*[-\u2013])(?![0-9])[ \t]*(?(bold)(?:\*\*|__)?)[ \t]*(?:[:\-\u2013][ \t]+)?",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^[ \t]*[-*\u2022+][ \t]+")
_CHATTER = re.compile(
    r"^(?:here (?:are|is)|sure|certainly|of course|okay|below (?:are|is)|i hope|hope these|let me know|"
    r"these (?:queries|questions|instructions)|feel free)\b",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "\u201c": "\u201d"}
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(?!\d{1,3}[.)])\S")  # "# Output"; "# 1. ..." is an item
_FENCED = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _json_items(text: str) -> list[str] | None:
    """The strings of a JSON array that is the whole answer, a fenced block, or the lines
    from the first ``[`` line to the last ``]`` line; None when there is none."""
    lines = text.strip().split("\n")
    starts = [i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")]
    ends = [i for i, ln in enumerate(lines) if ln.rstrip().endswith("]")]
    candidates = [text.strip(), *(m.group(1) for m in _FENCED.finditer(text))]
    if starts and ends and ends[-1] >= starts[0]:
        candidates.append("\n".join(lines[starts[0] : ends[-1] + 1]))
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return [" ".join(v.split()) for v in value]
    return None


def default_criteria() -> str:
    """The default criteria for query generation (Self-Instruct / Alpaca requirements, condensed).

    >>> "self-contained" in default_criteria()
    True
    """
    return render_template("self_instruct/criteria.jinja2")


def _clean_item(item: str) -> str:
    t = re.sub(r"\s+", " ", item).strip()
    for _ in range(2):
        if len(t) >= 4 and t.startswith("**") and t.endswith("**") and "**" not in t[2:-2]:
            t = t[2:-2].strip()
        if len(t) >= 2 and t[0] in _QUOTES and t[-1] == _QUOTES[t[0]] and t[0] not in t[1:-1] and t[-1] not in t[1:-1]:
            t = t[1:-1].strip()
    return t


def _marked_items(lines: list[str], marker: re.Pattern[str]) -> list[str]:
    items: list[str] = []
    blank_since_item = False
    open_item = False
    for line in lines:
        match = marker.match(line)
        if match and line[match.end() :].strip():
            items.append(line[match.end() :])
            open_item, blank_since_item = True, False
        elif not line.strip():
            blank_since_item = True
        elif open_item and not blank_since_item:
            items[-1] += " " + line.strip()
    return items


def parse_instruction_list(text: str) -> list[str]:
    """Read a list of instructions from numbered, bulleted or plain line-separated text.

    Preambles ("Here are 3 queries:"), echoed headings ("# Output") and closing remarks
    are dropped; a numbered item's wrapped lines are joined; a JSON array of strings
    (fenced or bare) is read as the list.

    >>> parse_instruction_list("Here are 2 queries:\\n1. Define entropy.\\n2) Explain why\\n   ice floats.\\n\\nHope this helps!")
    ['Define entropy.', 'Explain why ice floats.']
    >>> parse_instruction_list("Instruction 1: Name a prime.\\nInstruction 2: Name a vowel.")
    ['Name a prime.', 'Name a vowel.']
    >>> parse_instruction_list("Name a prime.\\nName a vowel.")
    ['Name a prime.', 'Name a vowel.']
    >>> parse_instruction_list('# Output\\n```json\\n["Name a prime.", "Name a vowel."]\\n```')
    ['Name a prime.', 'Name a vowel.']
    """
    if not isinstance(text, str):
        return []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    from_json = _json_items(text)
    if from_json is not None:
        return [i for i in (_clean_item(item) for item in from_json) if i]
    lines = [
        re.sub(r"^[ \t]*#{1,6}[ \t]+", "", ln)  # "# 1. Query" (a numbered item written as a heading)
        for ln in text.split("\n")
        if not ln.strip().startswith("```") and not _HEADING.match(ln)
    ]
    if sum(1 for ln in lines if _NUMBERED.match(ln) and ln[_NUMBERED.match(ln).end() :].strip()) >= 1:  # type: ignore[union-attr]
        raw = _marked_items(lines, _NUMBERED)
    elif any(_BULLET.match(ln) for ln in lines):
        raw = _marked_items(lines, _BULLET)
    else:
        raw = [ln for ln in lines if ln.strip()]
        while raw and (raw[0].rstrip().endswith(":") or _CHATTER.match(raw[0].strip())):
            raw = raw[1:]
        raw = [ln for ln in raw if not _CHATTER.match(ln.strip())]
    items = [_clean_item(i) for i in raw]
    return [i for i in items if i]


def _render(
    row: Row, *, num_instructions: int, criteria: str, application_description: str, system_prompt: str | None
) -> Chat:
    """The query-writing chat for one row's ``input``."""
    prompt = render_template(
        "self_instruct/generate.jinja2",
        num_instructions=num_instructions,
        criteria_for_query_generation=criteria,
        application_description=application_description,
        input=row["input"],
    )
    return chat(prompt, system_prompt=system_prompt)


def _parse(text: str, *, num_instructions: int) -> Parsed:
    """The listed queries: the first ``num_instructions`` (a note says when there were more);
    fewer are kept with an error."""
    items = parse_instruction_list(text)
    if not items:
        return Parsed(values={"instructions": None}, error="no instructions could be read from the answer")
    if len(items) < num_instructions:
        return Parsed(values={"instructions": items}, error=f"expected {num_instructions} instructions, read {len(items)}")
    if len(items) > num_instructions:
        note = f"the answer listed {len(items)} instructions; kept the first {num_instructions}"
        return Parsed(values={"instructions": items[:num_instructions]}, note=note)
    return Parsed(values={"instructions": items})


def self_instruct(
    *,
    num_instructions: int = 5,
    application_description: str = "AI assistant",
    criteria_for_query_generation: str | None = None,
    system_prompt: str | None = None,
    name: str = "self_instruct",
    params: Mapping[str, Any] | None = None,
) -> Task:
    """Write ``num_instructions`` queries for the application from each row's ``input``.

    Output ``instructions``: a list of strings. A shorter list is kept with an error
    saying how many were read; extra items beyond ``num_instructions`` are dropped.

    >>> t = self_instruct(num_instructions=2)
    >>> "# Context\\nphotosynthesis" in t.chat_for({"input": "photosynthesis"})[-1]["content"]
    True
    >>> t.read("1. What is chlorophyll?\\n2. Describe the light reactions.").values
    {'instructions': ['What is chlorophyll?', 'Describe the light reactions.']}
    >>> t.read("1. What is chlorophyll?").error
    'expected 2 instructions, read 1'
    """
    if isinstance(num_instructions, bool) or not isinstance(num_instructions, int) or num_instructions < 1:
        msg = f"self_instruct: num_instructions must be a whole number >= 1, got {num_instructions!r}"
        raise ValueError(msg)
    criteria = default_criteria() if criteria_for_query_generation is None else criteria_for_query_generation
    return task(
        name=name,
        inputs=["input"],
        outputs={"instructions": list[str]},
        render=partial(
            _render,
            num_instructions=num_instructions,
            criteria=criteria,
            application_description=application_description,
            system_prompt=system_prompt,
        ),
        parse=partial(_parse, num_instructions=num_instructions),
        params=params,
        example={"input": "photosynthesis"},
        description=f"write {num_instructions} queries for: {application_description}",
    )
