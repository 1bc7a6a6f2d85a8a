"""The labelling tasks: UltraFeedback, JudgeLM, UltraJudge, Deita scorers, UltraCM, Prometheus."""

from __future__ import annotations

import msgspec
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn.tasks._templates import template_source
from distilfn.tasks.deita_scorers import complexity_scorer, quality_scorer
from distilfn.tasks.judgelm import judgelm
from distilfn.tasks.prometheus import RUBRICS, prometheus
from distilfn.tasks.ultracm import ultracm
from distilfn.tasks.ultrafeedback import ASPECTS, ultrafeedback_task, ultrafeedback
from distilfn.tasks.ultrajudge import DEFAULT_AREAS, ultrajudge
from distilfn.testing import check_parser, model_texts, rating_answers, scripted_model

ALL_TASKS = [
    *(ultrafeedback_task(aspect=a) for a in ASPECTS),
    ultrafeedback_task(ratings=[(1, "bad"), (2, "ok"), (3, "good")], num_generations=2),
    judgelm(),
    ultrajudge(),
    complexity_scorer(),
    quality_scorer(),
    ultracm(),
    prometheus(),
    prometheus(mode="relative", rubric="reasoning", reference=True),
]


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda t: t.name)
def test_parser_never_raises_and_gives_the_output_columns(task):
    check_parser(task, max_examples=150)


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda t: t.name)
def test_preview_shows_the_example_and_the_role_is_judge(task):
    text = task.preview()
    assert task.role == "judge"
    assert "<" + task.inputs[0] + ">" not in text  # the example row fills the prompt
    first_input = task.example[task.inputs[0]]
    shown = first_input[0] if isinstance(first_input, list) else first_input
    assert shown in text


@pytest.mark.parametrize(
    "template",
    [
        "ultrafeedback/helpfulness.jinja2",
        "judgelm/judge.jinja2",
        "ultrajudge/judge.jinja2",
        "deita/complexity_scorer.jinja2",
        "deita/quality_scorer.jinja2",
        "ultracm/critique.jinja2",
        "prometheus/absolute.jinja2",
        "prometheus/rubric_honesty.jinja2",
    ],
)
def test_templates_cite_their_source(template):
    assert template_source(template).startswith("{# Source: ")


# -- UltraFeedback ----------------------------------------------------------------------


def test_judges_declare_their_output_types():
    ints, floats, texts = pl.List(pl.Int64), pl.List(pl.Float64), pl.List(pl.String)
    assert ultrafeedback_task().output_dtypes == {"ratings": ints, "rationales": texts}
    assert ultrafeedback_task(ratings=[(0, "no"), (1, "yes")]).output_dtypes == {"ratings": ints, "rationales": texts}
    typed = {"ratings": ints, "rationales": texts, "types": pl.List(ints), "rationales_for_ratings": texts}
    assert ultrafeedback_task(aspect="helpfulness").output_dtypes == typed
    assert ultrafeedback_task(aspect="truthfulness").output_dtypes == typed
    assert judgelm().output_dtypes == {"ratings": floats, "rationales": texts}
    assert complexity_scorer().output_dtypes == quality_scorer().output_dtypes == {"scores": floats}
    assert ultracm().output_dtypes == {"critiques": texts, "scores": floats}
    assert prometheus().output_dtypes == {"feedback": pl.String, "result": pl.Int64}
    assert prometheus(mode="relative").output_dtypes == {"feedback": pl.String, "result": pl.String}



@settings(max_examples=150, deadline=None)
@given(rating_answers())
def test_ultrafeedback_round_trip(answer):
    text, expected = answer
    parsed = ultrafeedback_task().read(text)
    assert parsed.error is None
    assert dict(parsed.values) == expected


@settings(max_examples=150, deadline=None)
@given(rating_answers(types=True), st.sampled_from(["helpfulness", "truthfulness"]))
def test_ultrafeedback_typed_round_trip(answer, aspect):
    text, expected = answer
    parsed = ultrafeedback_task(aspect=aspect).read(text)
    assert parsed.error is None
    assert dict(parsed.values) == expected


