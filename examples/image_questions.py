"""Questions about images: a frame with an image URL column, answered by a vision model.

    python examples/image_questions.py                                              # a scripted stand-in, instant
    python examples/image_questions.py --server http://127.0.0.1:8000/v1 --model Qwen/Qwen2-VL-7B-Instruct

Each row's chat is one user message of two content parts, a text part and an
``image_url`` part; OpenAI-compatible servers (vLLM, llama.cpp with a vision model,
OpenAI) receive the parts unchanged. The metadata keeps them as JSON text.
"""

from __future__ import annotations

import argparse

import polars as pl

from distilfn import task
from distilfn.chat import image_message
from distilfn.tasks.text_generation import read_generation

ask_about_image = task(
    name="describe",
    inputs=["question", "image_url"],
    outputs={"generation": str},
    render=lambda row: [image_message(row["question"], row["image_url"])],
    parse=read_generation,
    example={"question": "What is in the picture?", "image_url": "https://example.org/cat.png"},
)

IMAGES = pl.DataFrame(
    {
        "image_url": [
            "https://upload.wikimedia.org/wikipedia/commons/3/3a/Cat03.jpg",
            "https://upload.wikimedia.org/wikipedia/commons/6/6d/Good_Food_Display_-_NCI_Visuals_Online.jpg",
        ],
        "question": ["What animal is this?", "Name three foods you can see."],
    }
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="an OpenAI-compatible /v1 URL serving a vision model")
    parser.add_argument("--model", default="any")
    args = parser.parse_args()
    if args.server:
        from distilfn.models import openai_compatible

        model = openai_compatible(args.server, model=args.model)
    else:
        from distilfn.testing import scripted_model

        model = scripted_model(lambda chat: f"(scripted) I see {chat[-1]['content'][1]['image_url']['url'].rsplit('/', 1)[-1]}")
    ask_about_image.print()
    out = ask_about_image.run(IMAGES, model=model, cache=False)
    for row in out.iter_rows(named=True):
        print(f"{row['question']} -> {row['generation']}")


if __name__ == "__main__":
    main()
