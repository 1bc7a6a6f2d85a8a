"""Text generation: answer an instruction, optionally steered by sampled principles.

Principles are lists of system prompts (UltraFeedback, arXiv 2310.01377); for each row a
principle is drawn from a distribution and one of its prompts becomes the system
message, seeded by the task's ``seed`` and the row's content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache, lru_cache, partial
from typing import Any

import jinja2
import jinja2.meta

from distilfn._types import Chat, Row
from distilfn.chat import chat
from distilfn.seeding import uniform
from distilfn.task import Parsed, Task, task
from distilfn.tasks._templates import render_compiled, render_template

__all__ = [
    "text_generation",
    "ultrafeedback_principles",
    "ULTRAFEEDBACK_DISTRIBUTION",
    "choose_principle",
    "check_template",
    "render_source",
    "read_generation",
]

_PRINCIPLES = ("helpfulness", "harmlessness", "honesty", "truthfulness", "verbalized_calibration")

ULTRAFEEDBACK_DISTRIBUTION: Mapping[str, float] = {
    "helpfulness": 0.6,
    "truthfulness": 0.2,
    "honesty": 0.18,
    "verbalized_calibration": 0.02,
    "harmlessness": 0.0,
}
"""The principle mix UltraFeedback used for ShareGPT/UltraChat prompts: helpfulness 3 in 5,
truthfulness and honesty 1 in 5 each, one honesty draw in ten turned into verbalized
calibration (OpenBMB/UltraFeedback ``main.py``). Harmlessness is available but not drawn."""


@cache
def ultrafeedback_principles() -> dict[str, tuple[str, ...]]:
    """The UltraFeedback principle system prompts, principle name -> prompts.

    >>> sorted(ultrafeedback_principles())
    ['harmlessness', 'helpfulness', 'honesty', 'truthfulness', 'verbalized_calibration']
    >>> len(ultrafeedback_principles()["helpfulness"])
    11
    """
    out: dict[str, tuple[str, ...]] = {}
    for name in _PRINCIPLES:
        text = render_template(f"text_generation/principles/{name}.jinja2")
        out[name] = tuple(p.strip() for p in text.split("\n---\n") if p.strip())
    return out


@cache
def _user_environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


def check_template(source: str, *, where: str) -> frozenset[str]:
    """Check that a user's jinja2 prompt is valid (it parses and compiles); return the variables it reads.

    Tasks keep the template's text, not a compiled template (which does not pickle);
    :func:`render_source` compiles it once per process.

    >>> sorted(check_template("Q: {{ question }} ({{ level }})", where="t"))
    ['level', 'question']
    >>> check_template("{{ question ", where="t")
    Traceback (most recent call last):
    ...
    ValueError: t: the template is not valid jinja2 (unexpected end of template, expected 'end of print statement'., line 1), got '{{ question '
    """
    try:
        parsed = _user_environment().parse(source)
        _compiled(source)  # e.g. an unknown filter fails here, not when parsing
    except jinja2.TemplateSyntaxError as exc:
        msg = f"{where}: the template is not valid jinja2 ({exc.message}, line {exc.lineno}), got {source!r}"
        raise ValueError(msg) from exc
    return frozenset(jinja2.meta.find_undeclared_variables(parsed))


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    """The compiled template for ``source``, once per process and text."""
    return _user_environment().from_string(source)


def render_source(source: str, **values: Any) -> str:
    """Render a user's jinja2 text (checked earlier with :func:`check_template`).

    >>> render_source("Q: {{ question }}", question="Why?")
    'Q: Why?'
    """
    return render_compiled(_compiled(source), values)


def choose_principle(
    principles: Mapping[str, Sequence[str]],
    distribution: Mapping[str, float],
    *,
    seed: int,
    parts: Iterable[str | int | None],
) -> tuple[str, str]:
    """Draw a principle by ``distribution``, then one of its prompts; seeded by ``seed`` and ``parts``.

    >>> p = {"a": ["A1", "A2"], "b": ["B1"]}
    >>> choose_principle(p, {"a": 0.0, "b": 1.0}, seed=0, parts=["row"])
    ('b', 'B1')
    >>> choose_principle(p, {"a": 1.0, "b": 0.0}, seed=3, parts=["x"]) == choose_principle(p, {"a": 1.0, "b": 0.0}, seed=3, parts=["x"])
    True
    """
    names = [n for n in principles if distribution.get(n, 0.0) > 0]
    weights = [distribution[n] for n in names]
    draw = uniform(seed, "principle", *parts) * sum(weights)
    name = names[-1]
    for candidate, weight in zip(names, weights, strict=True):
        if draw < weight:
            name = candidate
            break
        draw -= weight
    prompts = principles[name]
    return name, prompts[int(uniform(seed, "principle prompt", *parts) * len(prompts))]


def read_generation(text: str) -> Parsed:
    """The model's answer, stripped; an empty answer is an error.

    >>> read_generation("  Paris.\\n").values
    {'generation': 'Paris.'}
    >>> read_generation("   ").error
    'the model returned an empty answer'
    """
    answer = text.strip()
    if not answer:
        return Parsed(values={"generation": None}, error="the model returned an empty answer")
    return Parsed(values={"generation": answer})


def _check_principles(
    principles: None | str | Mapping[str, Sequence[str]],
    distribution: Mapping[str, float] | None,
) -> tuple[dict[str, tuple[str, ...]], dict[str, float]] | None:
    if principles is None:
        if distribution is not None:
            msg = "text_generation: principles_distribution needs principles; got principles=None"
            raise ValueError(msg)
        return None
    if isinstance(principles, str):
        if principles != "ultrafeedback":
            msg = f"text_generation: principles must be 'ultrafeedback' or a dict of name -> system prompts, got {principles!r}"
            raise ValueError(msg)
        table = dict(ultrafeedback_principles())
        if distribution is None:
            distribution = ULTRAFEEDBACK_DISTRIBUTION
    else:
        table = {}
        for name, prompts in principles.items():
            if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
                msg = f"text_generation: principle {name!r} must be a non-empty list of system prompts, got {prompts!r}"
                raise ValueError(msg)
            table[name] = tuple(prompts)
        if not table:
            msg = "text_generation: principles is empty; give at least one principle"
            raise ValueError(msg)
    if distribution is None:
        distribution = {name: 1.0 / len(table) for name in table}
    unknown = sorted(set(distribution) - set(table))
    if unknown:
        msg = f"text_generation: principles_distribution names {unknown[0]!r}, which is not a principle; principles are {sorted(table)}"
        raise ValueError(msg)
    if any(not isinstance(p, int | float) or p < 0 for p in distribution.values()):
        msg = f"text_generation: principles_distribution must hold probabilities >= 0, got {dict(distribution)!r}"
        raise ValueError(msg)
    total = sum(distribution.values())
    if abs(total - 1.0) > 1e-6:
        msg = f"text_generation: principles_distribution must sum to 1, got {total!r} from {dict(distribution)!r}"
        raise ValueError(msg)
    return table, {k: float(v) for k, v in distribution.items()}


def _render(
    row: Row,
    *,
    template: str,
    columns: tuple[str, ...],
    system_prompt: str | None,
    principles: tuple[dict[str, tuple[str, ...]], dict[str, float]] | None,
    seed: int,
) -> Chat:
    """The chat for one row: the template over ``columns``, and the system prompt (with a drawn principle)."""
    prompt = render_source(template, **{c: row[c] for c in columns})
    own = row.get("system_prompt")
    system = own if isinstance(own, str) and own.strip() else system_prompt
    if principles is not None:
        _, principle_prompt = choose_principle(
            principles[0], principles[1], seed=seed, parts=[str(row[c]) for c in columns]
        )
        system = f"{system}\n\n{principle_prompt}" if system else principle_prompt
    return chat(prompt, system_prompt=system)


def text_generation(
    *,
    system_prompt: str | None = None,
    template: str | None = None,
    columns: Iterable[str] = ("instruction",),
    principles: None | str | Mapping[str, Sequence[str]] = None,
    principles_distribution: Mapping[str, float] | None = None,
    seed: int = 0,
    name: str = "text_generation",
    params: Mapping[str, Any] | None = None,
) -> Task:
    """Answer each row's instruction; output column ``generation``.

    ``template`` is a jinja2 string reading the ``columns`` (default: the single column
    as is). ``principles="ultrafeedback"`` (or a dict name -> system prompts) draws a
    system prompt per row from ``principles_distribution`` (default: UltraFeedback's mix,
    or uniform for a custom dict); a ``system_prompt`` given too comes first. A frame
    with a ``system_prompt`` column gives each row its own system prompt (it replaces
    the task's ``system_prompt`` where it is not null or blank), as in distilabel 1.5.

    >>> t = text_generation(system_prompt="Be brief.")
    >>> t.chat_for({"instruction": "Capital of France?"})
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Capital of France?'}]
    >>> t.read(" Paris. ").values
    {'generation': 'Paris.'}
    >>> qa = text_generation(template="{{ context }}\\n\\nQuestion: {{ question }}", columns=["context", "question"])
    >>> qa.chat_for({"context": "Sky is blue.", "question": "Colour?"})[-1]["content"]
    'Sky is blue.\\n\\nQuestion: Colour?'
    """
    columns = (columns,) if isinstance(columns, str) else tuple(columns)
    if not columns:
        msg = f"text_generation {name!r}: columns is empty; name the columns the prompt reads"
        raise ValueError(msg)
    if template is None:
        if len(columns) != 1:
            msg = f"text_generation {name!r}: with several columns {list(columns)} give a template that places them"
            raise ValueError(msg)
        template = "{{ " + columns[0] + " }}"
    names = check_template(template, where=f"text_generation {name!r}")
    missing = sorted(names - set(columns))
    if missing:
        msg = f"text_generation {name!r}: the template reads {missing[0]!r}, which is not in columns {list(columns)}"
        raise ValueError(msg)
    table = _check_principles(principles, principles_distribution)

    description = "answer the instruction" + (" (principle-steered system prompt)" if table else "")
    return task(
        name=name,
        inputs=columns,
        optional_inputs=[] if "system_prompt" in columns else ["system_prompt"],
        outputs={"generation": str},
        render=partial(
            _render, template=template, columns=columns, system_prompt=system_prompt, principles=table, seed=seed
        ),
        parse=read_generation,
        params=params,
        description=description,
    )
