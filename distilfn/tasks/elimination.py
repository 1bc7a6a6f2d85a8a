"""WizardLM Elimination Evolving (arXiv 2304.12244, Section 3.2): spot failed evolutions.

An evolution fails when
1. it brings no information gain over the original (an equality judge says "Equal");
2. the answer apologises ("sorry") and is short (under 80 words);
3. the answer holds only punctuation and stop words;
4. the evolved instruction copies words of the evolving prompt ("given prompt", ...).

:func:`eliminate_failed_evolutions` flags rows with ``eliminated`` and
``elimination_reason`` (or drops them with ``drop=True``); :func:`elimination_reason`
is the pure rule set, :func:`equal_prompts_judge` the task for rule 1.
"""

from __future__ import annotations

import re
import string
from functools import partial
from typing import Any

import polars as pl

from distilfn._types import Chat, Row
from distilfn.chat import chat
from distilfn.steps import filter_rows, map_rows
from distilfn.plan import Plan
from distilfn.task import Parsed, Task, task
from distilfn.tasks._templates import render_template

__all__ = [
    "STOP_WORDS",
    "PROMPT_WORDS",
    "read_equal",
    "equal_prompts_judge",
    "elimination_reason",
    "flag_row",
    "kept",
    "eliminate_failed_evolutions",
]

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves ok okay yes oh um uh
    well""".split()
)
"""English stop words for rule 3 (a common list, lower case)."""

PROMPT_WORDS = (
    "#the given prompt#",
    "#given prompt#",
    "#rewritten prompt#",
    "#created prompt#",
    "given prompt",
    "rewritten prompt",
    "created prompt",
)
"""Words of the evolving prompts that must not leak into an evolved instruction (rule 4)."""

_SORRY = re.compile(r"\bsorry\b", re.IGNORECASE)
_NOT_EQUAL = re.compile(r"\b(?:not\s+equal|unequal|not\s+the\s+same|different|differ)\b", re.IGNORECASE)
_EQUAL = re.compile(r"\b(?:equal|the\s+same|identical|equivalent)\b", re.IGNORECASE)


def read_equal(text: str) -> Parsed:
    """Read the judge's verdict: ``equal`` is True for "Equal", False for "Not Equal".

    >>> read_equal("Not Equal").values, read_equal("**Equal**.").values
    ({'equal': False}, {'equal': True})
    >>> read_equal("I cannot tell.").error
    "the judge answered neither 'Equal' nor 'Not Equal'"
    """
    t = text.strip()
    if _NOT_EQUAL.search(t):
        return Parsed(values={"equal": False})
    if _EQUAL.search(t):
        return Parsed(values={"equal": True})
    head = t.lstrip(string.punctuation + " \n").lower()
    if head.startswith("yes"):
        return Parsed(values={"equal": True})
    if head.startswith("no"):
        return Parsed(values={"equal": False})
    return Parsed(values={"equal": None}, error="the judge answered neither 'Equal' nor 'Not Equal'")


def _render_equal(row: Row, *, system_prompt: str | None) -> Chat:
    """WizardLM's equality prompt for the row's two instructions."""
    prompt = render_template(
        "evol_instruct/equal_prompts.jinja2",
        first_instruction=row["first_instruction"],
        second_instruction=row["second_instruction"],
    )
    return chat(prompt, system_prompt=system_prompt)


def equal_prompts_judge(
    *,
    first: str = "instruction",
    second: str = "evolved_instruction",
    system_prompt: str | None = "You are an AI judge in charge of determining the equality of two instructions.",
    name: str = "equal_prompts",
) -> Task:
    """Ask the ``judge`` model whether two prompts are equal (WizardLM's equality prompt).

    Reads frame columns ``first`` and ``second``; output ``equal`` (bool).

    >>> j = equal_prompts_judge()
    >>> j.input_columns, j.role
    (('instruction', 'evolved_instruction'), 'judge')
    >>> "The Second Prompt: B" in j.chat_for({"instruction": "A", "evolved_instruction": "B"})[-1]["content"]
    True
    """
    t = task(
        name=name,
        inputs=["first_instruction", "second_instruction"],
        outputs={"equal": bool},
        render=partial(_render_equal, system_prompt=system_prompt),
        parse=read_equal,
        role="judge",
        defaults={"max_tokens": 32},  # the prompt asks for "Equal" or "Not Equal"
        example={"first_instruction": "Name a fruit.", "second_instruction": "Name a red fruit."},
        description="are the two prompts equal?",
    )
    return t.map_inputs(first_instruction=first, second_instruction=second)


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower())


def elimination_reason(
    evolved: Any,
    answer: Any = None,
    *,
    equal: bool | None = None,
    sorry_max_words: int = 80,
) -> str | None:
    """Why an evolution failed by WizardLM's rules, or None when it passed.

    >>> elimination_reason("Sort 3, 1, 2 in descending order.", "3, 2, 1") is None
    True
    >>> elimination_reason("Sort the given prompt's numbers.", "3, 2, 1")
    "the evolved instruction copies 'given prompt' from the evolving prompt"
    >>> elimination_reason("Prove P = NP.", "I'm sorry, I can't do that.")
    'the answer apologises ("sorry") in under 80 words'
    >>> elimination_reason("Say something.", "Well... it is, and the.")
    'the answer holds only punctuation and stop words'
    """
    if not isinstance(evolved, str) or not evolved.strip():
        return "no evolved instruction (the rewrite failed)"
    if equal is True:
        return "no information gain: the judge found the evolved instruction equal to the original"
    lowered = evolved.lower()
    for words in PROMPT_WORDS:
        if words in lowered:
            return f"the evolved instruction copies {words!r} from the evolving prompt"
    if isinstance(answer, str):
        words = _words(answer)
        if _SORRY.search(answer) and len(answer.split()) < sorry_max_words:
            return f'the answer apologises ("sorry") in under {sorry_max_words} words'
        if all(w in STOP_WORDS for w in words):
            return "the answer holds only punctuation and stop words"
    return None


def flag_row(
    row: Row, *, evolved: str, answer: str | None, judged: bool, sorry_max_words: int
) -> dict[str, Any]:
    """``eliminated`` and ``elimination_reason`` for one row (its ``equal`` column read when ``judged``)."""
    reason = elimination_reason(
        row.get(evolved),
        row.get(answer) if answer else None,
        equal=row.get("equal") if judged else None,
        sorry_max_words=sorry_max_words,
    )
    return {"eliminated": reason is not None, "elimination_reason": reason}


def kept(row: Row) -> bool:
    """Whether a flagged row stays (it was not eliminated)."""
    return not row["eliminated"]


def eliminate_failed_evolutions(
    *,
    evolved: str = "evolved_instruction",
    original: str = "instruction",
    answer: str | None = "answer",
    judge_equal: Task | bool | None = None,
    drop: bool = False,
    sorry_max_words: int = 80,
    name: str = "eliminate",
) -> Plan:
    """A plan step flagging failed evolutions: adds ``eliminated`` (bool) and ``elimination_reason``.

    Reads ``evolved`` and ``answer`` (None to skip the answer rules 2-3). ``judge_equal=True``
    adds :func:`equal_prompts_judge` on (``original``, ``evolved``) for rule 1, or pass your
    own task with a bool output ``equal``. ``drop=True`` removes the failed rows instead of keeping
    them flagged. Works on single columns (``store_evolutions=False``).

    >>> print(eliminate_failed_evolutions(judge_equal=True))
    Plan
      1. equal_prompts  [judge]  instruction, evolved_instruction -> equal
      2. eliminate  [map]  evolved_instruction, answer, equal -> eliminated, elimination_reason
    """
    judge: Task | None
    if judge_equal is True:
        judge = equal_prompts_judge(first=original, second=evolved)
    elif judge_equal is None or judge_equal is False:
        judge = None
    elif isinstance(judge_equal, Task):
        if "equal" not in judge_equal.output_columns:
            msg = f"eliminate_failed_evolutions: judge_equal must write an 'equal' column, got outputs {list(judge_equal.output_columns)}"
            raise ValueError(msg)
        if judge_equal.output_dtypes["equal"] != pl.Boolean:
            msg = (
                "eliminate_failed_evolutions: judge_equal must declare its 'equal' column as bool "
                f"(outputs={{'equal': bool}}), got {judge_equal.output_dtypes['equal']}"
            )
            raise TypeError(msg)
        judge = judge_equal
    else:
        msg = f"eliminate_failed_evolutions: judge_equal must be None, True or a Task, got {judge_equal!r}"
        raise TypeError(msg)

    inputs = [evolved] + ([answer] if answer else []) + (["equal"] if judge is not None else [])
    flag = partial(
        flag_row, evolved=evolved, answer=answer, judged=judge is not None, sorry_max_words=sorry_max_words
    )
    plan = map_rows(flag, outputs={"eliminated": bool, "elimination_reason": str}, inputs=inputs, name=name)
    if judge is not None:
        plan = judge >> plan
    if drop:
        plan = plan >> filter_rows(kept, inputs=["eliminated"], name=f"{name}_drop")
    return plan
