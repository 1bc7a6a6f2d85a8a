"""Prometheus 2: rubric-based grading, absolute (1-5) or relative (A or B).

Kim et al., 2024, "Prometheus 2: An Open Source Language Model Specialized in Evaluating
Other Language Models", arXiv:2405.01535 (prometheus-eval/prometheus-eval). The judge
writes its feedback, then ``[RESULT] 4`` (absolute) or ``[RESULT] A`` (relative).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any, Literal

from distilfn.chat import chat
from distilfn.parsing import as_texts, normalise, read_score, strip_markup
from distilfn.task import Parsed, Task, task
from distilfn.tasks._templates import render_template

__all__ = ["RUBRICS", "parse_prometheus", "prometheus", "rubric_text"]

RUBRICS: tuple[str, ...] = ("helpfulness", "harmlessness", "honesty", "factual-validity", "reasoning")
"""The paper's default rubrics, shipped as ``templates/prometheus/rubric_<name>.jinja2``."""
_RUBRIC_KEYS = ("criteria", *(f"score{i}_description" for i in range(1, 6)))
_RESULT = re.compile(r"\[\s*RESULT\s*\]|\bRESULT\s*:", re.IGNORECASE)
_FALLBACK_SCORE = re.compile(
    r"^[ \t*_#]*(?:final\s+)?(?:score|result)[ \t*_]*[:：][ \t*_]*(.+)$", re.IGNORECASE | re.MULTILINE
)
_FEEDBACK_HEAD = re.compile(r"^\s*(?:#+\s*)?[*_]*feedback[*_]*\s*:[*_]*\s*", re.IGNORECASE)
_ECHO = re.compile(r"\bA\s+or\s+B\b|integer\s+number\s+between", re.IGNORECASE)
_CHOICE = re.compile(r"^[\s*_:(\[\"']*(?:response\s+|assistant\s+)?([AB])\b", re.IGNORECASE)


def rubric_text(rubric: str | Mapping[str, str], *, relative: bool = False) -> str:
    """The rubric block of the prompt, for a named default rubric or a custom mapping.

    A custom rubric has ``criteria`` and ``score1_description`` .. ``score5_description``
    (relative grading uses only the criteria).

    >>> print(rubric_text({"criteria": "Is it short?"}, relative=True))
    [Is it short?]
    """
    if isinstance(rubric, str):
        key = rubric.replace("_", "-")
        if key not in RUBRICS:
            msg = f"prometheus: unknown rubric {rubric!r}; choose one of {sorted(RUBRICS)} or pass a dict"
            raise ValueError(msg)
        text = render_template(f"prometheus/rubric_{key}.jinja2")
        return text.split("\n", 1)[0] if relative else text
    elif isinstance(rubric, Mapping):
        needed = ("criteria",) if relative else _RUBRIC_KEYS
        missing = [k for k in needed if not isinstance(rubric.get(k), str) or not rubric.get(k)]
        if missing:
            msg = f"prometheus: custom rubric lacks {missing}; it needs {list(needed)}, got keys {sorted(rubric)}"
            raise ValueError(msg)
        values = {k: str(rubric.get(k, "")) for k in _RUBRIC_KEYS}
    else:
        msg = f"prometheus: `rubric` must be a rubric name or a dict, got {rubric!r}"
        raise TypeError(msg)
    return render_template("prometheus/rubric.jinja2", relative=relative, **values)


