"""The catalogue tasks as plan cases shared by the scripted and the real-model tests."""

from __future__ import annotations

import re

import polars as pl

from distilfn import tasks as T
from distilfn.meta import META_PREFIX
from distilfn.tasks.ultrajudge import DEFAULT_AREAS, areas_dtype

INSTRUCTION = ["Name a fruit that is yellow."]
TWO_ANSWERS = [["A banana is yellow.", "Grass is green."]]
CHAT = [[{"role": "user", "content": "Name a yellow fruit."}, {"role": "assistant", "content": "A banana."}, {"role": "user", "content": "And a red one?"}]]

CASES = [
        ("urial", T.urial(), {"instruction": INSTRUCTION}, ["generation"]),
        ("chat_generation", T.chat_generation(), {"messages": CHAT}, ["generation"]),
        ("self_instruct", T.self_instruct(num_instructions=3), {"input": ["cooking pasta"]}, ["instructions"]),
        ("evol_instruct store", T.evol_instruct(n=1, store_evolutions=True, generate_answers=True), {"instruction": INSTRUCTION}, ["evolved_instructions", "answers"]),
        ("evol_instruct_generator", T.evol_instruct_generator(num_instructions=2, min_length=1), {"topic": ["science"]}, ["instruction"]),
        ("evol_complexity", T.evol_complexity(n=1), {"instruction": INSTRUCTION}, ["evolved_instruction"]),
        ("evol_complexity_generator", T.evol_complexity_generator(num_instructions=1, min_length=1), {"topic": ["math"]}, ["instruction"]),
        ("evol_quality", T.evol_quality(n=1), {"instruction": INSTRUCTION, "response": ["A banana."]}, ["evolved_response"]),
        ("ultrafeedback honesty", T.ultrafeedback(aspect="honesty"), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "rationales"]),
        ("ultrafeedback helpfulness", T.ultrafeedback(aspect="helpfulness", num_generations=2), {"instruction": INSTRUCTION}, ["ratings", "types"]),
        ("judgelm", T.judgelm(num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "rationales"]),
        ("ultrajudge", T.ultrajudge(num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "areas"]),
        ("complexity_scorer", T.complexity_scorer(num_instructions=2), {"instructions": [["Say hi.", "Prove Fermat's last theorem."]]}, ["scores"]),
        ("quality_scorer", T.quality_scorer(num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["scores"]),
        ("ultracm", T.ultracm(num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["critiques", "scores"]),
        ("prometheus absolute", T.prometheus(), {"instruction": INSTRUCTION, "generation": ["A banana is yellow."]}, ["feedback", "result"]),
        ("prometheus relative", T.prometheus(mode="relative"), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["feedback", "result"]),
        ("elimination with equal judge", T.evol_instruct(n=1, generate_answers=True) >> T.eliminate_failed_evolutions(judge_equal=True), {"instruction": INSTRUCTION}, ["eliminated"]),
]
"""(name, plan, input columns, output columns that must exist)."""

_RUBRIC = {"criteria": "Is it correct?", **{f"score{i}_description": f"level {i}" for i in range(1, 6)}}

MORE_CASES = [
        ("text_generation template and principles", T.text_generation(template="Context: {{ context }}\nQ: {{ question }}", columns=["context", "question"], principles={"brief": ["Be brief."], "kind": ["Be kind.", "Be warm."]}, system_prompt="You answer questions."), {"context": ["Bananas are yellow."], "question": ["Which fruit is yellow?"]}, ["generation"]),
        ("text_generation system_prompt column", T.text_generation(system_prompt="Default."), {"instruction": INSTRUCTION * 2, "system_prompt": ["Be brief.", None]}, ["generation"]),
        ("urial conversation", T.urial(conversation=True), {"conversation": CHAT}, ["generation"]),
        ("chat_generation system prompt", T.chat_generation(system_prompt="Be brief."), {"messages": CHAT}, ["generation"]),
        ("text_generation ultrafeedback principles", T.text_generation(principles="ultrafeedback"), {"instruction": INSTRUCTION}, ["generation"]),
        ("ultrafeedback truthfulness judge", T.ultrafeedback_task(aspect="truthfulness", num_generations=2), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "rationales", "types", "rationales_for_ratings"]),
        ("ultrafeedback custom scale", T.ultrafeedback(ratings=[(1, "bad"), (2, "fine"), (3, "good")], task_description="Rate the fruit facts.", num_generations=2), {"instruction": INSTRUCTION}, ["ratings", "rationales"]),
        ("ultrajudge custom areas", T.ultrajudge(areas=["Accuracy", "Tone & Style"]), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS}, ["ratings", "areas"]),
        ("prometheus absolute custom rubric with reference", T.prometheus(rubric=_RUBRIC, reference=True), {"instruction": INSTRUCTION, "generation": ["A banana."], "reference": ["A banana is yellow."]}, ["feedback", "result"]),
        ("prometheus relative with reference", T.prometheus(mode="relative", rubric="honesty", reference=True), {"instruction": INSTRUCTION, "generations": TWO_ANSWERS, "reference": ["A banana."]}, ["feedback", "result"]),
        ("evol_instruct custom mutations", T.evol_instruct(n=2, mutations={"harder": "Make this harder: {{ instruction }}", "rarer": "Make this rarer: {{ instruction }}"}, seed=3), {"instruction": INSTRUCTION}, ["evolved_instruction"]),
        ("evol_instruct_generator no rounds", T.evol_instruct_generator(num_instructions=2, n=0, min_length=1, generate_answers=True), {"batch": [0]}, ["seed_instruction", "instruction", "answer"]),
        ("fresh_start template", T.fresh_start(template="Ask one question about {{ topic }}."), {"topic": ["glaciers"]}, ["seed_instruction"]),
        ("evol_quality store", T.evol_quality(n=2, store_evolutions=True, include_original=True), {"instruction": INSTRUCTION, "response": ["A banana."]}, ["evolved_responses"]),
        ("evol_quality task", T.evol_quality_task(seed=2), {"instruction": INSTRUCTION, "response": ["A banana."]}, ["evolved_response"]),
        ("evol_instruct task", T.evol_instruct_task(seed=5), {"instruction": INSTRUCTION}, ["evolved_instruction"]),
        ("elimination drop", T.evol_instruct(n=1, generate_answers=True) >> T.eliminate_failed_evolutions(drop=True), {"instruction": INSTRUCTION}, ["eliminated"]),
        ("equal_prompts_judge", T.equal_prompts_judge(), {"instruction": INSTRUCTION, "evolved_instruction": ["Name two yellow fruits."]}, ["equal"]),
        ("self_instruct custom", T.self_instruct(num_instructions=2, application_description="A haiku assistant", criteria_for_query_generation="Be short.", system_prompt="You write queries."), {"input": ["autumn rain"]}, ["instructions"]),
]
"""More options, for the scripted tests only (the real model is slow)."""

