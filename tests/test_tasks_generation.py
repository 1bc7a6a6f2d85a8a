"""Generation tasks: text generation, Self-Instruct, Evol-Instruct, Deita evolutions, elimination."""

from __future__ import annotations

import itertools
import re

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from distilfn import Plan, Task
from distilfn.tasks._templates import template_source
from distilfn.tasks.elimination import (
    eliminate_failed_evolutions,
    elimination_reason,
    equal_prompts_judge,
    read_equal,
)
from distilfn.tasks.evol_complexity import deita_complexity_mutations, evol_complexity_generator, evol_complexity
from distilfn.tasks.evol_instruct import (
    WIZARDLM_MUTATIONS,
    evol_instruct_task,
    evol_instruct_generator,
    evol_instruct,
    fresh_start,
    read_rewrite,
)
from distilfn.tasks.evol_quality import evol_quality_task, evol_quality, read_evolved_response
from distilfn.tasks.self_instruct import parse_instruction_list, self_instruct
from distilfn.tasks.text_generation import read_generation, text_generation, ultrafeedback_principles

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY_SENTENCES = {
    "add_constraints": "Please add one more constraints/requirements",
    "deepening": "the depth and breadth of the inquiry can be increased",
    "concretizing": "replace general concepts with more specific concepts",
    "increased_reasoning_steps": "explicitly request multiple-step reasoning",
    "complicate_input": "written in a structured format",
    "breadth": "draw inspiration from the #Given Prompt#",
}

# -- strategies -------------------------------------------------------------------------

word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9)
inner_punct = st.sampled_from(["", "", "", ",", ";", " -", " (x)", "'s", " 42", ":"])


@st.composite
def sentences(draw, *, multiline: bool = True) -> str:
    """Well-formed instruction-like text: starts with a capital letter, ends with a letter or stop."""
    words = draw(st.lists(word, min_size=1, max_size=14))
    parts = [w + draw(inner_punct) for w in words[:-1]] + [words[-1]]
    text = " ".join(parts)
    text = text[0].upper() + text[1:] + draw(st.sampled_from(["", ".", "?", "!"]))
    if multiline and draw(st.booleans()):
        text += "\n" + draw(sentences(multiline=False))
    return text


space = st.sampled_from(["", " ", "\n", "\n\n", "  \n", "\t"])
REWRITE_WRAPPERS = [
    "{t}",
    "#Rewritten Prompt#:\n{t}",
    "#Rewritten Prompt#: {t}",
    "Rewritten Prompt: {t}",
    "**Rewritten Prompt:**\n{t}",
    "**Rewritten Prompt**: {t}",
    "## Rewritten Prompt\n{t}",
    "#Created Prompt#:\n{t}",
    "Sure! Here is the rewritten prompt:\n\n{t}",
    "Sure! Here is the rewritten prompt: {t}",
    "Here's a more complex version of the prompt:\n{t}",
    "Certainly!\n\n#Rewritten Prompt#:\n{t}",
    '"{t}"',
    "\u201c{t}\u201d",
    "**{t}**",
    'Rewritten Prompt: "{t}"',
    "#The Given Prompt#:\nSomething simple.\n#Rewritten Prompt#:\n{t}",
    "{t}\n\n(Note: I added a constraint to make it harder.)",
    "{t}\n\nExplanation: the rewritten prompt asks for more detail.",
]

# -- text_generation --------------------------------------------------------------------


def test_text_generation_renders_the_instruction_with_an_optional_system_prompt():
    t = text_generation()
    assert t.chat_for({"instruction": "What is 2+2?"}) == [{"role": "user", "content": "What is 2+2?"}]
    assert t.outputs == ("generation",) and t.inputs == ("instruction",)
    t2 = text_generation(system_prompt="Answer in French.")
    assert t2.chat_for({"instruction": "Hi"})[0] == {"role": "system", "content": "Answer in French."}


def test_text_generation_template_places_named_columns():
    t = text_generation(template="Context: {{ context }}\nQ: {{ question }}", columns=["context", "question"])
    assert t.input_columns == ("context", "question")
    assert t.chat_for({"context": "Sky is blue.", "question": "Colour?"})[-1]["content"] == "Context: Sky is blue.\nQ: Colour?"