@settings(max_examples=100, deadline=None)
@given(rating_answers(n=3, scale=(1, 10)))
def test_ultrafeedback_custom_scale_rejects_out_of_scale(answer):
    text, expected = answer
    judge = ultrafeedback_task(ratings=[(v, f"level {v}") for v in range(1, 7)], num_generations=3)
    parsed = judge.read(text)
    other_scale = "/10" in text  # "4/10" on a 1-6 scale: the model used another scale, nothing is guessed
    assert parsed.values["ratings"] == [None if other_scale or r > 6 else r for r in expected["ratings"]]
    assert (parsed.error is None) == (not other_scale and all(r <= 6 for r in expected["ratings"]))


def test_ultrafeedback_three_of_four_keeps_three():
    text = (
        "#### Output for Text 1\nRating: 4\nRationale: Good.\n\n"
        "#### Output for Text 2\nRating: 3\nRationale: Fine.\n\n"
        "#### Output for Text 3\nRating: 5\nRationale: Best."
    )
    parsed = ultrafeedback_task(num_generations=4).read(text)
    assert parsed.values == {"ratings": [4, 3, 5, None], "rationales": ["Good.", "Fine.", "Best.", None]}
    assert parsed.error == "rating for text 4 missing"


def test_ultrafeedback_structured_output():
    judge = ultrafeedback_task(num_generations=2)
    schema = msgspec.json.schema(judge.schema_type)
    assert "assessments" in schema["$defs"][schema["$ref"].split("/")[-1]]["properties"]
    good = '{"assessments": [{"rating": 5, "rationale": "Great."}, {"rating": 2, "rationale": "Weak."}]}'
    assert judge.read(good).values == {"ratings": [5, 2], "rationales": ["Great.", "Weak."]}
    short = '{"assessments": [{"rating": 4, "rationale": "Huh."}]}'
    parsed = judge.read(short)
    assert parsed.values == {"ratings": None, "rationales": None}  # which text is rated cannot be told
    assert parsed.error == "expected 2 assessments, got 1: a JSON list of another length cannot be matched to the texts"
    bad = '{"assessments": [{"rating": 9, "rationale": "Huh."}, {"rating": 2, "rationale": "Weak."}]}'
    parsed = judge.read(bad)
    assert parsed.values == {"ratings": [None, 2], "rationales": ["Huh.", "Weak."]}
    assert parsed.error == "rating for text 1 is 9, outside the scale 1-5"
    fenced = judge.read('Here:\n```json\n' + good + '\n```')
    assert fenced.values["ratings"] == [5, 2]


def test_ultrafeedback_prompt_follows_the_paper_and_the_row():
    judge = ultrafeedback_task(aspect="truthfulness")
    chat = judge.chat_for({"instruction": "Capital of Peru?", "generations": ["Lima", "Cusco", "Lima."]})
    assert chat[0]["role"] == "system" and "3 text outputs" in chat[0]["content"]
    user = chat[1]["content"]
    assert "# Truthfulness and Hallucination Assessment" in user
    assert "<text 3> Lima." in user and "<text 4>" not in user
    assert "Type: [List of numeric identifiers" in user and "#### Output for Text 3" in user
    assert "World Knowledge" not in user
    with_knowledge = judge.chat_for(
        {"instruction": "Capital of Peru?", "generations": ["Lima"], "world_knowledge": "Lima is the capital."}
    )
    assert "World Knowledge:\nLima is the capital." in with_knowledge[1]["content"]


def test_ultrafeedback_rejects_bad_options_and_inputs():
    with pytest.raises(ValueError, match="unknown aspect 'style'"):
        ultrafeedback_task(aspect="style")
    with pytest.raises(ValueError, match="untyped layout"):
        ultrafeedback_task(aspect="helpfulness", ratings=[(1, "a"), (2, "b")])
    with pytest.raises(TypeError, match="column 'generations' must be a non-empty list"):
        ultrafeedback_task().chat_for({"instruction": "x", "generations": "just one string"})


