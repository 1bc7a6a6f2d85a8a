"""UltraJudge: rate each generation per area (1-10, with a rationale) and overall.

Argilla's judge built on UltraFeedback (arXiv:2310.01377) and JudgeLM (arXiv:2310.17631),
as the distilabel docs describe it: areas default to Practical Accuracy, Clarity &
Transparency, Authenticity & Reliability and Compliance with Intent.

Columns: ``ratings`` (the final score per generation) and ``areas`` (per generation, a
dict area -> ``{"rating": float | None, "rationale": str | None}``, every area present).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache, partial
from typing import Any

import polars as pl

from distilfn.chat import chat
from distilfn.parsing import as_texts, labelled_value, read_score, split_blocks
from distilfn.task import Parsed, Task, task
from distilfn.tasks._counts import count_of
from distilfn.tasks._templates import render_template

__all__ = ["DEFAULT_AREAS", "areas_dtype", "parse_ultrajudge", "ultrajudge"]

DEFAULT_AREAS: tuple[str, ...] = (
    "Practical Accuracy",
    "Clarity & Transparency",
    "Authenticity & Reliability",
    "Compliance with Intent",
)
_SCALE = (1, 10)
_NUM = r"[-+]?\d+(?:\.\d+)?"


@lru_cache(maxsize=64)
def _area_re(area: str) -> re.Pattern[str]:
    words = [re.escape(word) for word in area.split()]
    name = r"[ \t]+".join(r"(?:&|and)" if word in (r"\&", "&") else word for word in words)
    return re.compile(
        rf"^[ \t>*_#\-]*(?:\d{{1,3}}[.)][ \t>*_#\-]*)?{name}[ \t*_]*[:\-–][ \t*_]*"
        rf"({_NUM}(?:[ \t]*/[ \t]*10)?)?[ \t*_]*"
        rf"(?:[-–—:|][ \t]*)?(.*)$",
        re.IGNORECASE | re.MULTILINE,
    )


def _read_block(block: str, areas: Sequence[str], where: str) -> tuple[float | None, dict[str, Any], list[str]]:
    errors: list[str] = []
    per_area: dict[str, Any] = {}
    for area in areas:
        match = _area_re(area).search(block)
        if match is None:
            per_area[area] = {"rating": None, "rationale": None}
            errors.append(f"rating for {area} {where} missing")
            continue
        score = read_score(match.group(1), scale=_SCALE, integer=False, what=f"rating for {area} {where}")
        if score.error:
            errors.append(score.error)
        rationale = match.group(2).strip().strip("*_").strip() or None
        per_area[area] = {"rating": score.value, "rationale": rationale}
    final_text = None
    for label in ("Final Score", "Overall Score", "Final Rating", "Overall Rating", "Overall"):
        final_text = labelled_value(block, label)
        if final_text is not None:
            break
    final = read_score(final_text, scale=_SCALE, integer=False, what=f"final score {where}")
    if final.error:
        errors.append(final.error)
    return final.value, per_area, errors


def parse_ultrajudge(text: str, *, areas: Sequence[str] = DEFAULT_AREAS, n: int | None = None) -> Parsed:
    """Read one ``#### Output for Text i`` section per generation: area lines and ``Final Score:``.

    >>> out = parse_ultrajudge("#### Output for Text 1\\nPractical Accuracy: 8 - Correct.\\nFinal Score: 8",
    ...                        areas=["Practical Accuracy"])
    >>> out.values["ratings"], out.values["areas"][0]["Practical Accuracy"]
    ([8.0], {'rating': 8.0, 'rationale': 'Correct.'})
    """
    if not isinstance(text, str):
        return Parsed(values={"ratings": None, "areas": None}, error="no model output")
    found = split_blocks(text)
    if not found and n in (None, 1) and labelled_value(text, "Final Score") is not None:
        found = {1: text}
    if not found:
        return Parsed(values={"ratings": None, "areas": None}, error="no '#### Output for Text i' sections found")
    count = n if n is not None else max(found)
    ratings: list[float | None] = []
    per_text: list[dict[str, Any]] = []
    errors: list[str] = []
    for i in range(1, count + 1):
        if i not in found:
            ratings.append(None)
            per_text.append({area: {"rating": None, "rationale": None} for area in areas})
            errors.append(f"ratings for text {i} missing")
            continue
        final, per_area, block_errors = _read_block(found[i], areas, f"for text {i}")
        ratings.append(final)
        per_text.append(per_area)
        errors.extend(block_errors)
    return Parsed(values={"ratings": ratings, "areas": per_text}, error="; ".join(errors) or None)


def _parse_row(text: str, row: dict[str, Any], *, areas: Sequence[str], n: int | None) -> Parsed:
    """Read an answer expecting one section per generation of ``row`` (or ``n``)."""
    return parse_ultrajudge(text, areas=areas, n=count_of(row, "generations", n))


def _render(row: dict[str, Any], *, areas: Sequence[str]) -> list[dict[str, str]]:
    generations = as_texts(row["generations"], column="generations", where="ultrajudge")
    prompt = render_template(
        "ultrajudge/judge.jinja2",
        instruction=row["instruction"],
        generations=generations,
        n=len(generations),
        areas=list(areas),
    )
    return chat(prompt, system_prompt=render_template("ultrajudge/system.jinja2"))


def areas_dtype(areas: Sequence[str]) -> pl.DataType:
    """The ``areas`` column: per generation, a struct with one field per area, each a rating and its rationale.

    >>> areas_dtype(["Accuracy"])
    List(Struct({'Accuracy': Struct({'rating': Float64, 'rationale': String})}))
    """
    one = pl.Struct({"rating": pl.Float64(), "rationale": pl.String()})
    return pl.List(pl.Struct({area: one for area in areas}))


def ultrajudge(
    *, areas: Sequence[str] = DEFAULT_AREAS, num_generations: int | None = None, name: str = "ultrajudge"
) -> Task:
    """The UltraJudge judge: per-area ratings with rationales, and a final score per generation.

    One section per entry of the row's ``generations`` is expected (``num_generations``
    fixes the count instead); a missing one is an error on the row.

    >>> ultrajudge(areas=["Accuracy"]).outputs
    ('ratings', 'areas')
    """
    areas = tuple(areas)
    if not areas or not all(isinstance(a, str) and a.strip() for a in areas):
        msg = f"ultrajudge: `areas` must be a non-empty list of area names, got {areas!r}"
        raise ValueError(msg)
    if len(set(areas)) != len(areas):
        repeated = next(a for a in areas if areas.count(a) > 1)
        msg = f"ultrajudge: `areas` names {repeated!r} twice; each area is a field of the 'areas' column"
        raise ValueError(msg)
    return task(
        name=name,
        inputs=["instruction", "generations"],
        outputs={"ratings": list[float], "areas": areas_dtype(areas)},
        render=partial(_render, areas=areas),
        parse=partial(_parse_row, areas=areas, n=num_generations),
        role="judge",
        defaults={"max_tokens": 1024},
        list_lengths={"ratings": "generations", "areas": "generations"},
        example={
            "instruction": "How do I boil an egg?",
            "generations": [
                "Place the egg in boiling water for 9 minutes, then cool it in cold water.",
                "Microwave it for five minutes.",
            ],
        },
        description="UltraJudge per-area ratings 1-10 and a final score for each generation",
    )