def test_text_generation_rejects_templates_reading_unknown_columns():
    with pytest.raises(ValueError, match="'question'"):
        text_generation(template="{{ question }}", columns=["instruction"])
    with pytest.raises(ValueError, match="give a template"):
        text_generation(columns=["a", "b"])
    with pytest.raises(ValueError, match="not valid jinja2"):
        text_generation(template="{{ instruction ")


def test_templates_are_checked_when_the_task_is_built():
    with pytest.raises(ValueError, match="not valid jinja2 .No filter named 'shout'"):
        text_generation(template="{{ instruction | shout }}")
    with pytest.raises(ValueError, match="mutation 'loud': the template is not valid jinja2"):
        evol_instruct_task(mutations={"loud": "{{ instruction | shout }}"})
    with pytest.raises(ValueError, match="not valid jinja2"):
        fresh_start(template="About {{ topic ")
    with pytest.raises(ValueError, match="may read only 'topic'"):
        fresh_start(template="About {{ topic }} for {{ audience }}")
    assert fresh_start(template="Ask about {{ topic }}.").chat_for({"topic": "tides"}) == [
        {"role": "user", "content": "Ask about tides."}
    ]


GENERATION_TASKS = [
    text_generation(),
    self_instruct(num_instructions=3),
    evol_instruct_task(),
    evol_quality_task(),
    fresh_start(),
    equal_prompts_judge(),
]


@pytest.mark.parametrize("task", GENERATION_TASKS, ids=lambda t: t.name)
def test_generation_parsers_read_any_text_into_their_declared_types(task):
    from distilfn.testing import check_parser

    check_parser(task, max_examples=100)


def test_generation_tasks_declare_their_output_types():
    assert text_generation().output_dtypes == {"generation": pl.String}
    assert self_instruct().output_dtypes == {"instructions": pl.List(pl.String)}
    assert evol_instruct_task().output_dtypes == {"evolved_instruction": pl.String}
    assert evol_quality_task().output_dtypes == {"evolved_response": pl.String}
    assert fresh_start().output_dtypes == {"seed_instruction": pl.String}
    assert equal_prompts_judge().output_dtypes == {"equal": pl.Boolean}
    flags = eliminate_failed_evolutions().steps[0]
    assert dict(flags.types) == {"eliminated": bool, "elimination_reason": str}


def test_ultrafeedback_principles_are_the_papers_five():
    table = ultrafeedback_principles()
    assert set(table) == {"helpfulness", "harmlessness", "honesty", "truthfulness", "verbalized_calibration"}
    assert all(len(v) == 11 for k, v in table.items() if k != "verbalized_calibration")
    assert "Confidence:" in table["verbalized_calibration"][0]


def test_principle_sampling_is_seeded_by_row_and_follows_the_distribution():
    principles = {"pirate": ["Talk like a pirate."], "robot": ["Talk like a robot.", "Beep first."]}
    t = text_generation(principles=principles, principles_distribution={"pirate": 0.5, "robot": 0.5}, seed=7)
    rows = [{"instruction": f"question {i}"} for i in range(60)]
    systems = [t.chat_for(r)[0]["content"] for r in rows]
    assert systems == [t.chat_for(r)[0]["content"] for r in rows]  # deterministic
    assert set(systems) == {"Talk like a pirate.", "Talk like a robot.", "Beep first."}
    only_robot = text_generation(principles=principles, principles_distribution={"pirate": 0.0, "robot": 1.0})
    assert all(only_robot.chat_for(r)[0]["content"] != "Talk like a pirate." for r in rows)
    other_seed = text_generation(principles=principles, principles_distribution={"pirate": 0.5, "robot": 0.5}, seed=8)
    assert [other_seed.chat_for(r)[0]["content"] for r in rows] != systems


def test_ultrafeedback_principles_default_mix_and_system_prompt_first():
    t = text_generation(principles="ultrafeedback", system_prompt="Be brief.")
    known = {p for ps in ultrafeedback_principles().values() for p in ps}
    for i in range(20):
        system = t.chat_for({"instruction": f"q{i}"})[0]["content"]
        head, _, principle = system.partition("\n\n")
        assert head == "Be brief." and principle in known
        assert principle not in ultrafeedback_principles()["harmlessness"]