def parse_prometheus(text: str, *, mode: Literal["absolute", "relative"] = "absolute") -> Parsed:
    """Read ``(feedback) [RESULT] 4`` (absolute, 1-5) or ``[RESULT] A`` (relative).

    The last ``[RESULT]`` wins; a ``Score: 4`` line is read when there is none.

    >>> parse_prometheus("Feedback: Clear but brief. [RESULT] 4").values
    {'feedback': 'Clear but brief.', 'result': 4}
    >>> parse_prometheus("Response B is better. [RESULT] Response B", mode="relative").values
    {'feedback': 'Response B is better.', 'result': 'B'}
    """
    if not isinstance(text, str) or not text.strip():
        return Parsed(values={"feedback": None, "result": None}, error="no model output")
    markers = list(_RESULT.finditer(text))
    if markers:
        feedback_text, result_text = text[: markers[-1].start()], text[markers[-1].end() :]
    else:
        fallback = list(_FALLBACK_SCORE.finditer(text))
        if not fallback:
            feedback = _FEEDBACK_HEAD.sub("", text.strip(), count=1).strip() or None
            return Parsed(values={"feedback": feedback, "result": None}, error="no '[RESULT]' found")
        feedback_text, result_text = text[: fallback[-1].start()], fallback[-1].group(1)
    feedback = strip_markup(_FEEDBACK_HEAD.sub("", normalise(feedback_text).strip(), count=1)) or None
    errors = [] if feedback else ["feedback missing"]
    result_line = result_text.strip().split("\n", 1)[0]
    result: int | str | None
    if _ECHO.search(result_line):  # the model copied the prompt's format line
        errors.append(f"result is {result_line.strip()[:40]!r}, an echo of the prompt")
        result = None
    elif mode == "relative":
        choice = _CHOICE.match(result_line)
        result = choice.group(1).upper() if choice else None
        if result is None:
            errors.append(f"result is {result_line.strip()[:40]!r}, expected 'A' or 'B'")
    else:
        score = read_score(result_line.strip(" \t:()[]"), scale=(1, 5), integer=True, what="result")
        result = score.value
        if score.error:
            errors.append(score.error)
    return Parsed(values={"feedback": feedback, "result": result}, error="; ".join(errors) or None)


def _render_absolute(row: dict[str, Any], *, rubric: str) -> list[dict[str, str]]:
    prompt = render_template(
        "prometheus/absolute.jinja2",
        instruction=row["instruction"],
        response=row["generation"],
        reference=row.get("reference"),
        rubric=rubric,
    )
    return chat(prompt, system_prompt=render_template("prometheus/absolute_system.jinja2"))


def _render_relative(row: dict[str, Any], *, rubric: str) -> list[dict[str, str]]:
    a, b = as_texts(row["generations"], column="generations", where="prometheus (relative)", count=2)
    prompt = render_template(
        "prometheus/relative.jinja2",
        instruction=row["instruction"],
        response_a=a,
        response_b=b,
        reference=row.get("reference"),
        rubric=rubric,
    )
    return chat(prompt, system_prompt=render_template("prometheus/relative_system.jinja2"))


def prometheus(
    *,
    mode: Literal["absolute", "relative"] = "absolute",
    rubric: str | Mapping[str, str] = "helpfulness",
    reference: bool = False,
    name: str | None = None,
) -> Task:
    """The Prometheus 2 grader: ``feedback`` and ``result``.

    ``mode="absolute"`` grades ``generation`` 1-5; ``mode="relative"`` picks the better of
    the two ``generations`` ("A" or "B"). ``rubric`` is one of helpfulness, harmlessness,
    honesty, factual-validity, reasoning, or a dict with ``criteria`` and
    ``score1_description`` .. ``score5_description``. With ``reference=True`` the task also
    reads a ``reference`` column (the answer that earns a 5).

    >>> prometheus().inputs, prometheus(mode="relative", reference=True).inputs
    (('instruction', 'generation'), ('instruction', 'generations', 'reference'))
    """
    if mode not in ("absolute", "relative"):
        msg = f"prometheus: `mode` must be 'absolute' or 'relative', got {mode!r}"
        raise ValueError(msg)
    relative = mode == "relative"
    text = rubric_text(rubric, relative=relative)
    answers = "generations" if relative else "generation"
    inputs = ["instruction", answers, *(["reference"] if reference else [])]
    example: dict[str, Any] = {"instruction": "Give one tip for better sleep."}
    if relative:
        example["generations"] = ["Keep a regular sleep schedule, even on weekends.", "Drink coffee before bed."]
    else:
        example["generation"] = "Keep a regular sleep schedule, even on weekends."
    if reference:
        example["reference"] = "Go to bed and wake up at the same time every day."
    render = _render_relative if relative else _render_absolute
    rubric_name = rubric if isinstance(rubric, str) else "custom"
    return task(
        name=name or f"prometheus_{mode}",
        inputs=inputs,
        outputs={"feedback": str, "result": str if relative else int},
        render=partial(render, rubric=text),
        parse=partial(parse_prometheus, mode=mode),
        role="judge",
        defaults={"max_tokens": 1024},  # feedback then "[RESULT]"; the paper trains on short feedback
        example=example,
        description=f"Prometheus 2 {mode} grading on the {rubric_name} rubric",
    )
