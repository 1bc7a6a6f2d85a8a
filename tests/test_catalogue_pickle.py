"""Every catalogue task and plan pickles with the standard ``pickle`` module and behaves the
same after unpickling, here and in a fresh interpreter; user tasks of lambdas go through
cloudpickle."""

from __future__ import annotations

import functools
import pathlib
import pickle
import subprocess
import sys
import types

import jinja2
import msgspec
import pytest

from catalogue_cases import canonical_answer
from distilfn import tasks as T
from distilfn.task import Task
from distilfn.tasks.text_generation import _compiled, render_source
from distilfn.tasks.ultrafeedback import ASPECTS
from pickle_probe import leaves, probe, task_view

TESTS = pathlib.Path(__file__).parent
MUTATIONS = {"harder": "Make this harder: {{ instruction }}", "rarer": "Make this rarer:\n{{ instruction }}"}
RUBRIC = {"criteria": "Is it polite?", **{f"score{i}_description": f"level {i}" for i in range(1, 6)}}
SCALE = [(1, "bad"), (2, "fine"), (3, "good")]

SUBJECTS = [
    ("complexity_scorer", T.complexity_scorer()),
    ("complexity_scorer n=3 described", T.complexity_scorer(num_instructions=3, task_description="Think of maths.")),
    ("quality_scorer n=2", T.quality_scorer(num_generations=2)),
    ("quality_scorer described", T.quality_scorer(task_description="Mind the tone.")),
    ("judgelm", T.judgelm()),
    ("judgelm n=2", T.judgelm(num_generations=2, name="judge")),
    ("prometheus absolute", T.prometheus()),
    ("prometheus absolute reference", T.prometheus(reference=True, rubric="honesty")),
    ("prometheus absolute custom rubric", T.prometheus(rubric=RUBRIC)),
    ("prometheus relative", T.prometheus(mode="relative")),
    ("prometheus relative reference", T.prometheus(mode="relative", rubric="reasoning", reference=True)),
    ("ultracm", T.ultracm()),
    ("ultracm n=2", T.ultracm(num_generations=2)),
    ("ultrafeedback", T.ultrafeedback()),
    ("ultrafeedback helpfulness n=2", T.ultrafeedback(aspect="helpfulness", num_generations=2)),
    ("ultrafeedback custom scale", T.ultrafeedback(ratings=SCALE, task_description="Rate fruit facts.", num_generations=3)),
    ("ultrafeedback own generator", T.ultrafeedback(generate_answers=T.text_generation(system_prompt="Be brief."), num_generations=2)),
    *((f"ultrafeedback_task {a}", T.ultrafeedback_task(aspect=a)) for a in ASPECTS),
    ("ultrafeedback_task truthfulness n=4", T.ultrafeedback_task(aspect="truthfulness", num_generations=4)),
    ("ultrafeedback_task custom scale n=2", T.ultrafeedback_task(ratings=SCALE, num_generations=2)),
    ("ultrajudge", T.ultrajudge()),
    ("ultrajudge custom areas", T.ultrajudge(areas=["Accuracy", "Tone & Style"], num_generations=2)),
    ("eliminate_failed_evolutions", T.eliminate_failed_evolutions()),
    ("eliminate_failed_evolutions judged and dropped", T.eliminate_failed_evolutions(judge_equal=True, drop=True, sorry_max_words=10)),
    ("eliminate_failed_evolutions own judge", T.eliminate_failed_evolutions(answer=None, judge_equal=T.equal_prompts_judge(first="a", second="b"))),
    ("equal_prompts_judge", T.equal_prompts_judge()),
    ("equal_prompts_judge no system prompt", T.equal_prompts_judge(system_prompt=None, name="same")),
    ("evol_complexity", T.evol_complexity()),
    ("evol_complexity stored and answered", T.evol_complexity(n=2, store_evolutions=True, include_original=True, generate_answers=True)),
    ("evol_complexity_generator", T.evol_complexity_generator(num_instructions=2, generate_answers=True)),
    ("evol_instruct", T.evol_instruct()),
    ("evol_instruct custom mutations", T.evol_instruct(n=2, mutations=MUTATIONS, seed=4,  generate_answers=T.text_generation(system_prompt="One line."))),
    ("evol_instruct stored", T.evol_instruct(n=3, store_evolutions=True, generate_answers=True)),
    ("evol_instruct_generator", T.evol_instruct_generator(num_instructions=3, n=2, min_length=5, max_length=None)),
    ("evol_instruct_generator no rounds", T.evol_instruct_generator(n=0, mutations=MUTATIONS, generate_answers=True)),
    ("evol_instruct_task", T.evol_instruct_task(seed=9)),
    ("evol_instruct_task custom mutations", T.evol_instruct_task(mutations=MUTATIONS, params={"temperature": 0.7})),
    ("evol_quality", T.evol_quality(n=2, store_evolutions=True, include_original=True)),
    ("evol_quality custom mutations", T.evol_quality(mutations={"shorter": "Shorten {{ response }} to {{ instruction }}"})),
    ("evol_quality_task", T.evol_quality_task(seed=1)),
    ("fresh_start", T.fresh_start()),
    ("fresh_start template", T.fresh_start(template="Ask one question about {{ topic }}.")),
    ("self_instruct", T.self_instruct()),
    ("self_instruct custom", T.self_instruct(num_instructions=2, application_description="A haiku assistant", criteria_for_query_generation="Be short.", system_prompt="You write queries.", params={"max_tokens": 64})),
    ("text_generation", T.text_generation()),
    ("text_generation template and principles", T.text_generation(template="Context: {{ context }}\nQ: {{ question }}", columns=["context", "question"], principles={"brief": ["Be brief."], "kind": ["Be kind.", "Be warm."]}, principles_distribution={"brief": 0.25, "kind": 0.75}, seed=3, system_prompt="You answer.")),
    ("urial", T.urial()),
    ("urial conversation", T.urial(conversation=True, params={"temperature": 0.2})),
    ("chat_generation", T.chat_generation()),
    ("chat_generation system prompt", T.chat_generation(system_prompt="Be brief.")),
    ("text_generation ultrafeedback principles", T.text_generation(principles="ultrafeedback", seed=11)),
]
"""(label, plan or task): every factory in ``distilfn.tasks.__all__`` with its interesting options."""