S, I, F, B = pl.String(), pl.Int64(), pl.Float64(), pl.Boolean()
TYPED_UF = {"ratings": pl.List(I), "rationales": pl.List(S), "types": pl.List(pl.List(I)), "rationales_for_ratings": pl.List(S)}

DTYPES: dict[str, dict[str, pl.DataType]] = {
    "self_instruct": {"instructions": pl.List(S)},
    "urial": {"generation": S},
    "chat_generation": {"generation": S},
    "text_generation system_prompt column": {"generation": S},
    "urial conversation": {"generation": S},
    "chat_generation system prompt": {"generation": S},
    "evol_instruct store": {"evolved_instructions": pl.List(S), "answers": pl.List(S)},
    "evol_instruct_generator": {"seed_instruction": S, "instruction": S},
    "evol_complexity": {"evolved_instruction": S},
    "evol_complexity_generator": {"seed_instruction": S, "instruction": S},
    "evol_quality": {"evolved_response": S},
    "ultrafeedback honesty": {"ratings": pl.List(I), "rationales": pl.List(S)},
    "ultrafeedback helpfulness": {"generations": pl.List(S), **TYPED_UF},
    "judgelm": {"ratings": pl.List(F), "rationales": pl.List(S)},
    "ultrajudge": {"ratings": pl.List(F), "areas": areas_dtype(DEFAULT_AREAS)},
    "complexity_scorer": {"scores": pl.List(F)},
    "quality_scorer": {"scores": pl.List(F)},
    "ultracm": {"critiques": pl.List(S), "scores": pl.List(F)},
    "prometheus absolute": {"feedback": S, "result": I},
    "prometheus relative": {"feedback": S, "result": S},
    "elimination with equal judge": {"evolved_instruction": S, "answer": S, "equal": B, "eliminated": B, "elimination_reason": S},
    "text_generation template and principles": {"generation": S},
    "text_generation ultrafeedback principles": {"generation": S},
    "ultrafeedback truthfulness judge": TYPED_UF,
    "ultrafeedback custom scale": {"generations": pl.List(S), "ratings": pl.List(I), "rationales": pl.List(S)},
    "ultrajudge custom areas": {"ratings": pl.List(F), "areas": areas_dtype(["Accuracy", "Tone & Style"])},
    "prometheus absolute custom rubric with reference": {"feedback": S, "result": I},
    "prometheus relative with reference": {"feedback": S, "result": S},
    "evol_instruct custom mutations": {"evolved_instruction": S},
    "evol_instruct_generator no rounds": {"seed_instruction": S, "instruction": S, "answer": S},
    "fresh_start template": {"seed_instruction": S},
    "evol_quality store": {"evolved_responses": pl.List(S)},
    "evol_quality task": {"evolved_response": S},
    "evol_instruct task": {"evolved_instruction": S},
    "elimination drop": {"evolved_instruction": S, "answer": S, "eliminated": B, "elimination_reason": S},
    "equal_prompts_judge": {"equal": B},
    "self_instruct custom": {"instructions": pl.List(S)},
}
"""The declared dtype of every output column per case: what users get in the frame."""