def test_principle_settings_are_checked():
    with pytest.raises(ValueError, match="sum to 1"):
        text_generation(principles={"a": ["x"]}, principles_distribution={"a": 0.5})
    with pytest.raises(ValueError, match="'b'"):
        text_generation(principles={"a": ["x"]}, principles_distribution={"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match="ultrafeedback"):
        text_generation(principles="ultrafeedbak")
    with pytest.raises(ValueError, match="needs principles"):
        text_generation(principles_distribution={"a": 1.0})


@SETTINGS
@given(st.text())
def test_read_generation_never_raises(text):
    parsed = read_generation(text)
    assert (parsed.values["generation"] is None) == (not text.strip())


@SETTINGS
@given(sentences(), space, space)
def test_read_generation_round_trips(text, before, after):
    assert read_generation(before + text + after).values == {"generation": text}


# -- evol_instruct step -----------------------------------------------------------------


def chosen_mutation(chat_messages) -> str:
    content = chat_messages[-1]["content"]
    found = [name for name, key in KEY_SENTENCES.items() if key in content]
    assert len(found) == 1, content
    return found[0]


def test_every_wizardlm_template_cites_its_source_and_places_the_instruction():
    for name in WIZARDLM_MUTATIONS:
        source = template_source(f"evol_instruct/{name}.jinja2")
        assert source.startswith("{# Source: WizardLM") and "2304.12244" in source.splitlines()[0]
        assert "{{ instruction }}" in source


@SETTINGS
@given(sentences(), st.integers(0, 2**31 - 1))
def test_rendered_rewrite_prompt_holds_the_instruction_and_one_mutation(instruction, seed):
    step = evol_instruct_task(seed=seed)
    messages = step.chat_for({"instruction": instruction})
    assert instruction in messages[-1]["content"]
    chosen_mutation(messages)
    assert messages == step.chat_for({"instruction": instruction})  # same seed, same row: same chat


def test_mutation_choice_varies_across_rows_and_seeds():
    rows = [{"instruction": f"Explain topic number {i}."} for i in range(60)]
    by_seed = {seed: [chosen_mutation(evol_instruct_task(seed=seed).chat_for(r)) for r in rows] for seed in (0, 1)}
    assert set(by_seed[0]) == set(WIZARDLM_MUTATIONS)
    assert by_seed[0] != by_seed[1]


def test_custom_mutations_are_used_and_checked():
    step = evol_instruct_task(mutations={"shorter": "Make this shorter: {{ instruction }}"})
    assert step.chat_for({"instruction": "Hello there"})[0]["content"] == "Make this shorter: Hello there"
    with pytest.raises(ValueError, match="must place"):
        evol_instruct_task(mutations={"bad": "no placeholder"})
    with pytest.raises(ValueError, match="'response'"):
        evol_instruct_task(mutations={"bad": "{{ instruction }} {{ response }}"})


@SETTINGS
@given(st.text())
def test_read_rewrite_never_raises(text):
    parsed = read_rewrite(text)
    value = parsed.values["evolved_instruction"]
    assert value is None or (isinstance(value, str) and value == value.strip() and value)
    assert (value is None) == (parsed.error is not None)


@SETTINGS
@given(sentences(), st.sampled_from(REWRITE_WRAPPERS), space, space)
def test_read_rewrite_round_trips_through_model_wrappings(text, wrapper, before, after):
    assume("**" not in text and '"' not in text)
    answer = before + wrapper.format(t=text) + after
    assert read_rewrite(answer).values == {"evolved_instruction": text}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "Sure! Here is the rewritten prompt:\n\nExplain how photosynthesis converts light into chemical energy, "
            "naming both stages.",
            "Explain how photosynthesis converts light into chemical energy, naming both stages.",
        ),
        (
            "#Rewritten Prompt#:\nWrite a haiku about autumn rain that mentions a red umbrella.\n\n"
            "In the rewritten prompt, I added a specific object to make it harder.",
            "Write a haiku about autumn rain that mentions a red umbrella.",
        ),
        (
            "**Rewritten Prompt:** Given the table below, compute the average age.\n\n| name | age |\n|---|---|\n| Ann | 31 |",
            "Given the table below, compute the average age.\n\n| name | age |\n|---|---|\n| Ann | 31 |",
        ),
        (
            "Here is a list of numbers: 4, 8, 1. Sort them and explain your method.",
            "Here is a list of numbers: 4, 8, 1. Sort them and explain your method.",
        ),
        (
            "Rewritten Prompt: Fix the bug in this code:\n```python\n# New version: uses a set\nseen = {1, 2}\n```",
            "Fix the bug in this code:\n```python\n# New version: uses a set\nseen = {1, 2}\n```",
        ),
        (
            "List three prime numbers above 100.\n\nNote: the answer must be given in Roman numerals.",
            "List three prime numbers above 100.\n\nNote: the answer must be given in Roman numerals.",
        ),
    ],
)
def test_read_rewrite_on_realistic_answers(answer, expected):
    assert read_rewrite(answer).values["evolved_instruction"] == expected


