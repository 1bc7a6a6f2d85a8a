"""Self-Instruct for haiku: topics -> haiku requests (Self-Instruct, arXiv 2212.10560) -> haiku.

    python examples/haiku_self_instruct.py                                   # scripted stand-in model
    python examples/haiku_self_instruct.py --server http://127.0.0.1:8000/v1 --model qwen
"""

from __future__ import annotations

import argparse

import polars as pl

from distilfn import Parsed, task
from distilfn.chat import chat
from distilfn.tasks.self_instruct import self_instruct

haiku_requests = self_instruct(
    num_instructions=3,
    system_prompt="You are an expert haiku writer, writing the best and most diverse haiku given topics as inputs.",
    application_description=(
        "An AI assistant adept at writing haiku. It accepts requests about a subject or object, "
        "or about an emotion, theme or vibe."
    ),
    criteria_for_query_generation=(
        "Use a diverse range of verbs, avoiding repetition.\n"
        "Keep each request to 1-2 sentences a text model can fulfil.\n"
        "Make each request self-contained and standalone."
    ),
)


def three_lines(text: str) -> Parsed:
    """A haiku is three non-empty lines; keep what came, and say when it is not three."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return Parsed(values={"haiku": "\n".join(lines) or None}, error=None if len(lines) == 3 else f"{len(lines)} lines, not 3")


haiku = task(
    name="haiku",
    inputs=["instruction"],
    outputs=["haiku"],
    render=lambda row: chat(row["instruction"], system_prompt="Answer with a haiku only: three lines, 5-7-5 syllables."),
    parse=three_lines,
)


def scripted(chats: list[list[dict[str, str]]]) -> list[str]:
    """A stand-in model: a numbered list for request-writing prompts, a haiku otherwise."""
    out = []
    for c in chats:
        prompt = c[-1]["content"]
        if "# Context" in prompt:
            topic = prompt.split("# Context\n")[1].split("\n")[0]
            out.append(
                f"Here are 3 requests:\n1. Write a haiku about {topic} at dawn.\n"
                f"2. Capture the loneliness of {topic} in a haiku.\n3. Compose a playful haiku on {topic}."
            )
        else:
            out.append("Mist over still pond\nA heron lifts one slow foot\nRipples find the reeds")
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
    topics = pl.DataFrame({"input": ["autumn rain", "a lighthouse"]})
    requests = haiku_requests.run(topics, model=model)
    # one row per request: plain Polars between two runs
    rows = requests.select("input", pl.col("instructions").alias("instruction")).explode("instruction").drop_nulls()
    poems = haiku.run(rows, model=model)
    for row in poems.select("instruction", "haiku").iter_rows(named=True):
        print(f"{row['instruction']}\n{row['haiku']}\n")


if __name__ == "__main__":
    main()
