"""The card's plan: evolve instructions three times, then rate four answers to each.

    python examples/evol_ultrafeedback.py                        # the default model (env, else embedded local)
    python examples/evol_ultrafeedback.py --server http://127.0.0.1:8000/v1 --model qwen
    python examples/evol_ultrafeedback.py --scripted             # a scripted stand-in, instant
"""

from __future__ import annotations

import argparse

import polars as pl

from distilfn.tasks import evol_instruct, ultrafeedback
from distilfn.testing import scripted_model


def stand_in(chat):
    """Answers shaped like a real model's: rewrites, answers, and UltraFeedback ratings."""
    prompt = chat[-1]["content"]
    if "#### Output for Text" in prompt:
        texts = prompt.split("## Annotation")[-1].count("<text ")
        return "\n\n".join(f"#### Output for Text {i + 1}\nRating: {3 + i % 3}\nRationale: Text {i + 1} is adequate." for i in range(texts))
    if "#Given Prompt#" in prompt or "Rewritten Prompt" in prompt:
        return "Explain it step by step, in under 100 words."
    return "Here is a short, direct answer."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="OpenAI-compatible base URL")
    parser.add_argument("--model", default="default", help="model name at --server")
    parser.add_argument("--scripted", action="store_true", help="use an instant scripted stand-in model")
    args = parser.parse_args()

    plan = evol_instruct(n=3) >> ultrafeedback()
    print(plan)
    df = pl.DataFrame({"instruction": ["Explain photosynthesis.", "Write a haiku about rain."]})
    if args.scripted:
        model = scripted_model(stand_in)
    elif args.server:
        from distilfn.models import openai_compatible

        model = openai_compatible(args.server, model=args.model)
    else:
        model = None  # DISTILFN_MODEL / OPENAI_BASE_URL, else the embedded local model
    out = plan.run(df, model=model, params={"max_tokens": 192}, cache=False if args.scripted else None)
    with pl.Config(fmt_str_lengths=50, tbl_width_chars=140):
        print(out.select("instruction", "evolved_instruction", "generations", "ratings"))


if __name__ == "__main__":
    main()
