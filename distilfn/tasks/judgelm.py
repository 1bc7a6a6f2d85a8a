"""JudgeLM: score n answers 1-10 on the first line, then explain.

Zhu et al., 2023, "JudgeLM: Fine-tuned Large Language Models are Scalable Judges",
arXiv:2310.17631 (baaivision/JudgeLM). The judge writes one line with one score per
assistant separated by spaces, and the explanation below it.
"""

from __future__ import annotations

import re
from functools import lru_cache, partial
from typing import Annotated, Any

import msgspec

from distilfn.chat import chat
from distilfn.parsing import as_texts, extract_json, read_score
from distilfn.task import Parsed, Task, task
from distilfn.tasks._counts import count_of
from distilfn.tasks._templates import render_template

__all__ = ["JudgeLMAnswer", "judgelm", "parse_judgelm"]

_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_PAIR = re.compile(r"assistant[ \t]*(\d{1,3})\b[^\d\n]{0,30}?([-+]?\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])([-+]?\d+(?:\.\d+)?)(?:\s*/\s*10)?(?![\w.])")
_SCALE = (1, 10)


class JudgeLMAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """Structured JudgeLM answer: one score per answer, in order, and the explanation."""

    scores: list[float]
    rationale: str


@lru_cache(maxsize=64)
def _strict_schema(n: int | None) -> type:
    """What the model is asked for: scores 1-10, exactly ``n`` of them when known."""
    score = Annotated[float, msgspec.Meta(ge=_SCALE[0], le=_SCALE[1])]
    scores: Any = list[score] if n is None else Annotated[list[score], msgspec.Meta(min_length=n, max_length=n)]
    return msgspec.defstruct(
        "JudgeLMAnswer", [("scores", scores), ("rationale", str)], frozen=True, kw_only=True, module=__name__
    )


def _count_words(n: int) -> str:
    return _WORDS[n - 1] if 1 <= n <= len(_WORDS) else str(n)


def _assistants(n: int) -> str:
    return "1" if n == 1 else ", ".join(str(i) for i in range(1, n)) + f" and {n}"


def _check(scores: list[Any], n: int | None, *, positional: bool = True) -> tuple[list[float | None] | None, list[str]]:
    """Read each score (1-10). Scores known only by position (a score line, a JSON list) of
    another count than ``n`` are null: which score is whose cannot be told."""
    if positional and n is not None and len(scores) != n:
        return None, [f"expected {n} scores, got {len(scores)}: scores by position cannot be matched to the answers"]
    errors: list[str] = []
    out: list[float | None] = []
    for i, raw in enumerate(scores, start=1):
        score = read_score(str(raw), scale=_SCALE, integer=False, what=f"score for answer {i}")
        out.append(score.value)
        if score.error:
            errors.append(score.error)
    if n is not None:
        if len(out) > n:
            errors.append(f"expected {n} scores, got {len(out)}")
            out = out[:n]
        for i in range(len(out) + 1, n + 1):
            out.append(None)
            errors.append(f"score for answer {i} missing")
    return out, errors


def parse_judgelm(text: str, *, n: int | None = None) -> Parsed:
    """Read JudgeLM's first-line scores and the explanation after it.

    Also reads ``Assistant 1: 8`` lines and ``8/10`` forms; scores outside 1-10 are
    rejected (None and an error).

    >>> parse_judgelm("8 6\\nAssistant 1 is more detailed.").values
    {'ratings': [8.0, 6.0], 'rationales': ['Assistant 1 is more detailed.', 'Assistant 1 is more detailed.']}
    >>> parse_judgelm("Assistant 1: 9/10, Assistant 2: 12\\nToo long.").error
    'score for answer 2 is 12, outside the scale 1-10'
    """
    if not isinstance(text, str) or not text.strip():
        return Parsed(values={"ratings": None, "rationales": None}, error="no model output")
    lines = [line for line in text.strip().splitlines()]
    first_at = next(i for i, line in enumerate(lines) if line.strip())
    first = lines[first_at].replace("*", "")
    pairs = _PAIR.findall(first)
    rest_at = first_at + 1
    if pairs:
        found = {int(k): v for k, v in reversed(pairs)}
        count = max(found) if n is None else n
        raw: list[Any] = [found.get(i) for i in range(1, max(found) + 1)]
        scores, errors = _check([r if r is not None else "" for r in raw], n if n is not None else count, positional=False)
    else:
        numbers = _NUMBER.findall(re.sub(r"^\s*(?:scores?|ratings?)\s*[:\-]", "", first, flags=re.IGNORECASE))
        if not numbers:
            # a model that writes the scores as "Assistant k: x" lines further down
            pairs = _PAIR.findall(text)
            if not pairs:
                return Parsed(values={"ratings": None, "rationales": None}, error="no scores on the first line")
            found = {}
            for k, v in pairs:
                found.setdefault(int(k), v)
            raw = [found.get(i, "") for i in range(1, max(found) + 1)]
            scores, errors = _check(raw, n, positional=False)
            rest_at = first_at
        else:
            scores, errors = _check(numbers, n)
    rationale = "\n".join(lines[rest_at:]).strip() or None
    if rationale is None:
        errors.append("explanation missing")
    return Parsed(values={"ratings": scores, "rationales": _shared(rationale, scores)}, error="; ".join(errors) or None)


