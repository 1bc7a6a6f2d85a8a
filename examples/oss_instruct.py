"""OSS-Instruct (Magicoder, arXiv 2312.02120): a code snippet inspires a problem and its solution.

    python examples/oss_instruct.py                                   # scripted stand-in model
    python examples/oss_instruct.py --server http://127.0.0.1:8000/v1 --model qwen
"""

from __future__ import annotations

import argparse
import re

import polars as pl

from distilfn import Parsed, task
from distilfn.chat import chat

# Source: Magicoder: Source Code Is All You Need, Wei et al., 2023, arXiv 2312.02120;
# ise-uiuc/magicoder data/prompt.txt and data/prompt_system.txt.
SYSTEM = "You are exceptionally skilled at crafting high-quality programming problems and offering precise solutions."
PROMPT = """Please gain inspiration from the following random code snippet to create a high-quality programming problem. Present your output in two distinct sections: [Problem Description] and [Solution].

Code snippet for inspiration:
```
{code}
```

Guidelines for each section:

1. [Problem Description]: This should be **completely self-contained**, providing all the contextual information one needs to understand and solve the problem. Assume common programming knowledge, but ensure that any specific context, variables, or code snippets pertinent to this problem are explicitly included.

2. [Solution]: Offer a comprehensive, **correct** solution that accurately addresses the [Problem Description] you provided."""

_SECTION = re.compile(r"^[#*\s]*\[?(problem description|solution)\]?[*:\s]*$", re.IGNORECASE | re.MULTILINE)


def split_problem_solution(text: str) -> Parsed:
    """Split the answer at its "[Problem Description]" and "[Solution]" headings."""
    parts: dict[str, str] = {}
    marks = list(_SECTION.finditer(text))
    for mark, nxt in zip(marks, [*marks[1:], None]):
        key = "problem" if mark.group(1).lower().startswith("problem") else "solution"
        parts[key] = text[mark.end() : nxt.start() if nxt else len(text)].strip()
    missing = [k for k in ("problem", "solution") if not parts.get(k)]
    return Parsed(values=parts, error=f"no [{missing[0]}] section" if missing else None)


oss_instruct = task(
    name="oss_instruct",
    inputs=["code"],
    outputs=["problem", "solution"],
    render=lambda row: chat(PROMPT.format(code=row["code"]), system_prompt=SYSTEM),
    parse=split_problem_solution,
)


def scripted(chats: list[list[dict[str, str]]]) -> list[str]:
    """A stand-in model answering the way instruction-tuned models usually do."""
    return [
        "**[Problem Description]**\nWrite `dedupe(xs)` returning the items of `xs` without repeats, "
        "keeping first occurrences in order.\n\n**[Solution]**\n```python\ndef dedupe(xs):\n"
        "    seen = set()\n    return [x for x in xs if not (x in seen or seen.add(x))]\n```"
        for _ in chats
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", help="an OpenAI-compatible base URL; a scripted model without it")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    model = scripted
    if args.server:
        from distilfn.models.openai import openai_compatible

        model = openai_compatible(args.server, model=args.model)
    snippets = pl.DataFrame({"code": ["seen = set()\nfor x in xs:\n    if x not in seen: seen.add(x)"]})
    print(oss_instruct.preview({"code": snippets["code"][0]}))
    out = oss_instruct.run(snippets, model=model)
    for row in out.select("problem", "solution").iter_rows(named=True):
        print("\nPROBLEM:\n" + row["problem"] + "\n\nSOLUTION:\n" + row["solution"])


if __name__ == "__main__":
    main()
