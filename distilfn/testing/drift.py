"""Hypothesis strategies that write what real models write: well-formed answers, drifted.

Each strategy draws a well-formed answer (the values first, then their text) and
applies one drift that real judges and generators show, in seven families:

1. :func:`count_drift`: the answer covers more or fewer texts than the row holds;
2. :func:`layout_drift`: UltraFeedback without ``#### Output for Text i`` headers
   (``1.`` / ``1)`` lists, ``Text 1:`` lines, ``- Rating:`` bullets, no headings, sections
   out of order);
3. :func:`format_drift` and :func:`result_drift`: ``Rating: 4.``, ``4/5``, ``4 out of 5``,
   bold labels and values, CRLF line ends, prose before and after;
4. :func:`json_drift`: JSON in a text answer, fenced or bare, in distilfn's layout or in
   distilabel's column layout, and JSON lists of the wrong length;
5. :func:`instruction_list_drift`: Self-Instruct lists (JSON arrays, echoed headings,
   numbering, bullets, quotes, blank lines, more items than asked);
6. :func:`rewrite_drift`: Evol rewrites (label variants, fences, quotes, a trailing
   explanation of the changes);
7. :func:`score_drift`: Deita scores (all on one line, a markdown table, JSON).

Every draw is a :class:`Drift`: the text, the row it answers (task-side names), the
values a parser must read, whether the count is wrong (then a parser must report an
error), and the variant's name. Property-test your own parser against them::

    @given(layout_drift())
    def test_my_judge_reads_headerless_answers(drift):
        parsed = my_judge.read(drift.text, drift.row)
        assert parsed.values["ratings"] == drift.expected["ratings"]

Needs ``hypothesis`` (the ``test`` extra).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from distilfn.testing._extra import missing_test_extra

try:
    from hypothesis import strategies as st
except ImportError as exc:  # only without the test extra
    raise missing_test_extra(__name__, "hypothesis") from exc

__all__ = [
    "Drift",
    "count_drift",
    "format_drift",
    "instruction_list_drift",
    "json_drift",
    "layout_drift",
    "result_drift",
    "rewrite_drift",
    "score_drift",
    "sentences",
]


class Drift(NamedTuple):
    """One drifted answer and what reading it must give."""

    text: str
    row: dict[str, Any]
    """The row the answer belongs to, in task-side names (e.g. its ``generations``)."""
    expected: dict[str, Any]
    """The values a parser must read (empty when ``count_mismatch``)."""
    count_mismatch: bool
    """The answer covers another number of items than the row: reading it must give an error."""
    variant: str
    """The drift applied, e.g. ``"numbered 1)"``."""


_WORDS = (
    "clear accurate helpful brief detailed vague wrong correct polite complete partial concise relevant "
    "answer response text explains covers misses adds states gives the a it and but with without enough"
).split()


def sentences() -> st.SearchStrategy[str]:
    """Short plain sentences of words (no digits, labels or markup): rationales and queries.

    >>> from hypothesis import find
    >>> find(sentences(), lambda s: True).endswith(".")
    True
    """
    words = st.lists(st.sampled_from(_WORDS), min_size=2, max_size=9)
    return words.map(lambda ws: " ".join(ws).capitalize() + ".")


def _generations(n: int) -> list[str]:
    return [f"Answer number {i}." for i in range(1, n + 1)]


def _prose() -> st.SearchStrategy[str]:
    return st.sampled_from(
        ["Here is my evaluation of the texts.", "Sure! Let me assess each text in turn.", "I have read every text carefully."]
    )


@st.composite
def _ratings(draw: Any, n: int, scale: tuple[int, int] = (1, 5)) -> tuple[list[int], list[str]]:
    ratings = draw(st.lists(st.integers(min_value=scale[0], max_value=scale[1]), min_size=n, max_size=n))
    rationales = draw(st.lists(sentences(), min_size=n, max_size=n))
    return ratings, rationales


def _counts(min_n: int = 1, max_n: int = 5) -> st.SearchStrategy[int]:
    return st.integers(min_value=min_n, max_value=max_n)


def _block(rating: str, rationale: str, *, label: str = "{}:", sep: str = "\n", bullet: str = "") -> str:
    return f"{bullet}{label.format('Rating')} {rating}{sep}{bullet}{label.format('Rationale')} {rationale}"


# -- family 1: the count ------------------------------------------------------------------


@st.composite
def count_drift(draw: Any) -> Drift:
    """An UltraFeedback answer that rates fewer or more texts than the row holds.

    Variants: the last block missing, one headerless block for a row of several texts,
    an extra block.
    """
    n = draw(_counts(2, 5))
    variant = draw(st.sampled_from(["last block missing", "headerless single block", "extra block"]))
    covered = {"last block missing": n - 1, "headerless single block": 1, "extra block": n + 1}[variant]
    ratings, rationales = draw(_ratings(covered))
    if variant == "headerless single block":
        text = _block(str(ratings[0]), rationales[0])
    else:
        text = "\n\n".join(
            f"#### Output for Text {i}\n" + _block(str(r), why) for i, (r, why) in enumerate(zip(ratings, rationales), 1)
        )
    return Drift(text, {"generations": _generations(n)}, {}, True, variant)


# -- family 2: UltraFeedback layouts ------------------------------------------------------

_LAYOUTS = (
    "headers",
    "numbered 1.",
    "numbered 1)",
    "numbered inline",
    "Text i: lines",
    "Text i: inline",
    "bold Text i",
    "bullets",
    "no headings",
    "out of order",
)


@st.composite
def layout_drift(draw: Any) -> Drift:
    """An UltraFeedback answer (one rating and rationale per text) in a layout other than
    ``#### Output for Text i``: ``1.`` / ``1)`` lists, ``Text 1:`` lines, ``- Rating:``
    bullets, sections without headings, or headed sections out of order."""
    n = draw(_counts())
    ratings, rationales = draw(_ratings(n))
    layout = draw(st.sampled_from(_LAYOUTS))
    blocks = [_block(str(r), why) for r, why in zip(ratings, rationales, strict=True)]
    order = list(range(n))
    if layout == "headers":
        parts = [f"#### Output for Text {i + 1}\n{blocks[i]}" for i in order]
    elif layout in ("numbered 1.", "numbered 1)"):
        mark = layout[-1]
        parts = [f"{i + 1}{mark}\n{blocks[i]}" for i in order]
    elif layout == "numbered inline":
        parts = [f"{i + 1}. {_block(str(ratings[i]), rationales[i], sep=chr(10) + '   ')}" for i in order]
    elif layout == "Text i: lines":
        parts = [f"Text {i + 1}:\n{blocks[i]}" for i in order]
    elif layout == "Text i: inline":
        parts = [f"Text {i + 1}: {_block(str(ratings[i]), rationales[i])}" for i in order]
    elif layout == "bold Text i":
        parts = [f"**Text {i + 1}**\n{blocks[i]}" for i in order]
    elif layout == "bullets":
        parts = [_block(str(ratings[i]), rationales[i], bullet="- ") for i in order]
    elif layout == "no headings":
        parts = list(blocks)
    else:  # out of order: headed sections, matched by their number
        order = draw(st.permutations(list(range(n))))
        parts = [f"#### Output for Text {i + 1}\n{blocks[i]}" for i in order]
    text = "\n\n".join(parts)
    expected = {"ratings": ratings, "rationales": rationales}
    return Drift(text, {"generations": _generations(n)}, expected, False, layout)


# -- family 3: small formatting drift ------------------------------------------------------

_VALUE_FORMS = ("{r}", "{r}.", "{r}/5", "{r} out of 5", "**{r}**", "**{r}/5**", "{r} (of 5)")
_LABEL_FORMS = ("{}:", "**{}:**", "**{}**:", "__{}:__")


@st.composite
def format_drift(draw: Any) -> Drift:
    """A headed UltraFeedback answer with small drift: ``4.``, ``4/5``, ``4 out of 5``,
    bold labels and values, CRLF line ends, prose before and after."""
    n = draw(_counts())
    ratings, rationales = draw(_ratings(n))
    value = draw(st.sampled_from(_VALUE_FORMS))
    label = draw(st.sampled_from(_LABEL_FORMS))
    crlf = draw(st.booleans())
    lead, trail = draw(st.booleans()), draw(st.booleans())
    parts = [
        f"#### Output for Text {i}\n" + _block(value.format(r=r), why, label=label)
        for i, (r, why) in enumerate(zip(ratings, rationales, strict=True), 1)
    ]
    text = "\n\n".join(parts)
    if lead:
        text = draw(_prose()) + "\n\n" + text
    if trail:
        text += "\n\nOverall, the texts differ in quality."
    if crlf:
        text = text.replace("\n", "\r\n")
    variant = f"value {value!r}, label {label!r}" + (", CRLF" if crlf else "") + (", prose" if lead or trail else "")
    return Drift(text, {"generations": _generations(n)}, {"ratings": ratings, "rationales": rationales}, False, variant)


@st.composite
def result_drift(draw: Any) -> Drift:
    """A Prometheus absolute answer (feedback, then ``[RESULT] 4``) with small drift."""
    score = draw(st.integers(min_value=1, max_value=5))
    feedback = draw(sentences())
    form = draw(st.sampled_from(["[RESULT] {r}", "[RESULT] {r}.", "[RESULT]: {r}", "**[RESULT]** {r}", "[RESULT] {r}/5",
                                 "[RESULT] **{r}**", "[RESULT] ({r})"]))
    head = draw(st.sampled_from(["", "Feedback: ", "**Feedback:** "]))
    text = f"{head}{feedback} {form.format(r=score)}"
    if draw(st.booleans()):
        text = text.replace(" [RESULT]", "\n[RESULT]").replace(" **[RESULT]", "\n**[RESULT]")
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n") + "\r\n"
    return Drift(text, {}, {"feedback": feedback, "result": score}, False, form)


# -- family 4: JSON in text mode -----------------------------------------------------------


@st.composite
def json_drift(draw: Any) -> Drift:
    """A JSON UltraFeedback answer in a text answer: fenced or bare or inside prose, in
    distilfn's layout (``{"assessments": [...]}``) or distilabel's columns
    (``{"ratings": [...], "rationales": [...]}``); sometimes a list of the wrong length."""
    n = draw(_counts())
    wrong = draw(st.sampled_from([0, 0, 0, -1, 1]))
    if n + wrong < 1:
        wrong = 0
    ratings, rationales = draw(_ratings(n + wrong))
    layout = draw(st.sampled_from(["assessments", "columns"]))
    if layout == "assessments":
        value: Any = {"assessments": [{"rating": r, "rationale": w} for r, w in zip(ratings, rationales, strict=True)]}
    else:
        value = {"ratings": ratings, "rationales": rationales}
    body = json.dumps(value, indent=draw(st.sampled_from([None, 2])))
    wrap = draw(st.sampled_from(["bare", "fenced json", "fenced", "prose"]))
    text = {
        "bare": body,
        "fenced json": f"```json\n{body}\n```",
        "fenced": f"```\n{body}\n```",
        "prose": f"Here is my evaluation:\n{body}\nI hope this helps.",
    }[wrap]
    expected = {} if wrong else {"ratings": ratings, "rationales": rationales}
    variant = f"{layout}, {wrap}" + ({-1: ", one short", 1: ", one long"}.get(wrong, ""))
    return Drift(text, {"generations": _generations(n)}, expected, bool(wrong), variant)


# -- family 5: Self-Instruct lists -----------------------------------------------------------


@st.composite
def instruction_list_drift(draw: Any) -> Drift:
    """A Self-Instruct answer for ``num_instructions`` queries (``row["num_instructions"]``):
    one per line, numbered, bulleted, quoted, a fenced JSON array, with echoed headings,
    blank lines, or more items than asked (the first ones are expected, with a note) or
    fewer (a count error)."""
    asked = draw(_counts(1, 6))
    extra = draw(st.sampled_from([0, 0, 0, 2, -1]))
    if asked + extra < 1:
        extra = 0
    items = draw(st.lists(sentences().map(lambda s: s[:-1] + "?"), min_size=asked + extra, max_size=asked + extra))
    form = draw(st.sampled_from(["lines", "1.", "1)", "(1)", "Query 1:", "-", "*", "\u2022", "quoted", "json", "bold numbered", "# 1."]))
    if form == "lines":
        lines = list(items)
    elif form in ("1.", "1)"):
        lines = [f"{i}{form[-1]} {q}" for i, q in enumerate(items, 1)]
    elif form == "(1)":
        lines = [f"({i}) {q}" for i, q in enumerate(items, 1)]
    elif form == "Query 1:":
        lines = [f"Query {i}: {q}" for i, q in enumerate(items, 1)]
    elif form in ("-", "*", "\u2022"):
        lines = [f"{form} {q}" for q in items]
    elif form == "quoted":
        lines = [f'"{q}"' for q in items]
    elif form == "bold numbered":
        lines = [f"**{i}.** {q}" for i, q in enumerate(items, 1)]
    elif form == "# 1.":  # numbered items written as headings (seen from SmolLM2)
        lines = [f"# {i}. {q}" for i, q in enumerate(items, 1)]
    else:
        lines = ["```json", json.dumps(items, indent=2), "```"]
    if form != "json" and draw(st.booleans()):  # blank and whitespace-only lines between items
        spaced: list[str] = []
        for line in lines:
            spaced += [line, draw(st.sampled_from(["", "   ", "\t"]))]
        lines = spaced
    heading = draw(st.sampled_from(["", "# Output", f"Here are {asked} queries:", "Sure! Here are the queries:", "## Queries"]))
    text = "\n".join(([heading, ""] if heading else []) + lines)
    if draw(st.booleans()):
        text += "\n\nLet me know if you need more."
    variant = form + (f", heading {heading!r}" if heading else "") + ({2: ", more than asked", -1: ", fewer"}.get(extra, ""))
    expected = {} if extra < 0 else {"instructions": items[:asked]}
    return Drift(text, {"num_instructions": asked}, expected, extra < 0, variant)


# -- family 6: Evol rewrites -----------------------------------------------------------------

_PROMPT_LABELS = (
    "#Rewritten Prompt#:",
    "**#Rewritten Prompt#:**",
    "#Rewritten Prompt#",
    "Rewritten Prompt:",
    "**Rewritten Prompt:**",
    "rewritten prompt:",
    "#REWRITTEN PROMPT#:",
    "## Rewritten Prompt",
    "",
)
_RESPONSE_LABELS = (
    "#Rewritten Response#:",
    "**#Rewritten Response#:**",
    "Rewritten Response:",
    "**Rewritten response:**",
    "#REWRITTEN RESPONSE#:",
    "",
)
_EXPLANATIONS = (
    "Explanation: I added a constraint about the length.",
    "**Explanation:** I made the {noun} more specific.",
    "In this rewritten {noun}, I added a requirement.",
    "Note: I replaced the general concept with a specific one.",
    "Changes made: added one more reasoning step.",
    "I added a constraint to make it harder.",
)


@st.composite
def rewrite_drift(draw: Any, *, response: bool = False) -> Drift:
    """An Evol rewrite of a prompt (or, with ``response``, of a response) as models wrap it:
    label variants, a code fence or quotes around it, a trailing explanation of the
    changes. ``expected`` holds the rewrite under ``evolved_instruction`` (``evolved_response``)."""
    rewrite = " ".join(draw(st.lists(sentences(), min_size=1, max_size=3)))
    label = draw(st.sampled_from(_RESPONSE_LABELS if response else _PROMPT_LABELS))
    wrap = draw(st.sampled_from(["none", "quotes", "fence", "bold", "curly quotes"]))
    body = {
        "none": rewrite,
        "quotes": f'"{rewrite}"',
        "fence": f"```\n{rewrite}\n```",
        "bold": f"**{rewrite}**",
        "curly quotes": f"\u201c{rewrite}\u201d",
    }[wrap]
    sep = draw(st.sampled_from(["\n", "\n\n"] if label.startswith("##") else [" ", "\n", "\n\n"])) if label else ""
    text = f"{label}{sep}{body}"
    explanation = draw(st.sampled_from(("", *_EXPLANATIONS)))
    if explanation:
        text += "\n\n" + explanation.format(noun="response" if response else "prompt")
    column = "evolved_response" if response else "evolved_instruction"
    variant = f"label {label!r}, {wrap}" + (", explanation" if explanation else "")
    return Drift(text, {}, {column: rewrite}, False, variant)


# -- family 7: Deita scores ------------------------------------------------------------------


@st.composite
def score_drift(draw: Any) -> Drift:
    """A Deita scorer answer for the row's ``instructions``: ``[i] Score: s`` lines, all on
    one line, a markdown table, a JSON list or object; sometimes a score missing."""
    n = draw(_counts(1, 5))
    short = draw(st.sampled_from([False, False, False, True])) and n > 1
    scores = draw(st.lists(st.integers(min_value=1, max_value=n + 1), min_size=n, max_size=n))
    shown = scores[:-1] if short else scores
    form = draw(st.sampled_from(["lines", "one line", "table", "json list", "json object", "json numbered", "bold lines"]))
    if form == "lines":
        text = "\n".join(f"[{i}] Score: {s}" for i, s in enumerate(shown, 1))
    elif form == "bold lines":
        text = "\n".join(f"**[{i}] Score:** {s}" for i, s in enumerate(shown, 1))
    elif form == "one line":
        text = " ".join(f"[{i}] Score: {s}" for i, s in enumerate(shown, 1))
    elif form == "table":
        text = "| Instruction | Score |\n|---|---|\n" + "\n".join(f"| {i} | {s} |" for i, s in enumerate(shown, 1))
    elif form == "json list":
        text = json.dumps(shown)
    elif form == "json object":
        text = json.dumps({"scores": shown})
    else:
        text = json.dumps({str(i): s for i, s in enumerate(shown, 1)})
    if draw(st.booleans()):
        text = f"Here are the scores:\n{text}"
    expected = {} if short else {"scores": [float(s) for s in scores]}
    row = {"instructions": [f"Instruction number {i}." for i in range(1, n + 1)]}
    return Drift(text, row, expected, short, form + (", one missing" if short else ""))