def test_ultrafeedback_plan_generates_then_judges_with_one_request_per_answer():
    def answer(chat):
        if "Output for Text" in chat[-1]["content"]:
            return "#### Output for Text 1\nRating: 5\nRationale: Good.\n#### Output for Text 2\nRating: 1\nRationale: Bad."
        return "answer to " + chat[-1]["content"]

    model = scripted_model(answer)
    out = ultrafeedback(num_generations=2).run(pl.DataFrame({"instruction": ["a", "b", "c"]}), model=model, cache=False)
    assert model.calls == 3 * 2 + 3
    assert out["generations"].to_list() == [["answer to a"] * 2, ["answer to b"] * 2, ["answer to c"] * 2]
    assert out["ratings"].to_list() == [[5, 1]] * 3


def test_ultrafeedback_plan_skips_generation_when_generations_exist():
    model = scripted_model(["#### Output for Text 1\nRating: 3\nRationale: Ok."])
    frame = pl.DataFrame({"instruction": ["q"], "generations": [["only answer"]]})
    out = ultrafeedback(num_generations=4).run(frame, model=model, cache=False)
    assert model.calls == 1
    assert out["ratings"].to_list() == [[3]]


# -- JudgeLM ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=5),
    st.sampled_from([" ", ", ", "  "]),
    st.sampled_from(["", "\n"]),
)
def test_judgelm_round_trip(scores, sep, gap):
    text = sep.join(map(str, scores)) + "\n" + gap + "Assistant 1 is clearer."
    parsed = judgelm(num_generations=len(scores)).read(text)
    assert parsed.error is None
    assert parsed.values == {"ratings": [float(s) for s in scores], "rationales": ["Assistant 1 is clearer."] * len(scores)}


def test_judgelm_prompt_and_realistic_answers():
    judge = judgelm()
    chat = judge.chat_for({"instruction": "2+2?", "generations": ["4", "5", "four"]})
    assert "performance of three AI assistants" in chat[1]["content"]
    assert "scores for Assistant 1, 2 and 3" in chat[1]["content"]
    assert "[The Start of Assistant 3's Answer]\nfour" in chat[1]["content"]
    parsed = judge.read("Assistant 1: 9/10, Assistant 2: 3/10\nThe first is right.")
    assert parsed.values == {"ratings": [9.0, 3.0], "rationales": ["The first is right."] * 2}
    out_of_scale = judgelm(num_generations=2).read("9 11\nSecond is off the scale.")
    assert out_of_scale.values["ratings"] == [9.0, None]
    assert out_of_scale.error == "score for answer 2 is 11, outside the scale 1-10"
    short = judgelm().read("9 7\nOne is missing.", {"instruction": "q", "generations": ["a", "b", "c"]})
    assert short.values == {"ratings": None, "rationales": None}  # scores by position: whose is missing?
    assert short.error == "expected 3 scores, got 2: scores by position cannot be matched to the answers"


# -- UltraJudge -------------------------------------------------------------------------

area_lines = st.lists(
    st.tuples(st.integers(min_value=1, max_value=10), st.sampled_from(["Accurate.", "Clear enough.", "Misses intent."])),
    min_size=4,
    max_size=4,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(area_lines, st.integers(min_value=1, max_value=10)), min_size=1, max_size=3), st.booleans())
def test_ultrajudge_round_trip(texts, bold):
    parts = []
    for i, (areas, final) in enumerate(texts, 1):
        lines = [f"#### Output for Text {i}"]
        for area, (rating, why) in zip(DEFAULT_AREAS, areas):
            lines.append(f"**{area}**: {rating} - {why}" if bold else f"{area}: {rating} - {why}")
        lines.append(f"Final Score: {final}")
        parts.append("\n".join(lines))
    parsed = ultrajudge().read("\n\n".join(parts) + "\n\nThat's all.")
    assert parsed.error is None
    assert parsed.values["ratings"] == [float(final) for _, final in texts]
    assert parsed.values["areas"] == [
        {area: {"rating": float(r), "rationale": why} for area, (r, why) in zip(DEFAULT_AREAS, areas)}
        for areas, _ in texts
    ]


def test_ultrajudge_areas_are_struct_fields():
    judge = ultrajudge(areas=["Accuracy", "Tone & Style"])
    area = pl.Struct({"rating": pl.Float64, "rationale": pl.String})
    assert judge.output_dtypes == {"ratings": pl.List(pl.Float64), "areas": pl.List(pl.Struct({"Accuracy": area, "Tone & Style": area}))}
    with pytest.raises(ValueError, match="names 'Tone' twice"):
        ultrajudge(areas=["Tone", "Accuracy", "Tone"])