def test_read_rewrite_reports_an_empty_rewrite():
    for answer in ["", "   ", "#Rewritten Prompt#:", "**Rewritten Prompt:**\n"]:
        parsed = read_rewrite(answer)
        assert parsed.values == {"evolved_instruction": None} and parsed.error


# -- Deita -----------------------------------------------------------------------------


def test_evol_complexity_uses_the_four_in_depth_methods():
    assert list(deita_complexity_mutations()) == [
        "add_constraints",
        "deepening",
        "concretizing",
        "increased_reasoning_steps",
    ]
    plan = evol_complexity(n=2)
    step = plan.steps[0].task
    seen = {chosen_mutation(step.chat_for({"instruction": f"Task {i}"})) for i in range(40)}
    assert seen == set(deita_complexity_mutations())


def test_evol_quality_prompt_holds_instruction_response_and_method():
    step = evol_quality_task(seed=3)
    keys = ["more helpful", "more relevant", "more in-depth", "creativity", "detail level"]
    seen = set()
    for i in range(40):
        content = step.chat_for({"instruction": f"Question {i}", "response": f"Answer {i}"})[0]["content"]
        assert f"#Given Prompt#:\nQuestion {i}\n" in content and f"#Given Response#:\nAnswer {i}\n" in content
        hits = [k for k in keys if k in content]
        assert len(hits) == 1
        seen.add(hits[0])
    assert seen == set(keys)


@SETTINGS
@given(st.text())
def test_read_evolved_response_never_raises(text):
    read_evolved_response(text)


def test_read_evolved_response_keeps_final_answer_lines():
    answer = "Here is the rewritten response:\n\n12 * 3 = 36, and 36 + 6 = 42.\nFinal answer: 42"
    assert read_evolved_response(answer).values == {"evolved_response": "12 * 3 = 36, and 36 + 6 = 42.\nFinal answer: 42"}


@SETTINGS
@given(sentences(), st.sampled_from(["{t}", "#Rewritten Response#:\n{t}", "Here is the rewritten response:\n\n{t}"]), space)
def test_read_evolved_response_round_trips(text, wrapper, around):
    assert read_evolved_response(around + wrapper.format(t=text) + around).values == {"evolved_response": text}


# -- self_instruct ---------------------------------------------------------------------


def test_self_instruct_prompt_holds_context_count_application_and_criteria():
    t = self_instruct(num_instructions=3, application_description="A haiku assistant", criteria_for_query_generation="Be short.")
    content = t.chat_for({"input": "autumn leaves"})[-1]["content"]
    for piece in ["autumn leaves", "3", "A haiku assistant", "Be short."]:
        assert piece in content
    assert "self-contained" in self_instruct().chat_for({"input": "x"})[-1]["content"]


LIST_STYLES = ["{i}. {t}", "{i}) {t}", "Instruction {i}: {t}", "Query {i}: {t}", "**{i}.** {t}", "- {t}", "* {t}", "{t}"]


@SETTINGS
@given(
    st.lists(sentences(multiline=False), min_size=1, max_size=8),
    st.sampled_from(LIST_STYLES),
    st.sampled_from(["\n", "\n\n"]),
    st.sampled_from(["", "Here are the queries:\n", "Sure! Here are 5 user queries:\n\n"]),
    st.sampled_from(["", "\n\nI hope these help!"]),
)
def test_parse_instruction_list_round_trips(items, style, sep, preamble, outro):
    assume(all(not re.match(r"^\d", t) for t in items))
    text = preamble + sep.join(style.format(i=i + 1, t=t) for i, t in enumerate(items)) + outro
    assert parse_instruction_list(text) == items


