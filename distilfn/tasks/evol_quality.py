"""Deita Evol Quality (arXiv 2312.15685): rewrite a response to be better along one axis.

For each row one of five methods is drawn (helpfulness, relevance, depth, creativity,
details), seeded by the task's ``seed`` and the row's instruction and response; the
model rewrites ``response`` given ``instruction``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from distilfn.plan import Plan
from distilfn.task import Parsed, Task, task
from distilfn.tasks._templates import template_source
from distilfn.tasks.evol_instruct import check_mutations, evolution_plan, read_rewrite, render_mutation

__all__ = ["DEITA_QUALITY_MUTATIONS", "RESPONSE_MAX_TOKENS", "deita_quality_mutations", "read_evolved_response", "evol_quality"]

RESPONSE_MAX_TOKENS = 1024
"""Default ``max_tokens`` of a rewritten response: Deita's methods improve one response
(more detail, depth, creativity), so a rewrite runs longer than an instruction's."""

DEITA_QUALITY_MUTATIONS = ("helpfulness", "relevance", "depth", "creativity", "details")
"""The five response-quality methods of Deita's Evol Quality."""


def deita_quality_mutations() -> dict[str, str]:
    """The packaged Deita quality templates, name -> jinja2 text reading ``instruction`` and ``response``.

    >>> list(deita_quality_mutations())
    ['helpfulness', 'relevance', 'depth', 'creativity', 'details']
    """
    return {m: template_source(f"deita/quality_{m}.jinja2") for m in DEITA_QUALITY_MUTATIONS}


def read_evolved_response(text: str) -> Parsed:
    """Read a rewritten response: labels, preambles, wrapping quotes and a trailing
    explanation of the changes go; the response's own notes stay.

    >>> read_evolved_response("#Rewritten Response#:\\nDrink water.\\n\\nNote: ask a doctor.").values
    {'evolved_response': 'Drink water.\\n\\nNote: ask a doctor.'}
    >>> read_evolved_response("Drink water.\\n\\nExplanation: I added a detail.").values
    {'evolved_response': 'Drink water.'}
    """
    return read_rewrite(text, output="evolved_response")


def evol_quality_task(
    *,
    mutations: Mapping[str, str] | None = None,
    seed: int = 0,
    name: str = "evol_quality",
    params: Mapping[str, Any] | None = None,
) -> Task:
    """One Evol Quality round, a task: (``instruction``, ``response``) -> ``evolved_response``.

    ``max_tokens`` defaults to :data:`RESPONSE_MAX_TOKENS` (a run's ``params=`` and this ``params`` override it).

    >>> step = evol_quality_task()
    >>> prompt = step.chat_for({"instruction": "Name a fruit.", "response": "Apple."})[0]["content"]
    >>> "#Given Prompt#:\\nName a fruit." in prompt and "#Given Response#:\\nApple." in prompt
    True
    """
    table = check_mutations(
        mutations if mutations is not None else deita_quality_mutations(),
        required=["instruction", "response"],
        where=f"task {name!r}",
    )
    return task(
        name=name,
        inputs=["instruction", "response"],
        outputs={"evolved_response": str},
        render=partial(render_mutation, mutations=table, seed=seed, fields=("instruction", "response")),
        parse=read_evolved_response,
        defaults={"max_tokens": RESPONSE_MAX_TOKENS}, params=dict(params or {}),
        example={"instruction": "Give three tips for staying healthy.", "response": "Eat well, sleep, move."},
        description="rewrite the response with a seeded Deita quality method",
    )


def evol_quality(
    *,
    n: int = 1,
    store_evolutions: bool = False,
    include_original: bool = False,
    mutations: Mapping[str, str] | None = None,
    seed: int = 0,
    name: str = "evol_quality",
) -> Plan:
    """Deita Evol Quality: ``n`` rewrites of ``response`` given ``instruction``; a Plan.

    Output ``evolved_response`` (last round) or, with ``store_evolutions``, the list
    ``evolved_responses`` (original first when ``include_original``).

    >>> print(evol_quality(n=2))
    Plan
      1. evolve x2 (last round)  evol_quality  [generator]  instruction, response -> evolved_response
    """
    step = evol_quality_task(mutations=mutations, seed=seed, name=name)
    return evolution_plan(
        step,
        n=n,
        store_evolutions=store_evolutions,
        include_original=include_original,
        answer=None,
        source="response",
        evolved="evolved_response",
        name=name,
    )
