"""A custom task with a msgspec schema: servers that support JSON schema constrain the answer.

    python examples/structured_output.py                  # the embedded local model (or DISTILFN_MODEL)
    python examples/structured_output.py --scripted       # a scripted stand-in, instant

The schema is sent as `response_format` (json_schema); the answer is decoded with msgspec
and turned into columns. When a server ignores the schema, the text parser still runs.
"""

from __future__ import annotations

import argparse
import re

import msgspec
import polars as pl

from distilfn import Parsed, task
from distilfn.testing import scripted_model


class Review(msgspec.Struct):
    sentiment: str
    score: int


def parse_text(text: str) -> Parsed | dict:
    """Fallback for servers without JSON schema: 'positive, 4' and similar."""
    sentiment = re.search(r"\b(positive|negative|neutral)\b", text, re.IGNORECASE)
    score = re.search(r"\b([1-5])\b", text)
    values = {"sentiment": sentiment.group(1).lower() if sentiment else None, "score": int(score.group(1)) if score else None}
    return values if None not in values.values() else Parsed(values=values, error="no sentiment or score in the answer")


def from_review(review: Review) -> Parsed | dict:
    if not 1 <= review.score <= 5:
        return Parsed(values={"sentiment": review.sentiment, "score": None}, error=f"score {review.score} is outside 1-5")
    return {"sentiment": review.sentiment.lower(), "score": review.score}


classify = task(
    name="classify",
    inputs=["review"],
    outputs={"sentiment": str, "score": int},
    role="judge",
    render=lambda row: [
        {"role": "system", "content": "Classify the review. Answer as JSON with `sentiment` (positive, negative or neutral) and `score` (1-5)."},
        {"role": "user", "content": row["review"]},
    ],
    parse=parse_text,
    schema=Review,
    from_schema=from_review,
    params={"temperature": 0.0, "max_tokens": 48},
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripted", action="store_true")
    args = parser.parse_args()
    model = scripted_model(['{"sentiment": "positive", "score": 5}', "negative, 1"]) if args.scripted else None
    df = pl.DataFrame({"review": ["Loved it, would buy again.", "Broke after one day."]})
    out = classify.run(df, model=model, cache=False if args.scripted else None)
    print(out.select("review", "sentiment", "score"))


if __name__ == "__main__":
    main()
