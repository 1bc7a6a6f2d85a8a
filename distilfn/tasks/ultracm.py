"""UltraCM: a teacher's critique and an overall score 1-10 for each generation.

Cui et al., 2023, "UltraFeedback: Boosting Language Models with Scaled AI Feedback",
arXiv:2310.01377 (OpenBMB/UltraFeedback ``annotate_critique.py``, the prompt UltraCM was
trained on). With one generation the prompt is the paper's; with several, one
``### Feedback for Answer i`` section each.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from distilfn.chat import chat
from distilfn.parsing import as_texts, read_score, split_blocks
from distilfn.task import Parsed, Task, task
from distilfn.tasks._counts import count_of
from distilfn.tasks._templates import render_template

__all__ = ["parse_critique", "parse_ultracm", "ultracm"]

_SCALE = (1, 10)
_HEADER = re.compile(
    r"^[ \t#*_>]*(?:feedback|critique|output)[ \t]+for[ \t]+(?:answer|text|response)"
    r"[ \t]*(?:#[ \t]*)?(\d{1,4})\b[^\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SCORE = re.compile(
    r"^[ \t>*_\-]*(?:overall\s+)?(?:score|rating)[ \t*_]*[:：][ \t*_]*(.*)$", re.IGNORECASE | re.MULTILINE
)
_FEEDBACK_HEAD = re.compile(r"^\s*(?:#+\s*)?[*_]*feedback[*_]*\s*:?[*_]*\s*\n?", re.IGNORECASE)


def parse_critique(text: str, *, where: str = "") -> tuple[str | None, float | None, list[str]]:
    """One critique: the feedback text and the ``Overall Score:`` (last one wins).

    >>> parse_critique("### Feedback\\nBe more concise.\\nOverall Score: 7/10")
    ('Be more concise.', 7.0, [])
    """
    errors: list[str] = []
    matches = list(_SCORE.finditer(text))
    if not matches:
        critique = _FEEDBACK_HEAD.sub("", text.strip(), count=1).strip() or None
        errors.append(f"score{where} missing")
        return critique, None, errors
    last = matches[-1]
    score = read_score(last.group(1), scale=_SCALE, integer=False, what=f"score{where}")
    if score.error:
        errors.append(score.error)
    critique = _FEEDBACK_HEAD.sub("", text[: last.start()].strip(), count=1).strip() or None
    if critique is None:
        errors.append(f"critique{where} missing")
    return critique, score.value, errors


def parse_ultracm(text: str, *, n: int | None = None) -> Parsed:
    """Read one critique and score per answer (``### Feedback for Answer i`` sections).

    >>> text = "### Feedback for Answer 1\\nGood.\\nOverall Score: 8\\n"
    >>> text += "### Feedback for Answer 2\\nBad.\\nOverall Score: 2"
    >>> parse_ultracm(text).values
    {'critiques': ['Good.', 'Bad.'], 'scores': [8.0, 2.0]}
    """
    if not isinstance(text, str) or not text.strip():
        return Parsed(values={"critiques": None, "scores": None}, error="no model output")
    found = split_blocks(text, header=_HEADER)
    if not found and n in (None, 1):
        found = {1: text}
    if not found:
        return Parsed(values={"critiques": None, "scores": None}, error="no '### Feedback for Answer i' sections found")
    count = n if n is not None else max(found)
    critiques: list[str | None] = []
    scores: list[float | None] = []
    errors: list[str] = []
    for i in range(1, count + 1):
        if i not in found:
            critiques.append(None)
            scores.append(None)
            errors.append(f"critique for answer {i} missing")
            continue
        critique, score, block_errors = parse_critique(found[i], where=f" for answer {i}")
        critiques.append(critique)
        scores.append(score)
        errors.extend(block_errors)
    return Parsed(values={"critiques": critiques, "scores": scores}, error="; ".join(errors) or None)


def _parse_row(text: str, row: dict[str, Any], *, n: int | None) -> Parsed:
    """Read an answer expecting one critique per generation of ``row`` (or ``n``)."""
    return parse_ultracm(text, n=count_of(row, "generations", n))


def _render(row: dict[str, Any]) -> list[dict[str, str]]:
    generations = as_texts(row["generations"], column="generations", where="ultracm")
    prompt = render_template(
        "ultracm/critique.jinja2", instruction=row["instruction"], generations=generations, n=len(generations)
    )
    return chat(prompt, system_prompt=render_template("ultracm/system.jinja2"))


def ultracm(*, num_generations: int | None = None, name: str = "ultracm") -> Task:
    """The UltraCM critic: ``critiques`` and ``scores`` (1-10), one each per generation.

    >>> ultracm().read("### Feedback\\nAdd an example.\\nOverall Score: 6").values
    {'critiques': ['Add an example.'], 'scores': [6.0]}
    """
    return task(
        name=name,
        inputs=["instruction", "generations"],
        outputs={"critiques": list[str], "scores": list[float]},
        render=_render,
        parse=partial(_parse_row, n=num_generations),
        role="judge",
        defaults={"max_tokens": 1024},
        list_lengths={"critiques": "generations", "scores": "generations"},
        example={
            "instruction": "Explain why the sky is blue in one sentence.",
            "generations": ["Because of Rayleigh scattering of sunlight by air molecules.", "It reflects the sea."],
        },
        description="UltraCM critique and overall score 1-10 for each generation",
    )
