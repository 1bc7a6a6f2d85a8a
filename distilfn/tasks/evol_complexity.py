"""Deita Evol Complexity (arXiv 2312.15685): Evol-Instruct with WizardLM's in-depth prompts only.

Deita evolves each instruction with the four in-depth operations (add constraints,
deepening, concretizing, increased reasoning steps) to build instructions of graded
complexity, later scored by its complexity scorer.
"""

from __future__ import annotations

from collections.abc import Mapping

from distilfn.plan import Plan
from distilfn.task import Task
from distilfn.tasks._templates import template_source
from distilfn.tasks.evol_instruct import answering_task, evol_instruct_task, evolution_plan, fresh_start, generator_plan

__all__ = ["DEITA_COMPLEXITY_MUTATIONS", "deita_complexity_mutations", "evol_complexity", "evol_complexity_generator"]

DEITA_COMPLEXITY_MUTATIONS = ("add_constraints", "deepening", "concretizing", "increased_reasoning_steps")
"""The in-depth operations Deita's Evol Complexity uses."""


def deita_complexity_mutations() -> dict[str, str]:
    """The packaged Deita complexity templates, name -> jinja2 text reading ``{{ instruction }}``.

    >>> list(deita_complexity_mutations())
    ['add_constraints', 'deepening', 'concretizing', 'increased_reasoning_steps']
    """
    return {m: template_source(f"deita/complexity_{m}.jinja2") for m in DEITA_COMPLEXITY_MUTATIONS}


def evol_complexity(
    *,
    n: int = 1,
    store_evolutions: bool = False,
    include_original: bool = False,
    generate_answers: bool | Task = False,
    mutations: Mapping[str, str] | None = None,
    seed: int = 0,
    name: str = "evol_complexity",
) -> Plan:
    """Deita Evol Complexity: ``n`` in-depth rewrites of ``instruction``; a Plan.

    Columns as :func:`~distilfn.tasks.evol_instruct.evol_instruct`: ``evolved_instruction``
    or ``evolved_instructions`` (Deita scores the list with its complexity scorer, so
    ``store_evolutions=True, include_original=True`` is the usual setting),
    plus ``answer`` / ``answers`` with ``generate_answers``.

    >>> print(evol_complexity(n=5, store_evolutions=True))
    Plan
      1. evolve x5 (every round)  evol_complexity  [generator]  instruction -> evolved_instruction
    """
    step = evol_instruct_task(
        mutations=mutations if mutations is not None else deita_complexity_mutations(), seed=seed, name=name
    )
    return evolution_plan(
        step,
        n=n,
        store_evolutions=store_evolutions,
        include_original=include_original,
        answer=answering_task(generate_answers, where=name),
        source="instruction",
        evolved="evolved_instruction",
        name=name,
    )


def evol_complexity_generator(
    *,
    num_instructions: int = 1,
    n: int = 1,
    min_length: int = 16,
    max_length: int | None = 4096,
    mutations: Mapping[str, str] | None = None,
    seed: int = 0,
    generate_answers: bool | Task = False,
    name: str = "evol_complexity_generator",
) -> Plan:
    """Write ``num_instructions`` new instructions per row, then deepen each ``n`` times; a Plan.

    Runs like :func:`~distilfn.tasks.evol_instruct.evol_instruct_generator` (one row per
    batch, optional ``topic`` column); outputs ``seed_instruction``, ``instruction`` and
    ``answer`` with ``generate_answers``.
    """
    step = evol_instruct_task(
        mutations=mutations if mutations is not None else deita_complexity_mutations(), seed=seed, name=name
    )
    return generator_plan(
        step,
        num_instructions=num_instructions,
        n=n,
        min_length=min_length,
        max_length=max_length,
        generate_answers=generate_answers,
        seed_task=fresh_start(),
        name=name,
    )
