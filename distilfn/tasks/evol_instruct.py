"""Evol-Instruct (WizardLM, arXiv 2304.12244): rewrite instructions into harder or rarer ones.

A rewrite round is a task: for each row a mutation (add constraints, deepening,
concretizing, increased reasoning steps, complicate input, in-breadth) is chosen from
the task's ``seed`` and the instruction's text, and the model rewrites the instruction
with it (:func:`evol_instruct`, a task). :func:`evol_instruct` runs
``n`` rounds with :func:`distilfn.evolve`.

The same machinery serves Deita's Evol Complexity and Evol Quality
(:mod:`distilfn.tasks.evol_complexity`, :mod:`distilfn.tasks.evol_quality`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from distilfn._types import Chat, Row
from distilfn.chat import chat
from distilfn.steps import evolve, explode, fanout, filter_rows, group, map_rows
from distilfn.seeding import uniform
from distilfn.plan import Plan
from distilfn.task import Parsed, Task, task
from distilfn.tasks._templates import render_template, template_source
from distilfn.tasks.text_generation import check_template, render_source, text_generation

__all__ = [
    "WIZARDLM_MUTATIONS",
    "wizardlm_mutations",
    "check_mutations",
    "choose_mutation",
    "render_mutation",
    "clean_rewrite",
    "read_rewrite",
    "evol_instruct",
    "fresh_start",
    "read_fresh",
    "evol_instruct_generator",
    "answering_task",
    "evolution_plan",
    "generator_plan",
    "copy_seed",
    "fits_length",
]

WIZARDLM_MUTATIONS = (
    "add_constraints",
    "deepening",
    "concretizing",
    "increased_reasoning_steps",
    "complicate_input",
    "breadth",
)
"""The six Evol-Instruct operations: five in-depth, one in-breadth (paper Section 3.1)."""

Mutations = tuple[tuple[str, str], ...]
"""(name, jinja2 text) per mutation: plain data, so tasks pickle; compiled once per process."""


def wizardlm_mutations() -> dict[str, str]:
    """The packaged WizardLM mutation templates, name -> jinja2 text reading ``{{ instruction }}``.

    Pick a subset or add your own: ``evol_instruct(mutations={**wizardlm_mutations(), "mine": "..."})``.

    >>> list(wizardlm_mutations()) == list(WIZARDLM_MUTATIONS)
    True
    """
    return {m: template_source(f"evol_instruct/{m}.jinja2") for m in WIZARDLM_MUTATIONS}


def check_mutations(mutations: Mapping[str, str], *, required: Iterable[str], where: str) -> Mutations:
    """Check mutation templates (valid jinja2 reading exactly the ``required`` columns); (name, text) pairs.

    >>> [n for n, _ in check_mutations({"shorter": "Shorten: {{ instruction }}"}, required=["instruction"], where="t")]
    ['shorter']
    """
    required = set(required)
    if not isinstance(mutations, Mapping) or not mutations:
        msg = f"{where}: mutations must be a non-empty dict of name -> template text, got {mutations!r}"
        raise ValueError(msg)
    out = []
    for name, source in mutations.items():
        if not isinstance(source, str):
            msg = f"{where}: mutation {name!r} must be jinja2 text, got {type(source).__name__}"
            raise TypeError(msg)
        names = check_template(source, where=f"{where} mutation {name!r}")
        if not required <= names:
            msg = f"{where}: mutation {name!r} must place {sorted(required)} (e.g. '{{{{ instruction }}}}'), got {source!r}"
            raise ValueError(msg)
        extra = sorted(names - required)
        if extra:
            msg = f"{where}: mutation {name!r} reads {extra[0]!r}, which the task does not provide; it provides {sorted(required)}"
            raise ValueError(msg)
        out.append((name, source))
    return tuple(out)


def choose_mutation(mutations: Mutations, *, seed: int, parts: Iterable[str | int | None]) -> tuple[str, str]:
    """The mutation for one row, (name, text): drawn uniformly, seeded by ``seed`` and the row's text ``parts``.

    >>> m = check_mutations({"a": "A {{ instruction }}", "b": "B {{ instruction }}"}, required=["instruction"], where="t")
    >>> choose_mutation(m, seed=1, parts=["x"])[0] == choose_mutation(m, seed=1, parts=["x"])[0]
    True
    """
    return mutations[int(uniform(seed, "mutation", *parts) * len(mutations))]


def render_mutation(row: Row, *, mutations: Mutations, seed: int, fields: tuple[str, ...]) -> Chat:
    """The rewrite chat for one row: a mutation drawn from ``seed`` and the row's ``fields``, filled with them.

    >>> m = check_mutations({"a": "Harder: {{ instruction }}"}, required=["instruction"], where="t")
    >>> render_mutation({"instruction": "Add 2 and 3."}, mutations=m, seed=0, fields=("instruction",))
    [{'role': 'user', 'content': 'Harder: Add 2 and 3.'}]
    """
    values = {f: row[f] for f in fields}
    _, source = choose_mutation(mutations, seed=seed, parts=[str(values[f]) for f in fields])
    return chat(render_source(source, **values).strip())


# -- reading rewrites -------------------------------------------------------------------

_NOUNS = r"(?:prompt|instruction|question|query|task|response|version)"
_LABEL_WORDS = r"(?:(?:rewritten|created|evolved|revised|improved)[ \t]+" + _NOUNS + r"|new[ \t]+(?:prompt|instruction))"
_HASH_LABEL = re.compile(
    r"#[ \t]*(?:the[ \t]+)?" + _LABEL_WORDS + r"[ \t]*#(?:\*\*|__)?[ \t]*(?::(?:\*\*|__)?)?", re.IGNORECASE
)
_LINE_LABEL = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(?:the[ \t]+)?" + _LABEL_WORDS
    + r"[ \t]*(?:\*\*|__)?[ \t]*[:\-\u2013](?:\*\*|__)?[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING_LABEL = re.compile(
    r"^[ \t]*#{1,6}[ \t]*(?:the[ \t]+)?" + _LABEL_WORDS + r"[ \t]*$", re.IGNORECASE | re.MULTILINE
)
_PREAMBLE = re.compile(
    r"^[ \t]*(?:(?:sure|certainly|of course|okay|ok|absolutely|great|alright)\b[!,.]*[ \t]*)?"
    r"(?:here(?:'s|\u2019s| is| are)|below is|this is)\b[^\n:]*?"
    r"(?:\b(?:rewritten|rewrite|revised|evolved|complex|harder|created|improved|enhanced|updated)\b[^\n:]*?"
    r"\b(?:prompt|instruction|version|response|question|query)|\bnew (?:prompt|instruction|question))\b[^\n:]*:[ \t]*",
    re.IGNORECASE,
)
_INTERJECTION = re.compile(
    r"^[ \t]*(?:sure|certainly|of course|okay|ok|absolutely|great|alright)(?:[!,.][ \t]*)*(?:\n|$)", re.IGNORECASE
)
_NOTE = re.compile(
    r"\n[ \t]*\n[ \t]*(?:\*\*|__|\()?[ \t]*(?:"
    r"(?:explanation|changes made|rationale)\b"
    r"|notes?[ \t]*:?[ \t]*(?:\*\*|__)?[ \t]*(?:this|the|in the|i)[ \t]+(?:rewritten|new|revised|created|evolved|added|have|made|replaced|increased|changed|prompt|instruction)\b"
    r"|(?:this|the|in the|in this|in my) (?:rewritten|new|revised|created|evolved|improved) (?:prompt|instruction|version|question|response|answer)\b"
    r"|i (?:have )?(?:added|made|replaced|increased|rewrote|changed)\b)",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "\u201c": "\u201d", "`": "`"}


def clean_rewrite(text: str, *, strip_notes: bool = True) -> str:
    """Strip what models wrap a rewrite in: preambles, labels, quotes, bold, trailing notes.

    >>> clean_rewrite("Sure! Here is the rewritten prompt:\\n\\n\\"Name three red fruits.\\"")
    'Name three red fruits.'
    >>> clean_rewrite("#Rewritten Prompt#:\\n**Name three red fruits.**")
    'Name three red fruits.'
    >>> clean_rewrite("Here is a list: 3, 1, 2. Sort it.")
    'Here is a list: 3, 1, 2. Sort it.'
    """
    t = text.strip()
    hashes = list(_HASH_LABEL.finditer(t))
    if hashes and t[hashes[-1].end() :].strip():
        t = t[hashes[-1].end() :].strip()
    for _ in range(3):
        before = t
        t = _INTERJECTION.sub("", t, count=1).strip()
        t = _PREAMBLE.sub("", t, count=1).strip()
        fence = t.find("```")
        labels = [
            m
            for m in (*_LINE_LABEL.finditer(t), *_HEADING_LABEL.finditer(t))
            if fence < 0 or m.start() < fence  # a "# New version:" comment inside code is content
        ]
        if labels:
            last = max(labels, key=lambda m: m.end())
            if t[last.end() :].strip():
                t = t[last.end() :].strip()
        if strip_notes:
            note = _NOTE.search(t)
            if note and t[: note.start()].strip():
                t = t[: note.start()].strip()
        t = _unwrap(t)
        if t == before:
            break
    return t


_PLAIN_FENCES = ("", "text", "markdown", "md", "plaintext", "txt")


def _unwrap(t: str) -> str:
    if len(t) >= 6 and t.startswith("```") and t.endswith("```") and "```" not in t[3:-3]:
        head, _, body = t[3:-3].partition("\n")
        if head.strip().lower() in _PLAIN_FENCES and body.strip():  # a fence around prose, not code
            return body.strip()
    if len(t) >= 4 and t.startswith("**") and t.endswith("**") and "**" not in t[2:-2]:
        return t[2:-2].strip()
    if len(t) >= 2 and t[0] in _QUOTES and t[-1] == _QUOTES[t[0]] and t[0] not in t[1:-1] and _QUOTES[t[0]] not in t[1:-1]:
        return t[1:-1].strip()
    return t


def read_rewrite(text: str, *, output: str = "evolved_instruction", strip_notes: bool = True) -> Parsed:
    """Read a rewritten instruction (or response) into ``output``; never raises.

    >>> read_rewrite("Rewritten Prompt: List 3 primes above 100.").values
    {'evolved_instruction': 'List 3 primes above 100.'}
    >>> read_rewrite("**Rewritten Prompt:**").error
    'the model returned no rewrite (empty after removing labels and quotes)'
    """
    try:
        cleaned = clean_rewrite(text, strip_notes=strip_notes)
    except Exception as exc:  # defensive: a parser must never raise
        return Parsed(values={output: None}, error=f"could not read the rewrite: {exc}")
    if not cleaned or _only_label(cleaned):
        return Parsed(values={output: None}, error="the model returned no rewrite (empty after removing labels and quotes)")
    return Parsed(values={output: cleaned})


_LABEL_ONLY = re.compile(r"(?:the )?" + _LABEL_WORDS)
_LABEL_NOISE = re.compile(r"[\s*_#:\-\"'`]+")


def _only_label(t: str) -> bool:
    if len(t) > 80:  # a label is a few words: a longer text is a rewrite
        return False
    return bool(_LABEL_ONLY.fullmatch(_LABEL_NOISE.sub(" ", t).strip().lower()))


# -- the rewrite task -------------------------------------------------------------------


REWRITE_MAX_TOKENS = 512
"""Default ``max_tokens`` of a rewrite of an instruction: WizardLM asks for 10 to 20 added
words (in-depth) and prompts of similar length (in-breadth); 512 tokens leave room for
a long instruction and stop a model that never ends."""


def evol_instruct_task(
    *,
    mutations: Mapping[str, str] | None = None,
    seed: int = 0,
    name: str = "evol_instruct",
    params: Mapping[str, Any] | None = None,
) -> Task:
    """One Evol-Instruct round, a task: ``instruction`` -> ``evolved_instruction``.

    The mutation is drawn per row from ``seed`` and the instruction's text.
    ``max_tokens`` defaults to :data:`REWRITE_MAX_TOKENS` (a run's ``params=`` and this ``params`` override it).

    >>> step = evol_instruct_task(seed=1)
    >>> "Name three red fruits." in step.chat_for({"instruction": "Name three red fruits."})[0]["content"]
    True
    >>> step.read("#Rewritten Prompt#: Name three red fruits and their vitamins.").values
    {'evolved_instruction': 'Name three red fruits and their vitamins.'}
    """
    table = check_mutations(
        mutations if mutations is not None else wizardlm_mutations(), required=["instruction"], where=f"task {name!r}"
    )
    return task(
        name=name,
        inputs=["instruction"],
        outputs={"evolved_instruction": str},
        render=partial(render_mutation, mutations=table, seed=seed, fields=("instruction",)),
        parse=read_rewrite,
        defaults={"max_tokens": REWRITE_MAX_TOKENS}, params=dict(params or {}),
        example={"instruction": "Give three tips for staying healthy."},
        description="rewrite the instruction with a seeded Evol-Instruct mutation",
    )


def evolution_plan(
    step: Task,
    *,
    n: int,
    store_evolutions: bool,
    include_original: bool,
    answer: Task | None,
    source: str,
    evolved: str,
    answered: str = "answer",
    name: str,
) -> Plan:
    """``n`` rounds of ``step`` (``source`` -> ``evolved``), then optionally ``answer`` each result.

    With ``store_evolutions`` the rounds are kept as a list ``<evolved>s`` (the original
    first when ``include_original``) and each gets its answer in ``<answered>s``;
    otherwise the last round is ``evolved`` and its answer ``answered``.
    """
    if include_original and not store_evolutions:
        msg = f"{name}: include_original keeps the original in the list of evolutions; it needs store_evolutions=True"
        raise ValueError(msg)
    plan = evolve(
        step,
        n,
        keep="all" if store_evolutions else "last",
        feed={evolved: source},
        include_original=include_original,
        name=name,
    )
    if answer is None:
        return plan
    _check_answer_task(answer, where=name)
    if not store_evolutions:
        return plan >> answer.map_inputs(instruction=evolved).map_outputs(generation=answered).named(f"{name}_answer")
    return plan >> _answer_each(answer, element=evolved, listed=evolved + "s", answered=answered, out=answered + "s", name=name)


def _check_answer_task(answer: Task, *, where: str) -> None:
    if not isinstance(answer, Task) or "instruction" not in answer.inputs or "generation" not in answer.outputs:
        got = f"inputs {list(answer.inputs)} and outputs {list(answer.outputs)}" if isinstance(answer, Task) else repr(answer)
        msg = f"{where}: generate_answers must be True, False or a task reading 'instruction' and writing 'generation' (like text_generation()), got {got}"
        raise ValueError(msg)


def answering_task(generate_answers: bool | Task, *, where: str) -> Task | None:
    """The task that answers instructions in a plan: None for False, :func:`text_generation`
    for True, or the task given (checked).

    >>> answering_task(True, where="p").name, answering_task(False, where="p") is None
    ('text_generation', True)
    """
    if generate_answers is False or generate_answers is None:
        return None
    answer = text_generation() if generate_answers is True else generate_answers
    _check_answer_task(answer, where=where)
    return answer


def _answer_each(answer: Task, *, element: str, listed: str, answered: str, out: str, name: str) -> Plan:
    """Answer every entry of the list column ``listed`` into the list column ``out``."""
    answer_one = answer.map_inputs(instruction=element).map_outputs(generation=answered).named(f"{name}_answer")
    return explode(listed, into=element) >> answer_one >> group({answered: out})


def evol_instruct(
    *,
    n: int = 1,
    store_evolutions: bool = False,
    include_original: bool = False,
    generate_answers: bool | Task = False,
    mutations: Mapping[str, str] | None = None,
    seed: int = 0,
    name: str = "evol_instruct",
) -> Plan:
    """Evol-Instruct: ``n`` rewrite rounds of ``instruction``; a Plan.

    Output: ``evolved_instruction`` (last round), or with ``store_evolutions`` the list
    ``evolved_instructions`` (original first when ``include_original``).
    ``generate_answers`` adds ``answer`` / ``answers`` (one per listed instruction),
    written by :func:`text_generation` (``True``) or by the task given.
    ``instruction`` is kept as it was.

    >>> print(evol_instruct(n=3))
    Plan
      1. evolve x3 (last round)  evol_instruct  [generator]  instruction -> evolved_instruction
    """
    step = evol_instruct_task(mutations=mutations, seed=seed, name=name)
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


# -- writing instructions from nothing --------------------------------------------------


_FRESH_PREAMBLE = re.compile(
    r"^[ \t]*(?:(?:sure|certainly|of course|okay|ok|absolutely|great|alright)\b[!,.]*[ \t]*)?"
    r"(?:here(?:'s|\u2019s| is)|this is)[ \t]+(?:a|an|one|my)[ \t]+(?:\w+[ \t]+){0,3}?"
    r"(?:question|instruction|query|prompt|request)\b[^\n:]*:[ \t]*",
    re.IGNORECASE,
)


def read_fresh(text: str) -> Parsed:
    """Read a fresh instruction into ``seed_instruction``, dropping "Here's a question:" preambles.

    >>> read_fresh("Sure! Here's a question: Why is the sky blue?").values
    {'seed_instruction': 'Why is the sky blue?'}
    """
    stripped = text.strip()
    rest = _FRESH_PREAMBLE.sub("", stripped, count=1)
    return read_rewrite(rest if rest.strip() else stripped, output="seed_instruction")


def _render_fresh(row: Row, *, template: str | None) -> Chat:
    """The fresh-start chat: the packaged prompt, or the user's ``template`` text, about ``topic`` if any."""
    topic = row.get("topic")
    if template is not None:
        return chat(render_source(template, topic=topic).strip())
    return chat(render_template("evol_instruct/fresh_start.jinja2", topic=topic))


def fresh_start(*, name: str = "fresh_start", template: str | None = None) -> Task:
    """Write one instruction from nothing (about ``topic`` when the frame has that column).

    Its output is ``seed_instruction``. Rows with the same topic render the same chat, so
    use it under :func:`distilfn.fanout` to draw distinct samples.

    >>> print(fresh_start().preview({}))
    [user]
    Write one question or instruction that a human might ask an AI assistant.
    It can be about any domain.
    The question or instruction must be reasonable, self-contained and answerable by an AI assistant from text alone.
    Answer with the question or instruction only.
    """
    if template is not None:
        names = check_template(template, where=f"task {name!r}")
        if names - {"topic"}:
            msg = f"task {name!r}: a fresh-start template may read only 'topic', got {sorted(names)}"
            raise ValueError(msg)
    return task(
        name=name,
        inputs=[],
        optional_inputs=["topic"],
        outputs={"seed_instruction": str},
        render=partial(_render_fresh, template=template),
        parse=read_fresh,
        defaults={"max_tokens": REWRITE_MAX_TOKENS},
        description="write one new instruction",
    )


def copy_seed(row: Row) -> dict[str, Any]:
    """``seed_instruction`` as ``instruction`` (a generator plan with no evolution rounds)."""
    return {"instruction": row["seed_instruction"]}


def fits_length(row: Row, *, min_length: int, max_length: int | None) -> bool:
    """Whether the row's ``instruction`` is text of ``min_length`` to ``max_length`` bytes (UTF-8).

    >>> fits_length({"instruction": "héllo"}, min_length=6, max_length=None)
    True
    >>> fits_length({"instruction": None}, min_length=0, max_length=None)
    False
    """
    text = row.get("instruction")
    if not isinstance(text, str):
        return False
    size = len(text.encode("utf-8"))
    return size >= min_length and (max_length is None or size <= max_length)


def generator_plan(
    step: Task,
    *,
    num_instructions: int,
    n: int,
    min_length: int,
    max_length: int | None,
    generate_answers: bool | Task,
    seed_task: Task,
    name: str,
) -> Plan:
    """``num_instructions`` fresh instructions per row, each evolved ``n`` times, length-filtered.

    The result is ``instruction`` (and ``answer``); the fresh draft stays in ``seed_instruction``.
    """
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 0:
        msg = f"{name}: min_length must be a whole number >= 0, got {min_length!r}"
        raise ValueError(msg)
    if max_length is not None and (not isinstance(max_length, int) or max_length < min_length):
        msg = f"{name}: max_length must be None or a whole number >= min_length ({min_length}), got {max_length!r}"
        raise ValueError(msg)
    body: Any = seed_task
    if n > 0:
        rewrite = step.map_inputs(instruction="seed_instruction").map_outputs(evolved_instruction="instruction")
        body = body >> evolve(rewrite, n, feed={"evolved_instruction": "instruction"}, name=name)
    else:
        body = body >> map_rows(
            copy_seed, outputs={"instruction": str}, inputs=["seed_instruction"], name=f"{name}_copy"
        )
    fits = partial(fits_length, min_length=min_length, max_length=max_length)
    plan = fanout(body, num_instructions) >> filter_rows(fits, inputs=["instruction"], name=f"{name}_length")
    answer = answering_task(generate_answers, where=name)
    if answer is not None:
        plan = plan >> answer.map_outputs(generation="answer").named(f"{name}_answer")
    return plan


def evol_instruct_generator(
    *,
    num_instructions: int = 1,
    n: int = 1,
    min_length: int = 16,
    max_length: int | None = 4096,
    mutations: Mapping[str, str] | None = None,
    seed: int = 0,
    generate_answers: bool | Task = False,
    name: str = "evol_instruct_generator",
) -> Plan:
    """Write ``num_instructions`` new instructions per input row, then evolve each
    ``n`` times; a Plan.

    A plan needs rows: run it on a frame with one row per batch you want, e.g.
    ``plan.run(pl.DataFrame({"topic": ["chemistry", "poetry"]}))`` for ``num_instructions``
    instructions about each topic, or ``pl.DataFrame({"batch": [0]})`` for any domain.
    Each draft is a separate sample (:func:`distilfn.fanout`), so drafts differ. Rows whose
    final ``instruction`` is shorter than ``min_length`` or longer than ``max_length``
    bytes (UTF-8) are dropped. Outputs: ``seed_instruction`` (the draft), ``instruction``,
    and ``answer`` with ``generate_answers`` (True for :func:`text_generation`, or a task).

    >>> print(evol_instruct_generator(num_instructions=4, n=2))
    Plan
      1. fanout x4
          1. fresh_start  [generator]  - -> seed_instruction
          2. evolve x2 (last round)  evol_instruct_generator  [generator]  seed_instruction -> instruction
          3. evol_instruct_generator_length  [filter]  instruction
    """
    step = evol_instruct_task(mutations=mutations, seed=seed, name=name)
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
