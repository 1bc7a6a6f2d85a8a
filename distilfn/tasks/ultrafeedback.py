"""UltraFeedback: rate n generations for one instruction on one aspect.

Cui et al., 2023, "UltraFeedback: Boosting Language Models with Scaled AI Feedback",
arXiv:2310.01377. The judge answers one ``#### Output for Text i`` block per text with
``Rating:`` and ``Rationale:`` lines; the helpfulness and truthfulness aspects add a
``Type:`` line (numeric identifiers) and its own rationale before the rating.

Columns (as distilabel users know them):

- every aspect: ``ratings`` (list of int, one per generation, ``None`` where unread)
  and ``rationales``;
- helpfulness / truthfulness: ``types`` (list of lists of ints), and the rating's
  rationale in ``rationales_for_ratings`` (``rationales`` then holds the rationale
  for the types, as in the paper's layout).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache, partial
from typing import Annotated, Any, Literal

import msgspec

from distilfn.chat import chat
from distilfn.parsing import RatingBlock, as_texts, extract_json, read_rating_blocks
from distilfn.plan import Plan
from distilfn.task import Parsed, Task, task
from distilfn.tasks._counts import count_of
from distilfn.tasks._templates import render_template

__all__ = [
    "ASPECTS",
    "TextRating",
    "TypedTextRating",
    "UltraFeedbackAnswer",
    "TypedUltraFeedbackAnswer",
    "answer_schema",
    "output_types",
    "ultrafeedback",
]

Aspect = Literal["overall-rating", "helpfulness", "honesty", "instruction-following", "truthfulness"]
ASPECTS: tuple[str, ...] = ("overall-rating", "helpfulness", "honesty", "instruction-following", "truthfulness")
_TYPED = frozenset({"helpfulness", "truthfulness"})

_EXAMPLE = {
    "instruction": "What is the capital of France?",
    "generations": [
        "The capital of France is Paris.",
        "Paris is the capital city of France, located on the Seine.",
        "I think it is Lyon.",
        "France's capital is Paris, which is also its largest city.",
    ],
}


class TextRating(msgspec.Struct, frozen=True, kw_only=True):
    """One text's rating and rationale (structured output)."""

    rating: int
    rationale: str


class UltraFeedbackAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The structured answer: one assessment per text, in order."""

    assessments: list[TextRating]


class TypedTextRating(msgspec.Struct, frozen=True, kw_only=True):
    """One text's types, their rationale, rating and rating rationale (helpfulness/truthfulness)."""

    types: list[int]
    types_rationale: str
    rating: int
    rationale: str


class TypedUltraFeedbackAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The structured answer for helpfulness / truthfulness."""

    assessments: list[TypedTextRating]


RATIONALE_MAX_CHARS = 600
"""Longest rationale the structured-output schema allows (about 150 tokens)."""


def answer_token_budget(typed: bool, n: int) -> int:
    """``max_tokens`` that always fits a schema-constrained answer for ``n`` texts.

    >>> answer_token_budget(False, 4)
    764
    """
    per_text = (2 if typed else 1) * (RATIONALE_MAX_CHARS // 4 + 25)
    return 64 + n * per_text


@lru_cache(maxsize=64)
def answer_schema(typed: bool, scale: tuple[int, int], n: int | None) -> type:
    """The structured-output schema sent to the model: ratings on ``scale``, exactly ``n`` texts.

    Decoding model text uses the lenient :class:`UltraFeedbackAnswer` so that an
    out-of-scale rating is reported, not just refused. Same arguments, same class.

    >>> schema = msgspec.json.schema(answer_schema(False, (1, 5), 2))
    >>> schema["$defs"]["UltraFeedbackAnswer"]["properties"]["assessments"]["maxItems"]
    2
    """
    rating = Annotated[int, msgspec.Meta(ge=scale[0], le=scale[1])]
    # "Rationale for the rating in short sentences" (the paper): bounded, so that a small
    # model that loops inside a string still closes its JSON within the token budget
    short = Annotated[str, msgspec.Meta(max_length=RATIONALE_MAX_CHARS)]
    fields: list[tuple[str, Any]] = [("rating", rating), ("rationale", short)]
    if typed:
        fields = [("types", list[Annotated[int, msgspec.Meta(ge=1, le=3)]]), ("types_rationale", short), *fields]
    item = msgspec.defstruct(
        "TypedTextRating" if typed else "TextRating", fields, frozen=True, kw_only=True, module=__name__
    )
    items: Any = list[item] if n is None else Annotated[list[item], msgspec.Meta(min_length=n, max_length=n)]
    return msgspec.defstruct(
        "TypedUltraFeedbackAnswer" if typed else "UltraFeedbackAnswer",
        [("assessments", items)],
        frozen=True,
        kw_only=True,
        module=__name__,
    )


def output_types(typed: bool) -> dict[str, Any]:
    """The judge's columns and their types: one entry per text, None where unread.

    >>> output_types(False)
    {'ratings': list[int], 'rationales': list[str]}
    """
    types: dict[str, Any] = {"ratings": list[int], "rationales": list[str]}
    if typed:
        types.update(types=list[list[int]], rationales_for_ratings=list[str])
    return types


def _values(blocks: Sequence[RatingBlock] | None, typed: bool) -> dict[str, Any]:
    if blocks is None:
        return dict.fromkeys(output_types(typed))
    if typed:
        return {
            "ratings": [b.rating for b in blocks],
            "rationales": [b.types_rationale for b in blocks],
            "types": [b.types for b in blocks],
            "rationales_for_ratings": [b.rationale for b in blocks],
        }
    return {"ratings": [b.rating for b in blocks], "rationales": [b.rationale for b in blocks]}


def _from_schema(value: Any, *, typed: bool, scale: tuple[int, int], n: int | None, cut: bool = False) -> Parsed:
    """Check a decoded structured answer: count and range; out-of-scale ratings become None.

    A complete list of another length than ``n`` is null (which assessment is whose cannot
    be told); the items of an answer ``cut`` short are kept, since the cut is at the end.
    """
    items = list(value.assessments)
    if n is not None and len(items) != n and not (cut and len(items) < n):
        error = f"expected {n} assessments, got {len(items)}: a JSON list of another length cannot be matched to the texts"
        return Parsed(values=_values(None, typed), error=error)
    errors: list[str] = []
    if n is not None and len(items) > n:
        errors.append(f"expected {n} assessments, got {len(items)}")
        items = items[:n]
    blocks: list[RatingBlock] = []
    for i, item in enumerate(items, start=1):
        rating: int | None = item.rating
        if not scale[0] <= item.rating <= scale[1]:
            errors.append(f"rating for text {i} is {item.rating}, outside the scale {scale[0]}-{scale[1]}")
            rating = None
        types = list(item.types) if typed else None
        if types is not None and any(not 1 <= t <= 3 for t in types):
            errors.append(f"type for text {i} is {types}, outside 1-3")
            types = None
        blocks.append(
            RatingBlock(
                rating=rating,
                rationale=item.rationale,
                types=types,
                types_rationale=item.types_rationale if typed else None,
            )
        )
    if n is not None:
        for i in range(len(blocks) + 1, n + 1):
            blocks.append(RatingBlock())
            errors.append(f"rating for text {i} missing")
    return Parsed(values=_values(blocks, typed), error="; ".join(errors) or None)


_JSON_ITEM = re.compile(
    r'\{\s*"rating"\s*:\s*(-?\d+(?:\.\d+)?)\s*,\s*"rationale"\s*:\s*"((?:[^"\\\n]|\\.)*)"\s*\}'
)


def _salvage(text: str, *, scale: tuple[int, int], n: int | None) -> Parsed | None:
    """The complete ``{"rating", "rationale"}`` items of a JSON answer cut short (e.g. by max_tokens)."""
    items = []
    for match in _JSON_ITEM.finditer(text):
        try:
            rationale = json.loads(f'"{match.group(2)}"')
        except ValueError:
            rationale = match.group(2)
        items.append(TextRating(rating=int(float(match.group(1))), rationale=rationale))
    if not items:
        return None
    parsed = _from_schema(UltraFeedbackAnswer(assessments=items), typed=False, scale=scale, n=n, cut=True)
    note = "the JSON answer is incomplete; read its complete assessments only"
    return Parsed(values=parsed.values, error=f"{note}; {parsed.error}" if parsed.error else note)


def _row_schema(row: dict[str, Any], *, typed: bool, scale: tuple[int, int], n: int | None) -> type:
    """The schema for one row: exactly as many assessments as the row has generations."""
    return answer_schema(typed, scale, count_of(row, "generations", n))


def _parse_row(text: str, row: dict[str, Any], *, typed: bool, scale: tuple[int, int], n: int | None, schema: Any) -> Parsed:
    """Read an answer expecting one block per generation of ``row`` (or ``n``)."""
    return _parse(text, typed=typed, scale=scale, n=count_of(row, "generations", n), schema=schema)


_COLUMNS = {"ratings": "rating", "rationales": "rationale", "types": "types", "rationales_for_types": "types_rationale"}


def _as_assessments(found: Any) -> Any:
    """A JSON answer in distilabel's column layout (``{"ratings": [...], "rationales": [...]}``)
    as distilfn's ``{"assessments": [...]}``; anything else as it is.

    Typed answers in columns hold the rating's rationale in ``rationales_for_ratings``.

    >>> _as_assessments({"ratings": [4, 2], "rationales": ["a", "b"]})
    {'assessments': [{'rating': 4, 'rationale': 'a'}, {'rating': 2, 'rationale': 'b'}]}
    """
    if not isinstance(found, dict) or "assessments" in found or not isinstance(found.get("ratings"), list):
        return found
    columns = dict(found)
    if "rationales_for_ratings" in columns:  # typed: the rationales explain the types
        columns["rationales_for_types"] = columns.pop("rationales", None)
        columns["rationales"] = columns.pop("rationales_for_ratings")
    lists = {key: columns.get(key) for key in _COLUMNS if isinstance(columns.get(key), list)}
    if len({len(v) for v in lists.values()}) != 1:
        return found  # columns of different lengths: not a reading to guess at
    count = len(lists["ratings"])
    return {"assessments": [{_COLUMNS[key]: values[i] for key, values in lists.items()} for i in range(count)]}


def _parse(text: str, *, typed: bool, scale: tuple[int, int], n: int | None, schema: Any) -> Parsed:
    blocks, error = read_rating_blocks(text, n=n, scale=scale, integer=True, types=typed)
    if blocks is None and "{" in text:
        found = _as_assessments(extract_json(text, kind=dict))
        try:
            return _from_schema(msgspec.convert(found, type=schema), typed=typed, scale=scale, n=n)
        except (msgspec.ValidationError, TypeError):
            pass
        salvaged = None if typed else _salvage(text, scale=scale, n=n)
        if salvaged is not None:
            return salvaged
        error = "the JSON answer is incomplete or lacks the 'assessments' list"
    return Parsed(values=_values(blocks, typed), error=error)


def _render(row: dict[str, Any], *, template: str, extra: dict[str, Any]) -> list[dict[str, str]]:
    generations = as_texts(row["generations"], column="generations", where="ultrafeedback")
    prompt = render_template(
        template,
        instruction=row["instruction"],
        generations=generations,
        n=len(generations),
        world_knowledge=row.get("world_knowledge"),
        **extra,
    )
    return chat(prompt, system_prompt=render_template("ultrafeedback/system.jinja2", n=len(generations)))


def ultrafeedback_task(
    *,
    aspect: Aspect = "overall-rating",
    ratings: Sequence[tuple[int, str]] | None = None,
    task_description: str | None = None,
    num_generations: int | None = None,
    name: str | None = None,
) -> Task:
    """The UltraFeedback judge: rate each of ``generations`` for ``instruction`` on one aspect.

    ``ratings`` sets a custom scale as ``[(value, description), ...]`` (with an optional
    ``task_description``); ratings outside the scale are rejected (None and an error),
    never clipped. The judge expects one assessment per entry of the row's ``generations``
    (``num_generations`` fixes the count instead): a missing block, or a JSON list of
    another length, is an error on that row. ``max_tokens`` defaults to what a
    schema-constrained answer for ``num_generations`` (else 4) texts needs.
    An optional ``world_knowledge`` column is added to the prompt when present.

    >>> judge = ultrafeedback_task(aspect="honesty")
    >>> judge.outputs
    ('ratings', 'rationales')
    >>> judge.read("#### Output for Text 1\\nRating: 4\\nRationale: Confident and correct.").values
    {'ratings': [4], 'rationales': ['Confident and correct.']}
    """
    if aspect not in ASPECTS:
        msg = f"ultrafeedback: unknown aspect {aspect!r}; choose one of {list(ASPECTS)}"
        raise ValueError(msg)
    typed = aspect in _TYPED
    custom = ratings is not None or task_description is not None
    if custom and typed:
        msg = f"ultrafeedback: custom `ratings`/`task_description` use the untyped layout, not aspect {aspect!r}"
        raise ValueError(msg)
    scale = (1, 5)
    extra: dict[str, Any] = {}
    template = f"ultrafeedback/{aspect}.jinja2"
    if custom:
        pairs = [(v, str(d)) for v, d in (ratings or [(i, str(i)) for i in range(1, 6)])]
        values = [v for v, _ in pairs]
        if not pairs or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            msg = f"ultrafeedback: `ratings` must be a non-empty list of (int value, description), got {ratings!r}"
            raise ValueError(msg)
        scale = (min(values), max(values))
        template = "ultrafeedback/custom.jinja2"
        extra = {"task_description": task_description, "ratings": pairs, "low": scale[0], "high": scale[1]}
    if num_generations is not None and num_generations < 1:
        msg = f"ultrafeedback: num_generations must be at least 1, got {num_generations!r}"
        raise ValueError(msg)
    lenient = TypedUltraFeedbackAnswer if typed else UltraFeedbackAnswer
    return task(
        name=name or f"ultrafeedback_{aspect.replace('-', '_')}",
        inputs=["instruction", "generations"],
        optional_inputs=["world_knowledge"],
        outputs=output_types(typed),
        render=partial(_render, template=template, extra=extra),
        parse=partial(_parse_row, typed=typed, scale=scale, n=num_generations, schema=lenient),
        role="judge",
        defaults={"max_tokens": answer_token_budget(typed, num_generations or 4)},
        schema=partial(_row_schema, typed=typed, scale=scale, n=num_generations),
        from_schema=partial(_from_schema, typed=typed, scale=scale, n=num_generations),
        list_lengths={name: "generations" for name in output_types(typed)},
        example=_EXAMPLE,
        description=f"UltraFeedback {aspect} ratings {scale[0]}-{scale[1]} for each generation",
    )


def ultrafeedback(
    *,
    aspect: Aspect = "overall-rating",
    num_generations: int = 4,
    generate_answers: bool | Task = True,
    ratings: Sequence[tuple[int, str]] | None = None,
    task_description: str | None = None,
    name: str | None = None,
) -> Plan:
    """UltraFeedback as a plan: make ``num_generations`` answers if there are none, then rate them.

    The answers answer ``evolved_instruction`` when that column exists (e.g. after
    ``evol_instruct``), else ``instruction``; the judge reads the same column. With a
    ``generations`` column already in the frame, only the judge runs. The answers come from
    :func:`~distilfn.tasks.text_generation.text_generation` (``generate_answers=True``) or
    from the task given; with ``False`` the frame must have ``generations``.
    """
    from distilfn import ensure, fanout, group, prefer
    from distilfn.tasks.evol_instruct import answering_task

    def judge(count: int | None) -> Task:
        return ultrafeedback_task(
            aspect=aspect, ratings=ratings, task_description=task_description, name=name, num_generations=count
        )

    answer = answering_task(generate_answers, where="ultrafeedback")
    if answer is None:
        return prefer(judge(None), instruction=("evolved_instruction", "instruction"))
    columns = ("evolved_instruction", "instruction")
    produce = fanout(prefer(answer, instruction=columns), num_generations) >> group(generation="generations")
    # answers made here have a known count: the judge's schema fixes the list length, which
    # is what makes small judges' answers complete; a frame's own generations may vary
    fresh = produce >> prefer(judge(num_generations), instruction=columns)
    return ensure(["generations"], fresh, otherwise=prefer(judge(None), instruction=columns))