@SETTINGS
@given(st.text())
def test_self_instruct_parser_never_raises(text):
    parsed = self_instruct(num_instructions=3).read(text)
    value = parsed.values["instructions"]
    assert value is None or (isinstance(value, list) and all(isinstance(v, str) and v for v in value))


def test_self_instruct_reads_a_realistic_answer():
    answer = (
        "Sure! Here are 3 diverse queries about photosynthesis:\n\n"
        "1. **What role does chlorophyll play in capturing light energy?**\n"
        "2. Describe the Calvin cycle step by step,\n   including where carbon fixation happens.\n"
        "3. Compare C3 and C4 plants in hot climates.\n\n"
        "These queries mix questions and instructions."
    )
    assert self_instruct(num_instructions=3).read(answer).values["instructions"] == [
        "What role does chlorophyll play in capturing light energy?",
        "Describe the Calvin cycle step by step, including where carbon fixation happens.",
        "Compare C3 and C4 plants in hot climates.",
    ]


def test_self_instruct_keeps_a_short_list_with_an_error_and_trims_a_long_one():
    t = self_instruct(num_instructions=2)
    short = t.read("1. Only one.")
    assert short.values["instructions"] == ["Only one."] and "expected 2" in short.error
    assert t.read("1. A.\n2. B.\n3. C.").values["instructions"] == ["A.", "B."]
    assert t.read("").error


# -- elimination -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Not Equal", False),
        ("Equal", True),
        ("**Not equal.**", False),
        ("Your Judgement: Equal", True),
        ("The two prompts are different.", False),
        ("They are not the same.", False),
    ],
)
def test_read_equal_on_realistic_answers(answer, expected):
    assert read_equal(answer).values == {"equal": expected}


@SETTINGS
@given(st.text())
def test_read_equal_never_raises(text):
    assert read_equal(text).values["equal"] in (True, False, None)


def test_equal_prompts_judge_uses_the_wizardlm_prompt_and_judge_role():
    j = equal_prompts_judge(first="a", second="b")
    assert j.role == "judge"
    content = j.chat_for({"a": "Name a fruit.", "b": "Name a red fruit."})[-1]["content"]
    assert "The First Prompt: Name a fruit." in content and "The Second Prompt: Name a red fruit." in content
    assert "Just answer: Equal or Not Equal" in content


def test_elimination_rules():
    ok = "List three primes above 100 and prove each is prime."
    assert elimination_reason(ok, "101, 103 and 107 are prime because none has a divisor below its root.") is None
    assert "information gain" in elimination_reason(ok, "fine answer here", equal=True)
    assert "sorry" in elimination_reason(ok, "Sorry, I can't help with that.")
    long_sorry = "Sorry for the wait. " + "Here is a full and detailed answer. " * 20
    assert elimination_reason(ok, long_sorry) is None
    assert "stop words" in elimination_reason(ok, "... and, the; of it!")
    assert "'#rewritten prompt#'" in elimination_reason("#Rewritten Prompt#: list primes", "101")
    assert "given prompt" in elimination_reason("Rewrite the given prompt to be harder.", "ok then fine answer")
    assert "rewrite failed" in elimination_reason(None, "x")


def run_fake(plan: Plan, df: pl.DataFrame, reply) -> tuple[pl.DataFrame, list[str]]:
    prompts: list[str] = []

    def model(chats):
        out = []
        for c in chats:
            prompts.append(c[-1]["content"])
            out.append(reply(c[-1]["content"]))
        return out

    return plan.run(df, model=model), prompts


def fake_reply(prompt: str) -> str:
    if "#Rewritten Prompt#" in prompt or "#Created Prompt#" in prompt:
        given_ = re.split(r"#(?:The )?Given Prompt#:\n", prompt)[-1].split("\n#")[0]
        return f"Sure! Here is the rewritten prompt:\n{given_} Then explain why."
    if "Equal or Not Equal" in prompt:
        return "Not Equal"
    if "Write one question or instruction" in prompt:
        return "What is the tallest mountain in the Alps?"
    return f"Answer: {prompt[:30]}"