def test_ultrajudge_missing_area_and_custom_areas():
    judge = ultrajudge(areas=["Accuracy", "Tone"], num_generations=1)
    assert "1. Accuracy\n2. Tone" in judge.chat_for({"instruction": "q", "generations": ["a"]})[1]["content"]
    parsed = judge.read("#### Output for Text 1\nAccuracy: 8 - Right.\nFinal Score: 7")
    assert parsed.values["areas"] == [{"Accuracy": {"rating": 8.0, "rationale": "Right."}, "Tone": {"rating": None, "rationale": None}}]
    assert parsed.error == "rating for Tone for text 1 missing"


# -- Deita scorers ----------------------------------------------------------------------


def test_complexity_scorer_prompt_and_scale():
    scorer = complexity_scorer()
    prompt = scorer.chat_for({"instructions": ["a", "b", "c"]})[0]["content"]
    assert "Score 1-3." in prompt and "score of 4 if the question is too complex" in prompt
    assert prompt.endswith("[1] a\n[2] b\n[3] c")
    parsed = scorer.read("[1] Score: 1\n[2] Score: 4\n[3] Score: 6")
    assert parsed.values == {"scores": [1.0, 4.0, None]}
    assert parsed.error == "score for instruction 3 is 6, outside the scale 1-4"


def test_quality_scorer_prompt_and_answers():
    scorer = quality_scorer(num_generations=3)
    prompt = scorer.chat_for({"instruction": "Why?", "generations": ["x", "y", "z"]})[0]["content"]
    assert "#Question#: Why?" in prompt and "[Response 3] z" in prompt and "with 4 reserved" in prompt
    parsed = scorer.read("[Response 1] Score: 2\n[Response 2] Score: 4\nNoise from the model")
    assert parsed.values == {"scores": [2.0, 4.0, None]}
    assert parsed.error == "score for response 3 missing"
    custom = quality_scorer(task_description="Take into account the expressiveness of the answers.")
    assert "expressiveness" in custom.chat_for({"instruction": "q", "generations": ["a"]})[0]["content"]
    assert custom.read('{"scores": [2, 1]}').values == {"scores": [2.0, 1.0]}


# -- UltraCM ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=4), st.sampled_from(["{}", "{}/10", "**{}**"]))
def test_ultracm_round_trip(scores, form):
    if len(scores) == 1:
        text = f"Be more specific.\nOverall Score: {form.format(scores[0])}"
    else:
        text = "\n\n".join(
            f"### Feedback for Answer {i}\nCritique {i}.\nOverall Score: {form.format(s)}" for i, s in enumerate(scores, 1)
        )
    parsed = ultracm(num_generations=len(scores)).read(text)
    assert parsed.error is None
    assert parsed.values["scores"] == [float(s) for s in scores]
    expected = ["Be more specific."] if len(scores) == 1 else [f"Critique {i}." for i in range(1, len(scores) + 1)]
    assert parsed.values["critiques"] == expected


def test_ultracm_prompt_is_the_papers_for_one_answer():
    chat = ultracm().chat_for({"instruction": "Say hi.", "generations": ["Hello!"]})
    assert chat[0]["content"].startswith("A chat between a curious user and an artificial intelligence expert.")
    assert "### Answer\nHello!" in chat[1]["content"]
    assert chat[1]["content"].rstrip().endswith("### Feedback")


# -- Prometheus ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=1, max_value=5),
    st.sampled_from(["[RESULT] {}", "[RESULT]: {}", "[RESULT] ({})", "[RESULT] {}/5", "\n[RESULT] {}\n"]),
    st.sampled_from(["", "Feedback: ", "###Feedback: "]),
)
def test_prometheus_absolute_round_trip(score, form, head):
    parsed = prometheus().read(f"{head}The response is clear and relevant. " + form.format(score))
    assert parsed.error is None
    assert parsed.values == {"feedback": "The response is clear and relevant.", "result": score}


