"""The README's ``fake`` model, as the README shows it (the README test checks they match)."""

from __future__ import annotations

# --- README fake: begin
import itertools
import re

counter = itertools.count(1)

def fake(chats):
    """A stand-in model: a rewrite for evol_instruct, an answer, or four ratings for the judge."""
    out = []
    for chat in chats:
        text = chat[-1]["content"]
        if "Output for Text" in text:  # the UltraFeedback judge: one block per text
            texts = len(re.findall(r"^<text \d+> (?!\[Text)", text, re.M))
            out.append("\n".join(f"#### Output for Text {i}\nRating: {6 - i}\nRationale: fine." for i in range(1, texts + 1)))
        elif "Given Prompt#:" in text:  # an evol_instruct rewrite
            given = text.rsplit("Given Prompt#:", 1)[1].strip().splitlines()[0]
            out.append(f"{given} Answer in exactly {next(counter) % 3 + 2} sentences.")
        else:
            out.append(f"Answer {next(counter)}: it depends.")
    return out
# --- README fake: end