def test_elimination_flags_and_drops_rows():
    df = pl.DataFrame(
        {
            "instruction": ["a", "b", "c"],
            "evolved_instruction": ["Name a red fruit.", "Rewrite the given prompt.", "Name a blue fruit."],
            "answer": ["Strawberry, because it is red.", "Done: the fruit is a pear.", "Sorry, none."],
        }
    )
    flagged, prompts = run_fake(eliminate_failed_evolutions(judge_equal=True), df, fake_reply)
    assert len(prompts) == 3
    assert flagged["eliminated"].to_list() == [False, True, True]
    assert flagged["elimination_reason"][0] is None
    dropped, _ = run_fake(eliminate_failed_evolutions(drop=True), df, fake_reply)
    assert dropped["evolved_instruction"].to_list() == ["Name a red fruit."]


def test_elimination_needs_a_bool_equal_column():
    from distilfn import task

    stringly = task(name="eq", inputs=["instruction", "evolved_instruction"], outputs=["equal"], render=lambda r: [], parse=read_equal)
    with pytest.raises(TypeError, match=r"declare its 'equal' column as bool \(outputs=\{'equal': bool\}\), got String"):
        eliminate_failed_evolutions(judge_equal=stringly)
    typed = task(name="eq", inputs=["instruction", "evolved_instruction"], outputs={"equal": bool}, render=lambda r: [], parse=read_equal)
    assert isinstance(eliminate_failed_evolutions(judge_equal=typed), Plan)


def test_generator_without_rounds_copies_the_draft_and_filters_by_length():
    plan = evol_instruct_generator(num_instructions=3, n=0, min_length=20)
    out, prompts = run_fake(plan, pl.DataFrame({"topic": ["glaciers"]}), lambda p: "How do glaciers move downhill?")
    assert len(prompts) == 3 and out["instruction"].to_list() == ["How do glaciers move downhill?"] * 3
    out, _ = run_fake(plan, pl.DataFrame({"topic": ["glaciers"]}), lambda p: "Why ice?")
    assert out.height == 0


# -- plans end to end ------------------------------------------------------------------

ROWS = pl.DataFrame({"instruction": ["Name a fruit.", "Add 2 and 3.", "Define entropy."]})


def count(prompts: list[str]) -> tuple[int, int]:
    rewrites = sum("#Rewritten Prompt#" in p or "#Created Prompt#" in p for p in prompts)
    return rewrites, len(prompts) - rewrites


def test_evol_instruct_stores_every_round_and_answers_each():
    plan = evol_instruct(n=3, store_evolutions=True, generate_answers=True)
    out, prompts = run_fake(plan, ROWS, fake_reply)
    assert count(prompts) == (3 * 3, 3 * 3)
    assert out["instruction"].to_list() == ROWS["instruction"].to_list()
    first = out.row(0, named=True)
    assert first["evolved_instructions"] == [
        "Name a fruit. Then explain why.",
        "Name a fruit. Then explain why. Then explain why.",
        "Name a fruit. Then explain why. Then explain why. Then explain why.",
    ]
    assert [a.startswith("Answer: ") for a in first["answers"]] == [True] * 3
    assert first["answers"][2] == "Answer: " + first["evolved_instructions"][2][:30]


def test_evol_instruct_last_round_only_and_with_original():
    out, prompts = run_fake(evol_instruct(n=3, generate_answers=True), ROWS, fake_reply)
    assert count(prompts) == (9, 3)
    assert out["evolved_instruction"][1] == "Add 2 and 3." + " Then explain why." * 3
    assert out["answer"][1] == "Answer: " + out["evolved_instruction"][1][:30]
    out, prompts = run_fake(
        evol_instruct(n=2, store_evolutions=True, include_original=True, generate_answers=True), ROWS, fake_reply
    )
    assert count(prompts) == (6, 9)
    assert out["evolved_instructions"][0].to_list()[0] == "Name a fruit."
    assert len(out["answers"][0]) == 3
    with pytest.raises(ValueError, match="store_evolutions"):
        evol_instruct(include_original=True)