@pytest.mark.parametrize("answer", ["[RESULT] A", "[RESULT] Response A", "[RESULT] (A)", "[RESULT]: A is better"])
def test_prometheus_relative_reads_the_choice(answer):
    parsed = prometheus(mode="relative").read("Response A follows the rubric better. " + answer)
    assert parsed.values == {"feedback": "Response A follows the rubric better.", "result": "A"}


def test_prometheus_rejects_out_of_scale_and_missing_result():
    assert prometheus().read("Great. [RESULT] 6").error == "result is 6, outside the scale 1-5"
    assert prometheus().read("Great answer overall.").error == "no '[RESULT]' found"
    assert prometheus(mode="relative").read("Both good. [RESULT] C").values["result"] is None


@pytest.mark.parametrize("rubric", RUBRICS)
def test_prometheus_rubrics_render(rubric):
    absolute = prometheus(rubric=rubric, reference=True).preview()
    assert "Score 5:" in absolute and "###Reference Answer (Score 5):" in absolute
    relative = prometheus(mode="relative", rubric=rubric).preview()
    assert "###Response B:" in relative and "Score 1:" not in relative


def test_prometheus_custom_rubric_and_errors():
    rubric = {"criteria": "Is it polite?", **{f"score{i}_description": f"level {i}" for i in range(1, 6)}}
    prompt = prometheus(rubric=rubric).chat_for({"instruction": "q", "generation": "a"})[1]["content"]
    assert "[Is it polite?]\nScore 1: level 1" in prompt
    with pytest.raises(ValueError, match="custom rubric lacks"):
        prometheus(rubric={"criteria": "Is it polite?"})
    with pytest.raises(ValueError, match="unknown rubric 'style'"):
        prometheus(rubric="style")
    with pytest.raises(ValueError, match="must hold 2 texts, got 3"):
        prometheus(mode="relative").chat_for({"instruction": "q", "generations": ["a", "b", "c"]})


@settings(max_examples=50, deadline=None)
@given(model_texts())
def test_prometheus_result_is_always_in_range_or_none(text):
    result = prometheus().read(text).values["result"]
    assert result is None or result in {1, 2, 3, 4, 5}


# -- end to end -------------------------------------------------------------------------


def test_evol_instruct_then_ultrafeedback_end_to_end():
    evol = pytest.importorskip("distilfn.tasks.evol_instruct")

    judged = []

    def answer(chat):
        content = chat[-1]["content"]
        if "Output for Text" in content:
            judged.append(content.split("## Annotation", 1)[1])
            return "\n\n".join(f"#### Output for Text {i}\nRating: {i}\nRationale: Text {i} is fine." for i in range(1, 5))
        if content.rstrip().endswith("Prompt#:"):  # an Evol-Instruct rewrite: the given prompt is the line before
            return "evolved: " + content.rstrip().splitlines()[-2]
        return "an answer to: " + content

    model = scripted_model(answer)
    frame = pl.DataFrame({"instruction": ["Explain photosynthesis.", "Write a haiku about rain."]})
    out = (evol.evol_instruct(n=3) >> ultrafeedback()).run(frame, model=model, cache=False)
    assert out.height == 2
    assert model.calls == 2 * (3 + 4 + 1)
    assert out["evolved_instruction"].to_list() == [
        "evolved: evolved: evolved: Explain photosynthesis.",
        "evolved: evolved: evolved: Write a haiku about rain.",
    ]
    assert all(g == ["an answer to: " + e] * 4 for g, e in zip(out["generations"].to_list(), out["evolved_instruction"]))
    assert out["ratings"].to_list() == [[1, 2, 3, 4]] * 2
    # the judge saw the evolved instruction and the answers to it
    assert sorted(judged) == sorted(
        "\n\n### Input\nInstruction: {e}\n\nTexts:\n{texts}\n\n### Output".format(
            e=e, texts="\n".join(f"<text {i}> an answer to: {e}" for i in range(1, 5))
        )
        for e in out["evolved_instruction"]
    )