def _shared(rationale: str | None, scores: list[Any] | None) -> list[str | None] | None:
    """JudgeLM writes one explanation for all answers: it goes with every rating, so that
    ``rationales[i]`` belongs to ``ratings[i]`` as in every other judge."""
    if scores is None:
        return None
    return [rationale] * len(scores)


_SCORES_ARRAY = re.compile(r'"scores"\s*:\s*\[([^\[\]]*)\]')


def _parse(text: str, *, n: int | None) -> Parsed:
    """The JSON answer when the text is one (its first line is not a score line), else the
    first-line scores, else JSON found further in."""
    json_first = text.lstrip().startswith(("{", "```"))
    parsed = None if json_first else parse_judgelm(text, n=n)
    if (parsed is None or parsed.values.get("ratings") is None) and "{" in text:
        found = extract_json(text, kind=dict)
        try:
            return _from_schema(msgspec.convert(found, type=JudgeLMAnswer), n=n)
        except (msgspec.ValidationError, TypeError):
            pass
        array = _SCORES_ARRAY.search(text)  # a JSON answer cut short: its scores came first
        if array is not None:
            scores, errors = _check([part.strip() for part in array.group(1).split(",") if part.strip()], n)
            errors.insert(0, "the JSON answer is incomplete; read its scores only")
            return Parsed(values={"ratings": scores, "rationales": _shared(None, scores)}, error="; ".join(errors))
    return parsed if parsed is not None else parse_judgelm(text, n=n)


def _from_schema(value: JudgeLMAnswer, *, n: int | None) -> Parsed:
    scores, errors = _check(list(value.scores), n)
    return Parsed(values={"ratings": scores, "rationales": _shared(value.rationale, scores)}, error="; ".join(errors) or None)


def _row_schema(row: dict[str, Any], *, n: int | None) -> type:
    """The schema for one row: exactly as many scores as the row has generations."""
    return _strict_schema(count_of(row, "generations", n))


def _parse_row(text: str, row: dict[str, Any], *, n: int | None) -> Parsed:
    """Read an answer expecting one score per generation of ``row`` (or ``n``)."""
    return _parse(text, n=count_of(row, "generations", n))


def _render(row: dict[str, Any]) -> list[dict[str, str]]:
    generations = as_texts(row["generations"], column="generations", where="judgelm")
    n = len(generations)
    prompt = render_template(
        "judgelm/judge.jinja2",
        instruction=row["instruction"],
        generations=generations,
        reference=row.get("reference"),
        n_words=_count_words(n),
        assistants=_assistants(n),
    )
    return chat(prompt, system_prompt=render_template("judgelm/system.jinja2"))


def judgelm(*, num_generations: int | None = None, name: str = "judgelm") -> Task:
    """The JudgeLM judge: ``ratings`` (1-10 per generation) and ``rationales`` (the one
    explanation JudgeLM writes, repeated for each generation).

    One score per entry of the row's ``generations`` is expected (``num_generations`` fixes
    the count instead); a missing one, or a JSON list of another length, is an error.

    An optional ``reference`` column adds the paper's reference-answer section.
    ``num_generations`` lets the parser report a missing last score.

    >>> judge = judgelm()
    >>> judge.read("7 9\\nThe second answer is more accurate.").values["ratings"]
    [7.0, 9.0]
    """
    return task(
        name=name,
        inputs=["instruction", "generations"],
        optional_inputs=["reference"],
        outputs={"ratings": list[float], "rationales": list[str]},
        render=_render,
        parse=partial(_parse_row, n=num_generations),
        role="judge",
        defaults={"max_tokens": 512},
        schema=partial(_row_schema, n=num_generations),
        list_lengths={"ratings": "generations", "rationales": "generations"},
        from_schema=partial(_from_schema, n=num_generations),
        example={
            "instruction": "Name a primary color.",
            "generations": ["Red is a primary color.", "Green, in the RGB model; red and blue too."],
        },
        description="JudgeLM scores 1-10 for each generation, then an explanation",
    )
