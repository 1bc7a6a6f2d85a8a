"""Deita scorers: rank-and-score instructions by complexity, or responses by quality.

Liu et al., 2023, "What Makes Good Data for Alignment? A Comprehensive Study of Automatic
Data Selection in Instruction Tuning", arXiv:2312.15685 (hkust-nlp/deita). The judge
sees k items at once and answers ``[i] Score: s`` lines with scores 1..k+1 (k+1 for
"too complex to answer" / "cannot be improved further").
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Annotated, Any

import msgspec

from distilfn.chat import chat
from distilfn.parsing import as_texts, extract_json, read_indexed_scores
from distilfn.task import Parsed, Task, task
from distilfn.tasks._counts import count_of
from distilfn.tasks._templates import render_template

__all__ = ["DeitaScores", "complexity_scorer", "quality_scorer"]


class DeitaScores(msgspec.Struct, frozen=True, kw_only=True):
    """Structured answer: one score per item, in order."""

    scores: list[float]


@lru_cache(maxsize=64)
def _strict_schema(n: int | None) -> type:
    """What the model is asked for: scores from 1, exactly ``n`` of them (at most n+1) when known."""
    if n is None:
        scores: Any = list[Annotated[float, msgspec.Meta(ge=1)]]
    else:
        score = Annotated[float, msgspec.Meta(ge=1, le=n + 1)]
        scores = Annotated[list[score], msgspec.Meta(min_length=n, max_length=n)]
    return msgspec.defstruct("DeitaScores", [("scores", scores)], frozen=True, kw_only=True, module=__name__)


def _check(scores: list[float], n: int | None, noun: str) -> Parsed:
    """Check a JSON list of scores: range, and count (a list of another length than ``n`` is
    null: which score is whose cannot be told)."""
    if n is not None and len(scores) != n:
        return Parsed(values={"scores": None}, error=f"expected {n} scores, got {len(scores)}: a JSON list of another length cannot be matched to the {noun}s")
    count = n if n is not None else len(scores)
    out: list[float | None] = []
    errors: list[str] = []
    for i in range(1, count + 1):
        if i > len(scores):
            out.append(None)
            errors.append(f"score for {noun} {i} missing")
            continue
        value = float(scores[i - 1])
        if not 1 <= value <= count + 1:
            out.append(None)
            errors.append(f"score for {noun} {i} is {value:g}, outside the scale 1-{count + 1}")
        else:
            out.append(value)
    if len(scores) > count:
        errors.append(f"expected {count} scores, got {len(scores)}")
    return Parsed(values={"scores": out}, error="; ".join(errors) or None)


def _from_schema(value: Any, *, n: int | None, noun: str) -> Parsed:
    return _check(list(value.scores), n, noun)


def _parse(text: str, *, n: int | None, noun: str) -> Parsed:
    scores, error = read_indexed_scores(text, n=n, noun=noun)
    if scores is None:
        found = extract_json(text, kind=dict)
        if found is not None:
            try:
                return _check(list(msgspec.convert(found, type=DeitaScores).scores), n, noun)
            except (msgspec.ValidationError, TypeError):
                pass
    return Parsed(values={"scores": scores}, error=error)


def _row_schema(row: dict[str, Any], *, column: str, n: int | None) -> type:
    """The schema for one row: exactly one score per item of the row's ``column``."""
    return _strict_schema(count_of(row, column, n))


def _parse_row(text: str, row: dict[str, Any], *, column: str, n: int | None, noun: str) -> Parsed:
    """Read an answer expecting one score per item of the row's ``column`` (or ``n``)."""
    return _parse(text, n=count_of(row, column, n), noun=noun)


def _render_complexity(row: dict[str, Any], *, task_description: str | None) -> list[dict[str, str]]:
    instructions = as_texts(row["instructions"], column="instructions", where="complexity_scorer")
    prompt = render_template(
        "deita/complexity_scorer.jinja2",
        instructions=instructions,
        n=len(instructions),
        task_description=task_description,
    )
    return chat(prompt)


def _render_quality(row: dict[str, Any], *, task_description: str | None) -> list[dict[str, str]]:
    responses = as_texts(row["generations"], column="generations", where="quality_scorer")
    prompt = render_template(
        "deita/quality_scorer.jinja2",
        instruction=row["instruction"],
        responses=responses,
        n=len(responses),
        task_description=task_description,
    )
    return chat(prompt)


def complexity_scorer(
    *, task_description: str | None = None, num_instructions: int | None = None, name: str = "complexity_scorer"
) -> Task:
    """Score each of ``instructions`` (a list) for complexity: ``scores``, one float per instruction.

    One score per instruction of the row is expected (``num_instructions`` fixes the count).

    >>> scorer = complexity_scorer()
    >>> scorer.read("[1] Score: 1\\n[2] Score: 3").values
    {'scores': [1.0, 3.0]}
    """
    return task(
        name=name,
        inputs=["instructions"],
        outputs={"scores": list[float]},
        render=partial(_render_complexity, task_description=task_description),
        parse=partial(_parse_row, column="instructions", n=num_instructions, noun="instruction"),
        role="judge",
        defaults={"max_tokens": 256},
        schema=partial(_row_schema, column="instructions", n=num_instructions),
        list_lengths={"scores": "instructions"},
        from_schema=partial(_from_schema, n=num_instructions, noun="instruction"),
        example={
            "instructions": [
                "Write a poem.",
                "Write a sonnet about autumn in iambic pentameter.",
                "Write a sonnet about autumn in iambic pentameter whose first letters spell FALL.",
            ]
        },
        description="Deita complexity score (1..k+1) for each instruction",
    )


def quality_scorer(
    *, task_description: str | None = None, num_generations: int | None = None, name: str = "quality_scorer"
) -> Task:
    """Score each of ``generations`` for ``instruction`` for quality: ``scores``, one float per generation.

    One score per entry of the row's ``generations`` is expected (``num_generations`` fixes
    the count instead); a missing one, or a JSON list of another length, is an error.

    ``task_description`` replaces the paper's list of factors to consider.

    >>> quality_scorer().read("[Response 1] Score: 2\\n[Response 2] Score: 3").values
    {'scores': [2.0, 3.0]}
    """
    return task(
        name=name,
        inputs=["instruction", "generations"],
        outputs={"scores": list[float]},
        render=partial(_render_quality, task_description=task_description),
        parse=partial(_parse_row, column="generations", n=num_generations, noun="response"),
        role="judge",
        defaults={"max_tokens": 256},
        schema=partial(_row_schema, column="generations", n=num_generations),
        from_schema=partial(_from_schema, n=num_generations, noun="response"),
        list_lengths={"scores": "generations"},
        example={
            "instruction": "What is 2 + 2?",
            "generations": ["4", "2 + 2 = 4, since adding two and two gives four."],
        },
        description="Deita quality score (1..k+1) for each response",
    )