NOT_FACTORIES = {"elimination_reason", "ultrafeedback_principles", "wizardlm_mutations", "TASKS", "PLANS"}
"""Names in ``distilfn.tasks.__all__`` that build data, not tasks or plans."""

IDS = [label for label, _ in SUBJECTS]


def answers_for(value) -> list[str | None]:
    """A well-formed answer for every task leaf of ``value`` (None for row functions)."""
    return [canonical_answer(leaf.chat_of(task_view(leaf))) if isinstance(leaf, Task) else None for leaf in leaves(value)]


def test_every_factory_is_covered():
    factories = {label.split(" ")[0] for label in IDS}
    assert factories == set(T.__all__) - NOT_FACTORIES


@pytest.mark.parametrize(("label", "value"), SUBJECTS, ids=IDS)
def test_round_trip_through_pickle_keeps_behaviour(label, value):
    answers = answers_for(value)
    expected = probe(value, answers)
    for protocol in (0, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL):
        copy = pickle.loads(pickle.dumps(value, protocol=protocol))
        assert probe(copy, answers) == expected, f"{label} (protocol {protocol})"
    cloudpickle = pytest.importorskip("cloudpickle")
    assert probe(pickle.loads(cloudpickle.dumps(value)), answers) == expected, f"{label} (cloudpickle)"