MAY_BE_NULL = {"elimination_reason"}
"""Output columns that are null on success."""

def meta_rows(out: pl.DataFrame) -> list[dict]:
    """Every step result in the frame (list metadata flattened)."""
    found = []
    for column in [c for c in out.columns if c.startswith(META_PREFIX)]:
        for value in out[column].to_list():
            found.extend(value if isinstance(value, list) else [value])
    return [m for m in found if m is not None]


def check_case(name: str, data: pl.DataFrame, out: pl.DataFrame, outputs: list[str]) -> None:
    """Rows all there, outputs present with their declared dtypes, nothing null without an error, ranges respected."""
    assert out.height >= 1 if "generator" in name else out.height == data.height
    for column in outputs:
        assert column in out.columns, f"{name}: no column {column!r} in {out.columns}"
    for column, dtype in DTYPES.get(name, {}).items():
        assert out.schema[column] == dtype, f"{name}: column {column!r} is {out.schema[column]}, declared {dtype}"
    metas = meta_rows(out)
    assert metas, "no step metadata"
    for meta in metas:
        if "raw_output" in meta:
            assert meta["error"] is not None or meta["raw_output"], meta
    errors = [m.get("error") for m in metas]
    for column in outputs:
        for value in out[column].to_list():
            assert value is not None or any(errors), f"{name}: {column} is null with no error recorded"
    for column in ("ratings", "scores"):
        if column in out.columns:
            values = [v for row in out[column].to_list() for v in (row if isinstance(row, list) else [row]) if v is not None]
            assert all(1 <= v <= 10 for v in values), f"{name}: {column} out of range: {values}"


# -- well-formed answers --------------------------------------------------------------------


def _count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text, re.MULTILINE))


def _ultrafeedback(prompt: str) -> str:
    annotation = prompt.split("## Annotation", 1)[1]
    typed = "Type:" in prompt.split("## Annotation", 1)[0]
    blocks = []
    for i in range(1, _count(r"^<text \d+> ", annotation) + 1):
        head = f"#### Output for Text {i}\n" + ("Type: 1, 3\nRationale: Informative.\n" if typed else "")
        blocks.append(head + f"Rating: {i}\nRationale: Text {i} is fine.")
    return "\n\n".join(blocks)


def _ultrajudge(prompt: str) -> str:
    areas = re.findall(r"^\d+\. (.+)$", prompt.split("following areas:", 1)[1].split("For each area", 1)[0], re.MULTILINE)
    n = _count(r"^<text \d+> ", prompt)
    return "\n\n".join(
        f"#### Output for Text {i}\n" + "".join(f"{area}: {9 - i} - Fine.\n" for area in areas) + f"Final Score: {9 - i}"
        for i in range(1, n + 1)
    )


def _ultracm(prompt: str) -> str:
    n = _count(r"^### Answer\b", prompt)
    if n == 1:
        return "Add an example.\nOverall Score: 7"
    return "\n\n".join(f"### Feedback for Answer {i}\nCritique {i}.\nOverall Score: {8 - i}" for i in range(1, n + 1))


def canonical_answer(chat: list[dict[str, str]]) -> str:
    """A well-formed answer to any catalogue prompt, in the layout that prompt asks for.

    Free-text tasks (answers, rewrites, fresh instructions) get a plain sentence.
    """
    prompt = chat[-1]["content"]
    if "Equal or Not Equal" in prompt:
        return "Not Equal"
    if "## Annotation" in prompt:
        return _ultrafeedback(prompt)
    if "Final Score: [rating 1-10]" in prompt:
        return _ultrajudge(prompt)
    if "[The Start of Assistant" in prompt:
        n = _count(r"^\[The Start of Assistant \d+'s Answer\]", prompt)
        return " ".join(str(9 - i) for i in range(n)) + "\nAssistant 1 is the most accurate."
    if "Ranking the following questions" in prompt:
        return "\n".join(f"[{i}] Score: {i}" for i in range(1, _count(r"^\[\d+\] (?!Score)", prompt) + 1))
    if "#Response List#" in prompt:
        return "\n".join(f"[Response {i}] Score: {i}" for i in range(1, _count(r"^\[Response \d+\] ", prompt) + 1))
    if "Overall Score: [1-10]" in prompt:
        return _ultracm(prompt)
    if "[RESULT] (A or B)" in prompt:
        return "Response A follows the rubric better. [RESULT] A"
    if "[RESULT] (an integer" in prompt:
        return "The response is correct and clear. [RESULT] 4"
    if "# Context" in prompt and "# AI Application" in prompt:
        n = int(re.search(r"Come up with (\d+) ", prompt).group(1))
        return "\n".join(f"{i}. Write request number {i} about the context." for i in range(1, n + 1))
    if "#Rewritten Response#" in prompt:
        return "A banana is yellow, sweet and rich in potassium."
    if "#Rewritten Prompt#" in prompt or "#Created Prompt#" in prompt:
        return "Name two yellow fruits and say where each one grows."
    return "A banana is yellow and sweet."
