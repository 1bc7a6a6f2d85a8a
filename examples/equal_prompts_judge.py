"""The WizardLM equal-prompts judge (arXiv 2304.12244, Elimination Evolving rule 1) as a custom task.

    python examples/equal_prompts_judge.py                                   # scripted stand-in model
    python examples/equal_prompts_judge.py --server http://127.0.0.1:8000/v1 --model qwen
"""

from __future__ import annotations

import argparse
import re

import polars as pl

from distilfn import Parsed, task
from distilfn.chat import chat
from distilfn.tasks._templates import render_template
from distilfn.tasks.elimination import eliminate_failed_evolutions


def verdict(text: str) -> Parsed:
    """'Not Equal' -> False, 'Equal' -> True, anything else -> None with an error."""
    t = text.lower()
    if re.search(r"\bnot\s+equal\b", t):
        return Parsed(values={"equal": False})
    if re.search(r"\bequal\b", t):
        return Parsed(values={"equal": True})
    return Parsed(values={"equal": None}, error=f"no verdict in {text[:40]!r}")


equal_prompts = task(
    name="equal_prompts",
    inputs=["instruction", "evolved_instruction"],
    outputs={"equal": bool},
    role="judge",
    render=lambda row: chat(
        render_template(  # the paper's prompt, shipped in distilfn/tasks/templates/evol_instruct/
            "evol_instruct/equal_prompts.jinja2",
            first_instruction=row["instruction"],
            second_instruction=row["evolved_instruction"],
        ),
        system_prompt="You are an AI judge in charge of determining the equality of two instructions.",
    ),
    parse=verdict,
)


def scripted(chats: list[list[dict[str, str]]]) -> list[str]:
    """A stand-in judge: "Equal" when the two prompts have the same words."""
    out = []
    for c in chats:
        prompt = c[-1]["content"]
        first = prompt.split("The First Prompt: ")[1].split("\n")[0]
        second = prompt.split("The Second Prompt: ")[1].split("\n")[0]
        same = set(re.findall(r"\w+", first.lower())) == set(re.findall(r"\w+", second.lower()))
        out.append("Equal" if same else "Not Equal.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", help="an OpenAI-compatible base URL; a scripted model without it")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    model = scripted
    if args.server:
        from distilfn.models.openai import openai_compatible

        model = openai_compatible(args.server, model=args.model)
    pairs = pl.DataFrame(
        {
            "instruction": ["Name a fruit.", "Explain gravity."],
            "evolved_instruction": ["Name a fruit!", "Explain gravity to a child using two everyday examples."],
        }
    )
    plan = eliminate_failed_evolutions(judge_equal=equal_prompts, answer=None)
    print(plan)
    out = plan.run(pairs, model=model)
    print(out.select("evolved_instruction", "equal", "eliminated", "elimination_reason"))


if __name__ == "__main__":
    main()
