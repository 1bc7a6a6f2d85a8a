"""Hypothesis strategies for model text, chats, rows and well-formed rating answers.

Needs ``hypothesis`` (the ``test`` extra)::

    @given(model_texts())
    def test_my_parser_reads_anything(text):
        my_task.read(text)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from distilfn.testing._extra import missing_test_extra

try:
    from hypothesis import strategies as st
except ImportError as exc:  # only without the test extra
    raise missing_test_extra(__name__, "hypothesis") from exc

from distilfn._types import Chat

__all__ = ["MARKERS", "chats", "model_texts", "rating_answers", "rows"]

# Fragments that look like what judges write: layout markers, labels, numbers, markdown.
MARKERS: tuple[str, ...] = (
    "#### Output for Text 1",
    "#### Output for Text 2",
    "### Output for Text 3",
    "**Output for Text 4**",
    "Text 1:",
    "Rating:",
    "**Rating:**",
    "Rating: 4/5",
    "Rating: N/A",
    "Rationale:",
    "**Rationale**:",
    "Type:",
    "Type: None",
    "Type: 1, 3",
    "Score:",
    "[1] Score: 3",
    "[Response 2] Score:",
    "Overall Score: 7",
    "Final Score:",
    "Practical Accuracy: 8 -",
    "[RESULT]",
    "[RESULT] 4",
    "[RESULT] B",
    "Feedback:",
    "### Feedback",
    "### Feedback for Answer 1",
    "Assistant 1: 9",
    "8 7",
    "```json",
    "```",
    '{"assessments": [',
    '{"rating": 4, "rationale": "ok"}',
    "]}",
    "{",
    "}",
    "[",
    "]",
    "1.",
    "2)",
    "- ",
    "---",
    "**",
    "__",
    "`",
    "\n",
    "\n\n",
    " ",
    "\t",
    "0",
    "4",
    "5",
    "6",
    "10",
    "-3",
    "4.5",
    "99999999999999999999",
    "/",
    ":",
    "N/A",
    "None",
    "é",
    "\u200b",
    "\r\n",
)


def model_texts(*, markers: Iterable[str] = ()) -> st.SearchStrategy[str]:
    """Arbitrary model text: random unicode, and mixtures of layout markers and noise.

    ``markers`` adds your own layout fragments to the mix.

    >>> from hypothesis import find
    >>> "Rating:" in find(model_texts(), lambda text: "Rating:" in text)
    True
    """
    fragments = st.sampled_from((*MARKERS, *markers))
    noise = st.text(max_size=20)
    mixture = st.lists(st.one_of(fragments, fragments, noise), max_size=40).map("".join)
    return st.one_of(st.text(max_size=300), mixture, mixture)


def chats(*, max_messages: int = 4) -> st.SearchStrategy[Chat]:
    """Chats: an optional system message, then alternating user/assistant turns ending with the user.

    >>> from hypothesis import find
    >>> find(chats(), lambda chat: len(chat) > 2)[-1]["role"]
    'user'
    """
    content = st.text(min_size=1, max_size=80)

    @st.composite
    def build(draw: Any) -> Chat:
        turns = draw(st.integers(min_value=0, max_value=max(0, (max_messages - 1) // 2)))
        messages: Chat = []
        if draw(st.booleans()):
            messages.append({"role": "system", "content": draw(content)})
        for _ in range(turns):
            messages.append({"role": "user", "content": draw(content)})
            messages.append({"role": "assistant", "content": draw(content)})
        messages.append({"role": "user", "content": draw(content)})
        return messages

    return build()


def rows(columns: Sequence[str] | dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Rows with the given columns: text values, or the strategy given per column.

    Columns named in the plural that tasks read as lists (``generations``, ``responses``,
    ``instructions``) get lists of 1-5 texts.

    >>> from hypothesis import find
    >>> row = find(rows(["instruction", "generations"]), lambda row: True)
    >>> sorted(row), type(row["generations"]).__name__
    (['generations', 'instruction'], 'list')
    """
    if isinstance(columns, dict):
        return st.fixed_dictionaries(dict(columns))
    text = st.text(max_size=60)
    listy = {"generations", "responses", "instructions", "completions"}
    return st.fixed_dictionaries(
        {c: st.lists(text, min_size=1, max_size=5) if c in listy else text for c in columns}
    )