def test_unpickled_in_a_fresh_interpreter_behaves_the_same():
    answers = [answers_for(value) for _, value in SUBJECTS]
    expected = [probe(value, a) for (_, value), a in zip(SUBJECTS, answers, strict=True)]
    payload = pickle.dumps(([value for _, value in SUBJECTS], answers))
    code = (
        "import pickle, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "values, answers = pickle.loads(sys.stdin.buffer.read())\n"
        "assert 'catalogue_cases' not in sys.modules and 'test_catalogue_pickle' not in sys.modules\n"
        "from pickle_probe import probe\n"
        "sys.stdout.buffer.write(pickle.dumps([probe(v, a) for v, a in zip(values, answers)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    seen = pickle.loads(done.stdout)
    for label, mine, theirs in zip(IDS, expected, seen, strict=True):
        assert theirs == mine, label


def test_cloudpickle_round_trips_a_user_task_of_lambdas():
    cloudpickle = pytest.importorskip("cloudpickle")
    from distilfn import task

    shout = task(
        name="shout",
        inputs=["text"],
        outputs={"loud": str, "size": int},
        render=lambda row: [{"role": "user", "content": "Shout: " + row["text"]}],
        parse=lambda text: {"loud": text.upper(), "size": len(text)},
    )
    plan = shout >> T.text_generation(template="Answer {{ text }}", columns=["text"])
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(shout)  # lambdas need cloudpickle
    code = (
        "import pickle, sys\n"
        "plan = pickle.loads(sys.stdin.buffer.read())\n"
        "shout = plan.steps[0]\n"
        "parsed = shout.read('hey', {'text': 'hi'})\n"
        "out = (shout.chat_for({'text': 'hi'}), dict(parsed.values), parsed.error, plan.steps[1].chat_for({'text': 'hi'}))\n"
        "sys.stdout.buffer.write(pickle.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=cloudpickle.dumps(plan), capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert pickle.loads(done.stdout) == (
        [{"role": "user", "content": "Shout: hi"}],
        {"loud": "HEY", "size": 3},
        None,
        [{"role": "user", "content": "Answer hi"}],
    )


# -- what the tasks hold ----------------------------------------------------------------


def _held(value, seen=None):
    """Everything reachable from a plan's fields, through partials, containers and struct fields."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    yield value
    if isinstance(value, msgspec.Struct):
        children = [getattr(value, f.name) for f in msgspec.structs.fields(type(value))]
    elif isinstance(value, functools.partial):
        children = [value.func, *value.args, *value.keywords.values()]
    elif isinstance(value, tuple | list | set | frozenset):
        children = list(value)
    elif isinstance(value, dict | types.MappingProxyType):
        children = [*value.keys(), *value.values()]
    else:
        children = []
    for child in children:
        yield from _held(child, seen)


@pytest.mark.parametrize(("label", "value"), SUBJECTS, ids=IDS)
def test_tasks_hold_plain_data_and_module_level_functions(label, value):
    for item in _held(value):
        assert not isinstance(item, jinja2.Template), f"{label} holds a compiled template"
        assert not isinstance(item, msgspec.Meta), f"{label} holds a msgspec.Meta"
        if isinstance(item, types.FunctionType):
            assert "<" not in item.__qualname__, f"{label} holds the local function {item.__qualname__}"
        if isinstance(item, type) and issubclass(item, msgspec.Struct):
            module = sys.modules[item.__module__]
            assert getattr(module, item.__qualname__, None) is item, f"{label} holds the dynamic class {item!r}"


def test_schema_factories_give_one_class_per_setting_even_after_unpickling():
    judge = T.ultrafeedback_task(num_generations=3)
    copy = pickle.loads(pickle.dumps(judge))
    assert copy.schema_type is judge.schema_type
    assert T.ultrafeedback_task(num_generations=2).schema_type is not judge.schema_type
    assert pickle.loads(pickle.dumps(T.judgelm(num_generations=2))).schema_type is T.judgelm(num_generations=2).schema_type


def test_user_templates_compile_once_per_text():
    source = "Once per process: {{ instruction }}"
    t = T.text_generation(template=source, name="once")
    copy = pickle.loads(pickle.dumps(t))
    before = _compiled.cache_info()
    for task_ in (t, copy, t):
        assert task_.chat_for({"instruction": "x"}) == [{"role": "user", "content": "Once per process: x"}]
    after = _compiled.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 3  # compiled when the task was built
    assert render_source(source, instruction="y") == "Once per process: y"