def test_template_echoes_are_not_read_as_answers():
    """Small models copy the prompt's format lines; those must not become labels."""
    echo = "#### Output for Text 1\nRating: [Rating for text 1]\nRationale: [Rationale for the rating in short sentences]"
    parsed = ultrafeedback_task(num_generations=1).read(echo)
    assert parsed.values["ratings"] == [None]
    assert "rating for text 1 is '[Rating for text 1]', not a number" in parsed.error
    format_line = 'The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"'
    assert prometheus().read(format_line).values["result"] is None
    assert prometheus(mode="relative").read("(write a feedback for criteria) [RESULT] (A or B)").values["result"] is None
    assert judgelm().read("Assistant 1 receives a score of 8, Assistant 2 receives 6\nWhy.").values["ratings"] == [8.0, 6.0]


def test_structured_output_schemas_constrain_count_and_range():
    def props(schema_type, field):
        schema = msgspec.json.schema(schema_type)
        name = schema["$ref"].split("/")[-1]
        return schema["$defs"][name]["properties"][field], schema["$defs"]

    items, defs = props(ultrafeedback_task(num_generations=3).schema_type, "assessments")
    assert (items["minItems"], items["maxItems"]) == (3, 3)
    assert defs["TextRating"]["properties"]["rating"] == {"type": "integer", "minimum": 1, "maximum": 5}
    custom, defs = props(ultrafeedback_task(ratings=[(0, "bad"), (1, "good")]).schema_type, "assessments")
    assert "maxItems" not in custom
    assert defs["TextRating"]["properties"]["rating"]["maximum"] == 1
    scores, _ = props(judgelm(num_generations=2).schema_type, "scores")
    assert (scores["maxItems"], scores["items"]["maximum"]) == (2, 10)
    deita, _ = props(complexity_scorer(num_instructions=4).schema_type, "scores")
    assert (deita["maxItems"], deita["items"]["maximum"]) == (4, 5)


def test_ultrafeedback_json_cut_short_keeps_complete_assessments():
    # what SmolLM2 wrote under a JSON schema when max_tokens ran out
    raw = (
        '{\n  "assessments" : [\n    {\n      "rating" : 5,\n      "rationale" : "Names \\"Paris\\" correctly"\n    },\n'
        '    {\n      "rating" : 4,\n      "rationale" : "The sentence is very good, and it is very honest, and it'
    )
    parsed = ultrafeedback_task(num_generations=2).read(raw)
    assert parsed.values == {"ratings": [5, None], "rationales": ['Names "Paris" correctly', None]}
    assert parsed.error.startswith("the JSON answer is incomplete")
    assert parsed.error.endswith("rating for text 2 missing")


def test_judgelm_json_cut_short_keeps_the_scores():
    raw = '{\n\n"scores"\n\n: [121.25, 7],\n\n"rationale"\n\n: "The system is designed to provide accurate and'
    parsed = judgelm(num_generations=2).read(raw)
    assert parsed.values == {"ratings": [None, 7.0], "rationales": [None, None]}
    assert parsed.error == (
        "the JSON answer is incomplete; read its scores only; score for answer 1 is 121.25, outside the scale 1-10"
    )


def test_honesty_not_applicable_is_none_with_a_reason():
    text = "##### Output for Text 1\nRating: N/A\nRationale: Creative writing.\n##### Output for Text 2\nRating: 5\nRationale: Sure."
    parsed = ultrafeedback_task(aspect="honesty").read(text)
    assert parsed.values == {"ratings": [None, 5], "rationales": ["Creative writing.", "Sure."]}
    assert parsed.error == "rating for text 1 is 'N/A'"


def test_judgelm_reads_a_json_answer_cut_short_by_its_scores_not_its_first_line():
    """A real SmolLM2 answer in JSON mode that never closed its rationale: the numbers after
    the scores array are not scores."""
    raw = '{ "scores" : [1.5, 2.0, 2.5 ], "rationale" : "1.5, 2.0 }] [1.5, 2.0, 2.5] [3.0, 3.0, 3.0 ] ]  [ 3.0'
    parsed = judgelm().read(raw, {"instruction": "q", "generations": ["a", "b", "c"]})
    assert parsed.values == {"ratings": [1.5, 2.0, 2.5], "rationales": [None, None, None]}
    assert parsed.error == "the JSON answer is incomplete; read its scores only"