_SAFE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs"), exclude_characters="\u00a0\u1680\u2028\u2029"),
    min_size=1,
    max_size=40,
).map(lambda s: " ".join(s.split())).filter(lambda s: bool(s) and not s[0].isdigit())
_SENTENCES = st.lists(_SAFE_TEXT, min_size=1, max_size=3).map(lambda parts: ". ".join(parts) + ".")


@st.composite
def _rating_answer(draw: Any, n: int, scale: tuple[int, int], types: bool) -> tuple[str, dict[str, Any]]:
    bold = draw(st.booleans())
    fraction = draw(st.booleans())
    hashes = draw(st.sampled_from(["####", "###", "#####", "**"]))
    gap = draw(st.sampled_from(["\n", "\n\n", "\n\n\n"]))
    line_end = draw(st.sampled_from(["", " ", "  "]))

    def label(name: str) -> str:
        return f"**{name}:**" if bold else f"{name}:"

    parts: list[str] = []
    if draw(st.booleans()):
        parts.append(draw(_SENTENCES) + "\n\n")
    expected: dict[str, list[Any]] = {"ratings": [], "rationales": []}
    if types:
        expected.update(types=[], rationales_for_ratings=[])
    for i in range(1, n + 1):
        rating = draw(st.integers(min_value=scale[0], max_value=scale[1]))
        rationale = draw(_SENTENCES)
        header = f"**Output for Text {i}**" if hashes == "**" else f"{hashes} Output for Text {i}"
        lines = [header]
        if types:
            type_list = draw(st.lists(st.integers(min_value=1, max_value=3), unique=True, max_size=3).map(sorted))
            type_rationale = draw(_SENTENCES)
            type_text = ", ".join(map(str, type_list)) if type_list else "None"
            lines += [f"{label('Type')} {type_text}{line_end}", f"{label('Rationale')} {type_rationale}{line_end}"]
            expected["types"].append(type_list)
            expected["rationales"].append(type_rationale)
            expected["rationales_for_ratings"].append(rationale)
        else:
            expected["rationales"].append(rationale)
        shown = f"{rating}/{scale[1]}" if fraction else str(rating)
        lines += [f"{label('Rating')} {shown}{line_end}", f"{label('Rationale')} {rationale}{line_end}"]
        expected["ratings"].append(rating)
        parts.append("\n".join(lines) + gap)
    if draw(st.booleans()):
        parts.append("\n" + draw(_SENTENCES))
    return "".join(parts).rstrip() + draw(st.sampled_from(["", "\n"])), expected


def rating_answers(
    n: int | None = None, scale: tuple[int, int] = (1, 5), *, types: bool = False
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """Well-formed UltraFeedback-style answers and the values a parser should read from them.

    Each draw is ``(text, expected)`` where ``expected`` maps ``ratings`` and
    ``rationales`` (plus ``types`` and ``rationales_for_ratings`` with ``types=True``)
    to lists. Answers vary header levels, bold labels, ``Rating: 4/5``, blank lines,
    leading and trailing prose. ``n=None`` draws 1-6 texts.

    >>> from hypothesis import find
    >>> text, expected = find(rating_answers(2), lambda answer: True)
    >>> len(expected["ratings"]), "Output for Text 2" in text
    (2, True)
    """
    counts = st.just(n) if n is not None else st.integers(min_value=1, max_value=6)
    return counts.flatmap(lambda k: _rating_answer(k, scale, types))
