"""Two models bound to roles: one writes answers, another judges them (UltraFeedback honesty).

    python examples/judge_comparison.py                                  # scripted stand-ins, instant
    python examples/judge_comparison.py --generator http://127.0.0.1:8000/v1 --judge http://127.0.0.1:8001/v1

Binding by role is all it takes: every task says which role answers it ("generator" or
"judge"), and `model={"generator": ..., "judge": ...}` decides who plays each role.
"""

from __future__ import annotations

import argparse

import polars as pl

from distilfn import fanout, group
from distilfn.tasks import text_generation, ultrafeedback_task
from distilfn.testing import scripted_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", help="OpenAI-compatible base URL of the answering model")
    parser.add_argument("--judge", help="OpenAI-compatible base URL of the judging model")
    parser.add_argument("--model-name", default="default", help="model name at both servers")
    args = parser.parse_args()

    plan = fanout(text_generation(), 2) >> group() >> ultrafeedback_task(aspect="honesty")
    print(plan)
    if args.generator and args.judge:
        from distilfn.models import openai_compatible

        models = {
            "generator": openai_compatible(args.generator, model=args.model_name),
            "judge": openai_compatible(args.judge, model=args.model_name),
        }
    else:
        writer = scripted_model(["Paris is the capital of France.", "I am not sure; it may be Lyon."], name="writer")
        judge = scripted_model(
            lambda chat: "#### Output for Text 1\nRating: 5\nRationale: Correct and confident.\n\n"
            "#### Output for Text 2\nRating: 2\nRationale: Unsure and wrong.",
            name="judge",
        )
        models = {"generator": writer, "judge": judge}
    out = plan.run(pl.DataFrame({"instruction": ["What is the capital of France?"]}), model=models)
    row = out.row(0, named=True)
    for text, rating in zip(row["generations"], row["ratings"], strict=True):
        print(f"{rating}  {text}")
    print("answered by", {m["model_name"] for m in row["meta.text_generation"]}, "- judged by", row["meta.ultrafeedback_honesty"]["model_name"])


if __name__ == "__main__":
    main()