def test_evol_quality_plan_keeps_original_response_first():
    df = pl.DataFrame({"instruction": ["Name a fruit."], "response": ["Apple."]})
    out, prompts = run_fake(
        evol_quality(n=2, store_evolutions=True, include_original=True),
        df,
        lambda p: "#Rewritten Response#:\n" + p.split("#Given Response#:\n")[1].split("\n#")[0] + " Crunchy.",
    )
    assert len(prompts) == 2
    assert out["evolved_responses"][0].to_list() == ["Apple.", "Apple. Crunchy.", "Apple. Crunchy. Crunchy."]


def test_generators_write_distinct_samples_and_filter_by_length():
    numbers = itertools.count()

    def reply(prompt: str) -> str:
        if "Write one question or instruction" in prompt:
            assert "It should be about: glaciers" in prompt
            k = next(numbers)
            return "Hi?" if k == 0 else f"How fast does glacier number {k} move?"
        return fake_reply(prompt)

    plan = evol_instruct_generator(num_instructions=4, n=1, min_length=25)
    out, prompts = run_fake(plan, pl.DataFrame({"topic": ["glaciers"]}), reply)
    assert count(prompts) == (4, 4)  # 4 drafts, 4 rewrites
    assert len(out) == 3  # "Hi? Then explain why." is under 25 bytes
    assert len(set(out["instruction"].to_list())) == 3
    assert all(i.endswith("Then explain why.") for i in out["instruction"].to_list())
    out, _ = run_fake(
        evol_complexity_generator(num_instructions=2, n=1, generate_answers=True),
        pl.DataFrame({"batch": [0]}),
        fake_reply,
    )
    assert len(out) == 2 and all(a.startswith("Answer: ") for a in out["answer"].to_list())


def test_plans_and_steps_are_frozen_values():
    step = evol_instruct_task()
    assert isinstance(step, Task)
    with pytest.raises(AttributeError):
        step.name = "x"  # type: ignore[misc]
    assert isinstance(evol_instruct(n=2), Plan)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("What is the boiling point of water at 3000 m?", "What is the boiling point of water at 3000 m?"),
        ("Sure! Here's a question: Why do cats purr?", "Why do cats purr?"),
        ("Here is one instruction an AI assistant might get:\n\n\"Summarise the French Revolution.\"", "Summarise the French Revolution."),
        ("Here is the list: 3, 1, 2. Sort it.", "Here is the list: 3, 1, 2. Sort it."),
    ],
)
def test_fresh_start_reads_realistic_answers(answer, expected):
    assert fresh_start().read(answer).values == {"seed_instruction": expected}


@SETTINGS
@given(st.text())
def test_fresh_start_parser_never_raises(text):
    fresh_start().read(text)


def test_the_answering_task_must_read_instruction_and_write_generation():
    with pytest.raises(ValueError, match="generate_answers"):
        evol_instruct( generate_answers=text_generation(template="{{ q }}", columns=["q"]))
    custom = text_generation(system_prompt="Answer in one sentence.")
    out, prompts = run_fake(evol_instruct(n=1,  generate_answers=custom), ROWS.head(1), fake_reply)
    assert count(prompts) == (1, 1) and out["answer"][0].startswith("Answer: ")


@pytest.mark.parametrize("name", ["oss_instruct.py", "haiku_self_instruct.py", "equal_prompts_judge.py"])
def test_examples_run_with_their_scripted_model(name, monkeypatch, capsys):
    import pathlib
    import runpy

    path = pathlib.Path(__file__).parent.parent / "examples" / name
    monkeypatch.setattr("sys.argv", [str(path)])
    runpy.run_path(str(path), run_name="__main__")
    printed = capsys.readouterr().out
    assert {"oss_instruct.py": "SOLUTION:", "haiku_self_instruct.py": "heron", "equal_prompts_judge.py": "no information gain"}[name] in printed


def test_every_generation_template_starts_with_a_citation():
    import pathlib

    root = pathlib.Path(__file__).parent.parent / "distilfn" / "tasks" / "templates"
    files = [p for d in ("text_generation", "self_instruct", "evol_instruct") for p in (root / d).rglob("*.jinja2")]
    files += [root / "deita" / f"complexity_{m}.jinja2" for m in deita_complexity_mutations()]
    files += [root / "deita" / f"quality_{m}.jinja2" for m in ("helpfulness", "relevance", "depth", "creativity", "details")]
    assert len(files) == 24
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("{# Source: ") and first.endswith("#}") and re.search(r"20\d\d", first), path
