"""Shared pieces for parsing what judge models write.

Every function here is pure and never raises on model text: what cannot be read comes
back as ``None`` together with a sentence saying why. The pieces cover the layouts the
catalogue's prompts ask for:

- scores: ``"4"``, ``"4/5"``, ``"**4**"``, ``"4 out of 5"`` (:func:`read_score`);
- labelled lines: ``Rating: 4``, ``**Rationale:** ...`` (:func:`labelled_fields`,
  :func:`labelled_value`);
- numbered blocks: ``#### Output for Text 2`` ... (:func:`split_blocks`);
- rating blocks (UltraFeedback): ``Rating:`` / ``Rationale:`` / ``Type:`` per text
  (:func:`read_rating_blocks`);
- indexed scores (Deita): ``[1] Score: 3`` (:func:`read_indexed_scores`);
- numbered lists: ``1. foo`` (:func:`numbered_items`);
- JSON from prose or code fences (:func:`extract_json`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import msgspec

__all__ = [
    "RatingBlock",
    "as_mapping",
    "as_texts",
    "Score",
    "extract_json",
    "find_number",
    "labelled_fields",
    "labelled_value",
    "numbered_items",
    "read_indexed_scores",
    "read_rating_block",
    "read_rating_blocks",
    "read_score",
    "split_blocks",
    "strip_markup",
]

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_NUMBER_RE = re.compile(rf"(?<![\w.]){_NUMBER}(?![\w])")
# a score is the first thing in its value ("4", "**4**", "(4)", "4/5"): a number further in is
# more often an echo of the prompt ("[Rating for text 1]") than an answer.
_LEADING_NUMBER = re.compile(rf"^[\s(\[\"'*_]*({_NUMBER})(?!\w|\.\d)")
# "4/5", "4 / 5", "4 out of 5", "4 (of 5)": the scale the model says it used
_DENOMINATOR = re.compile(rf"^[\s*_]*\.?[\s*_]*(?:/|\(?\s*(?:out\s+)?of\b)\s*({_NUMBER})", re.IGNORECASE)
_NA_RE = re.compile(r"^\W*n\s*/?\s*a\b", re.IGNORECASE)
_JSON_DECODER = json.JSONDecoder()
_FENCE_RE = re.compile(r"```[ \t]*(?:json[ \t]*)?\n(.*?)```", re.DOTALL | re.IGNORECASE)


class Score(msgspec.Struct, frozen=True):
    """A score read from text: its value, or ``None`` and the reason.

    >>> read_score("4/5", scale=(1, 5))
    Score(value=4, error=None)
    """

    value: int | float | None
    error: str | None = None


class RatingBlock(msgspec.Struct, frozen=True, kw_only=True):
    """What one ``#### Output for Text i`` block said (UltraFeedback layout)."""

    rating: int | float | None = None
    rationale: str | None = None
    types: list[int] | None = None
    types_rationale: str | None = None
    errors: tuple[str, ...] = ()


# -- small pieces ---------------------------------------------------------------------------


def normalise(text: str) -> str:
    r"""``text`` with CRLF and CR line ends made ``\n`` (so that line patterns see lines).

    >>> normalise("Rating: 4\r\nRationale: ok\r")
    'Rating: 4\nRationale: ok\n'
    """
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def strip_markup(text: str) -> str:
    """Strip surrounding whitespace and markdown emphasis (``**``, ``__``, backticks).

    >>> strip_markup("  **Good answer.**  ")
    'Good answer.'
    """
    return text.strip().strip("*_`").strip()


def find_number(text: str) -> float | None:
    """The first number standing alone in ``text``, or None.

    >>> find_number("Score: **7.5** of 10")
    7.5
    >>> find_number("none here") is None
    True
    """
    if not isinstance(text, str):
        return None
    match = _NUMBER_RE.search(text)
    return float(match.group()) if match else None


def read_score(
    text: str | None,
    *,
    scale: tuple[float, float] = (1, 5),
    integer: bool = True,
    what: str = "score",
) -> Score:
    """Read a score on ``scale`` (inclusive) from a short value such as ``"4"`` or ``"4/5"``.

    The number must come first (a template echo such as ``"[Rating for text 1]"`` is
    not read as 1). Scores outside the scale are rejected, never clipped. With
    ``integer``, ``"4.0"`` reads as 4 and ``"4.5"`` is rejected.

    >>> read_score("**4** (Highly Informative)")
    Score(value=4, error=None)
    >>> read_score("8/10", scale=(1, 10), integer=False)
    Score(value=8.0, error=None)
    >>> read_score("7").error
    'score is 7, outside the scale 1-5'
    >>> read_score("N/A").error
    "score is 'N/A'"
    >>> read_score("[Rating for text 1]").error
    "score is '[Rating for text 1]', not a number"
    >>> read_score("4."), read_score("4 out of 5").value, read_score("4/10").error
    (Score(value=4, error=None), 4, 'score is 4/10, not on the scale 1-5')
    >>> read_score("four").error
    "score is 'four', not a number"
    """
    if not isinstance(text, str) or not text.strip():
        return Score(None, f"{what} missing")
    value_text = strip_markup(text)
    if _NA_RE.match(value_text):
        return Score(None, f"{what} is 'N/A'")
    lead = _LEADING_NUMBER.match(value_text)
    number = float(lead.group(1)) if lead else None
    if number is None:
        return Score(None, f"{what} is {_short(value_text)!r}, not a number")
    low, high = scale
    shown = _fmt(number)
    denominator = _DENOMINATOR.match(value_text[lead.end() :]) if lead else None
    if denominator is not None and float(denominator.group(1)) != high:
        # "4/10" on a 1-5 scale: the model used another scale; reading 4 would be a guess
        return Score(None, f"{what} is {shown}/{_fmt(float(denominator.group(1)))}, not on the scale {_fmt(low)}-{_fmt(high)}")
    if not low <= number <= high:
        return Score(None, f"{what} is {shown}, outside the scale {_fmt(low)}-{_fmt(high)}")
    if integer:
        if number != int(number):
            return Score(None, f"{what} is {shown}, not a whole number")
        return Score(int(number))
    return Score(float(number))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- labelled lines ---------------------------------------------------------------------


# Patterns avoid two adjacent repeats over the same characters (e.g. ``[ \t]*[#\s]*``): on a
# degenerate answer (thousands of spaces or asterisks) those backtrack quadratically.
_PREFIX = r"[ \t>*_#\-]*(?:\d{1,3}[.)][ \t>*_#\-]*)?"


@lru_cache(maxsize=256)
def _label_re(labels: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(r"[ \t]+".join(re.escape(word) for word in label.split()) for label in labels)
    return re.compile(
        rf"^{_PREFIX}({names})[ \t*_]*(?:\([^)\n]*\)[ \t*_]*)?[:：][ \t*_]*",
        re.IGNORECASE | re.MULTILINE,
    )


def labelled_fields(text: str, labels: Iterable[str], *, paragraph: bool = True) -> list[tuple[str, str]]:
    """The ``Label: value`` lines of ``text`` for the given labels, in order.

    A value runs to the next label; with ``paragraph`` it also stops at a blank line or a
    ``---`` rule (so trailing prose is not taken in). Labels match case-insensitively
    and may be bold (``**Rating:**``); the label comes back lower-cased.

    >>> labelled_fields("**Rating:** 4\\nRationale: Clear and\\ncorrect.\\n\\nThanks!", ["rating", "rationale"])
    [('rating', '4'), ('rationale', 'Clear and\\ncorrect.')]
    """
    if not isinstance(text, str):
        return []
    text = normalise(text)
    matches = list(_label_re(tuple(labels)).finditer(text))
    out = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[match.end() : end]
        if paragraph:
            value = re.split(r"\n[ \t]*\n|\n[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*(?:\n|$)", value, maxsplit=1)[0]
        label = " ".join(match.group(1).lower().split())
        out.append((label, strip_markup(value)))
    return out


def labelled_value(text: str, label: str, *, last: bool = False, paragraph: bool = True) -> str | None:
    """The value after the first (or last) ``label:`` line, or None.

    >>> labelled_value("### Feedback\\nGood.\\nOverall Score: 7/10", "Overall Score")
    '7/10'
    """
    fields = [v for _, v in labelled_fields(text, [label], paragraph=paragraph)]
    if not fields:
        return None
    return fields[-1] if last else fields[0]


# -- numbered blocks --------------------------------------------------------------------

_DEFAULT_HEADER = (
    r"^[ \t#*_>]*(?:"
    r"(?:output|evaluation|assessment|feedback|critique)[ \t]+for[ \t]+"
    r"(?:text|response|answer)[ \t]*(?:#[ \t]*)?(\d{1,4})\b[^\n]*"
    r"|(?:text|response|answer)[ \t]*(?:#[ \t]*)?(\d{1,4})[ \t:*_#)\]]*"
    r"|(\d{1,2})[.)][ \t*_]*"
    r")$"
)
# "1. Rating: 4", "Text 2: **Rating:** 3": a number that opens a block on the line of its first label
_INLINE_HEADER = re.compile(
    r"^[ \t#*_>\-]*(?:(?:text|response|answer)[ \t]*(?:#[ \t]*)?(\d{1,4})[ \t*_]*[:.)\-]|(\d{1,2})[.)])[ \t]*"
    r"(?=(?:\*\*|__)?[ \t]*(?:rating|score|types?|rationale)\b)",
    re.IGNORECASE | re.MULTILINE,
)


def split_blocks(text: str, *, header: str | re.Pattern[str] = _DEFAULT_HEADER) -> dict[int, str]:
    """Split ``text`` at numbered headers (``#### Output for Text 2``): number -> block.

    The default header also accepts bold or plain ``Output for Text 2``, a bare
    ``Text 2:`` or ``2)`` line, and a number opening the line of the block's first label
    (``2. Rating: 3``, ``Text 2: Rating: 3``). Blocks are keyed by their number, never by
    position; the first block of each number wins.

    >>> split_blocks("#### Output for Text 1\\nRating: 4\\n**Output for Text 2**\\nRating: 2")
    {1: 'Rating: 4', 2: 'Rating: 2'}
    >>> split_blocks("2. Rating: 3\\n1. Rating: 5")
    {2: 'Rating: 3', 1: 'Rating: 5'}
    """
    if not isinstance(text, str):
        return {}
    text = normalise(text)
    pattern = header if isinstance(header, re.Pattern) else re.compile(header, re.IGNORECASE | re.MULTILINE)
    matches = list(pattern.finditer(text))
    if header is _DEFAULT_HEADER:
        inline = [m for m in _INLINE_HEADER.finditer(text) if not any(h.start() <= m.start() < h.end() for h in matches)]
        matches = sorted([*matches, *inline], key=lambda m: m.start())
    blocks: dict[int, str] = {}
    for i, match in enumerate(matches):
        number_text = next((g for g in match.groups() if g), None)
        if number_text is None or len(number_text) > 4:
            continue
        number = int(number_text)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        if number not in blocks:
            blocks[number] = text[match.end() : end].strip()
    return blocks


# -- UltraFeedback-style rating blocks --------------------------------------------------


def _read_types(value: str | None, num_types: int, what: str) -> tuple[list[int] | None, str | None]:
    if value is None:
        return None, f"{what} missing"
    cleaned = strip_markup(value).strip("[]() ")
    if not cleaned or re.match(r"^(none|n/?a|no\b|-)", cleaned, re.IGNORECASE):
        return [], None
    numbers = re.findall(r"\d+", cleaned.split("\n")[0])
    if not numbers:
        return None, f"{what} is {_short(cleaned)!r}, not a list of numbers"
    types = sorted({int(n) for n in numbers})
    bad = [t for t in types if not 1 <= t <= num_types]
    if bad:
        return None, f"{what} is {bad[0]}, outside 1-{num_types}"
    return types, None


def read_rating_block(
    block: str,
    *,
    scale: tuple[float, float] = (1, 5),
    integer: bool = True,
    types: bool = False,
    num_types: int = 3,
    where: str = "",
) -> RatingBlock:
    """Read one block's ``Rating:`` and ``Rationale:`` (and ``Type:`` with ``types``).

    In the typed layout (``Type`` / ``Rationale`` / ``Rating`` / ``Rationale``) the
    rationale before the rating explains the types, the one after it the rating.

    >>> read_rating_block("Rating: 4/5\\nRationale: Accurate.")
    RatingBlock(rating=4, rationale='Accurate.', types=None, types_rationale=None, errors=())
    """
    fields = labelled_fields(block, ["type", "types", "rating", "score", "rationale"])
    rating_at = next((i for i, (label, _) in enumerate(fields) if label in ("rating", "score")), None)
    errors: list[str] = []
    if rating_at is None:
        rating: int | float | None = None
        errors.append(f"rating{where} missing")
    else:
        score = read_score(fields[rating_at][1], scale=scale, integer=integer, what=f"rating{where}")
        rating = score.value
        if score.error:
            errors.append(score.error)
    after = [v for label, v in fields[(rating_at or 0) + (rating_at is not None) :] if label == "rationale"]
    before = [v for label, v in fields[: rating_at or 0] if label == "rationale"] if rating_at is not None else []
    type_list: list[int] | None = None
    types_rationale: str | None = None
    if types:
        type_value = next((v for label, v in fields if label in ("type", "types")), None)
        type_list, type_error = _read_types(type_value, num_types, f"type{where}")
        if type_error:
            errors.append(type_error)
        types_rationale = before[0] if before and before[0] else None
        if types_rationale is None:
            errors.append(f"rationale for the type{where} missing")
        rationale = after[0] if after else None
    else:
        rationale = after[0] if after else (before[0] if before else None)
        if rating_at is None:
            rationale = next((v for label, v in fields if label == "rationale"), None)
    if rationale is not None and not rationale:
        rationale = None
    if rationale is None:
        errors.append(f"rationale{where} missing")
    return RatingBlock(
        rating=rating, rationale=rationale, types=type_list, types_rationale=types_rationale, errors=tuple(errors)
    )


def read_rating_blocks(
    text: str | None,
    *,
    n: int | None = None,
    scale: tuple[float, float] = (1, 5),
    integer: bool = True,
    types: bool = False,
    header: str | re.Pattern[str] = _DEFAULT_HEADER,
    noun: str = "text",
) -> tuple[list[RatingBlock] | None, str | None]:
    """Read ``n`` rating blocks (``#### Output for Text i``); a missing one is empty.

    Returns the blocks (``None`` when nothing at all was found) and an error naming each
    block or field that could not be read, e.g. ``"rating for text 4 missing"``. Without
    ``n`` the count is the highest block number seen.

    Numbered blocks are matched by their number. Blocks with no number at all (``-
    Rating:`` bullets, bare ``Rating:`` / ``Rationale:`` pairs) are read in order only
    when there are exactly ``n`` of them; otherwise nothing is guessed.

    >>> blocks, error = read_rating_blocks("#### Output for Text 1\\nRating: 4\\nRationale: Fine.", n=2)
    >>> [b.rating for b in blocks], error
    ([4, None], 'rating for text 2 missing')
    >>> blocks, error = read_rating_blocks("- Rating: 4\\n- Rationale: Fine.\\n\\n- Rating: 2\\n- Rationale: Off.", n=2)
    >>> [b.rating for b in blocks], error
    ([4, 2], None)
    >>> read_rating_blocks("Rating: 4\\nRationale: Fine.", n=2)
    (None, 'found 1 unnumbered rating for 2 texts; cannot tell which text it rates')
    """
    if not isinstance(text, str):
        return None, "no model output"
    text = normalise(text)
    found = split_blocks(text, header=header)
    if not found:
        unnumbered = _unnumbered_blocks(text, types)
        if unnumbered and n not in (None, len(unnumbered)):
            k = len(unnumbered)
            return None, (
                f"found {k} unnumbered rating{'s' * (k != 1)} for {n} {noun}s; "
                f"cannot tell which {noun} {'it rates' if k == 1 else 'they rate'}"
            )
        if unnumbered and (n is not None or len(unnumbered) == 1):
            found = dict(enumerate(unnumbered, start=1))
    if not found:
        return None, f"no '#### Output for {noun.title()} i' blocks found"
    count = n if n is not None else max(found)
    blocks: list[RatingBlock] = []
    errors: list[str] = []
    for i in range(1, count + 1):
        if i not in found:
            blocks.append(RatingBlock())
            errors.append(f"rating for {noun} {i} missing")
            continue
        block = read_rating_block(found[i], scale=scale, integer=integer, types=types, where=f" for {noun} {i}")
        blocks.append(block)
        errors.extend(block.errors)
    extra = sorted(k for k in found if k > count)
    if extra:
        errors.append(f"found {noun} {extra[0]} but only {count} were asked for")
    return blocks, "; ".join(errors) or None


def _unnumbered_blocks(text: str, types: bool) -> list[str]:
    """The blocks of an answer without numbers: each starts at a ``Rating:`` label (at a
    ``Type:`` label in the typed layout) and runs to the next."""
    starts = list(_label_re(("type", "types") if types else ("rating", "score")).finditer(text))
    return [text[m.start() : starts[i + 1].start() if i + 1 < len(starts) else len(text)] for i, m in enumerate(starts)]


# -- indexed scores (Deita) -------------------------------------------------------------

_INDEXED_SCORE = re.compile(
    rf"^[ \t>*_\-\[]*(?:(?:response|instruction|question|text)[ \t]*)?(\d{{1,4}})[ \t\]*_.):]*"
    rf"score[ \t*_]*(?:[:=][ \t*_]*)?({_NUMBER})",
    re.IGNORECASE | re.MULTILINE,
)
_BRACKET_SCORE = re.compile(rf"^[ \t*_]*\[(\d{{1,4}})\][ \t*_:=]*({_NUMBER})[ \t*_]*$", re.MULTILINE)
# "[1] Score: 3 [2] Score: 1": several on one line
_INLINE_SCORE = re.compile(
    rf"\[[ \t]*(?:(?:response|instruction|question|text)[ \t]*)?(\d{{1,4}})[ \t]*\][ \t*_:]*score[ \t*_]*(?:[:=][ \t*_]*)?({_NUMBER})",
    re.IGNORECASE,
)
# "| 1 | 3 |" (a markdown table of index and score)
_TABLE_SCORE = re.compile(
    rf"^[ \t]*\|[ \t*_]*\[?(?:(?:response|instruction|question|text)[ \t]*)?(\d{{1,4}})\]?[ \t*_]*\|[ \t*_]*({_NUMBER})[ \t*_]*\|",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBER_LIST = re.compile(rf"^[ \t]*\[[ \t]*{_NUMBER}(?:[ \t]*,[ \t]*{_NUMBER})*[ \t]*\][ \t]*$", re.MULTILINE)


def json_scores(text: str) -> dict[int, str] | None:
    """Index -> score text from a JSON answer: a list of numbers (on its own line, fenced
    or whole), ``{"scores": [...]}`` or ``{"1": 3, "2": 1}``; None when there is none.

    >>> json_scores("Scores:\\n[3, 1]"), json_scores('{"1": 2, "2": 5}'), json_scores('{"scores": [4]}')
    ({1: '3', 2: '1'}, {1: '2', 2: '5'}, {1: '4'})
    """
    found, _ = _json_scores(text)
    return found


def _json_scores(text: str) -> tuple[dict[int, str] | None, bool]:
    """:func:`json_scores`, and whether the scores came as a list (positions, not numbers)."""
    line = _NUMBER_LIST.search(text)
    value: Any = json.loads(line.group()) if line else extract_json(text, kind=dict)
    if isinstance(value, dict):
        if isinstance(value.get("scores"), list):
            value = value["scores"]
        elif value and all(isinstance(k, str) and k.strip().isdigit() and len(k.strip()) <= 4 for k in value):
            numbered = {int(k): str(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            return numbered or None, False
    if isinstance(value, list) and value and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return {i: str(v) for i, v in enumerate(value, start=1)}, True
    return None, False


def read_indexed_scores(
    text: str | None,
    *,
    n: int | None = None,
    scale: tuple[float, float] | None = None,
    integer: bool = False,
    noun: str = "item",
) -> tuple[list[int | float | None] | None, str | None]:
    """Read ``[1] Score: 3`` lines (also ``[Response 1] Score: 3``, ``1. Score: 3``, ``[1] 3``,
    several on one line, a markdown table ``| 1 | 3 |``, or JSON: see :func:`json_scores`).

    Without ``n`` the count is the highest index seen; without ``scale`` it is
    ``1..count+1`` (Deita's "score k+1 when too complex").

    >>> read_indexed_scores("[1] Score: 2\\n[2] Score: 5\\nThanks", n=2, scale=(1, 3))
    ([2.0, None], 'score for item 2 is 5, outside the scale 1-3')
    """
    if not isinstance(text, str):
        return None, "no model output"
    text = normalise(text)
    found: dict[int, str] = {}
    for patterns in ((_INDEXED_SCORE, _INLINE_SCORE), (_BRACKET_SCORE,), (_TABLE_SCORE,)):
        for pattern in patterns:
            for match in pattern.finditer(text):
                index = match.group(1)
                if len(index) <= 4:
                    found.setdefault(int(index), match.group(2))
        if found:
            break
    if not found:
        listed, positional = _json_scores(text)
        found = listed or {}
        if positional and n is not None and len(found) != n:
            return None, f"expected {n} scores, got {len(found)}: a JSON list of another length cannot be matched to the {noun}s"
    if not found:
        return None, "no '[i] Score: x' lines found"
    count = n if n is not None else max(found)
    low, high = scale if scale is not None else (1, count + 1)
    scores: list[int | float | None] = []
    errors: list[str] = []
    for i in range(1, count + 1):
        if i not in found:
            scores.append(None)
            errors.append(f"score for {noun} {i} missing")
            continue
        score = read_score(found[i], scale=(low, high), integer=integer, what=f"score for {noun} {i}")
        scores.append(score.value)
        if score.error:
            errors.append(score.error)
    return scores, "; ".join(errors) or None


# -- numbered lists ---------------------------------------------------------------------

_NUMBERED = re.compile(r"^[ \t]*(?:\*\*)?(?:\[(\d{1,4})\]|(\d{1,4})[.):])(?:\*\*)?[ \t]+(\S.*)$", re.MULTILINE)


def numbered_items(text: str | None) -> list[str]:
    """The items of a numbered list (``1. a``, ``2) b``, ``[3] c``), in order of appearance.

    >>> numbered_items("Here:\\n1. First\\n2) Second\\n[3] **Third**\\nBye")
    ['First', 'Second', 'Third']
    """
    if not isinstance(text, str):
        return []
    return [strip_markup(m.group(3)) for m in _NUMBERED.finditer(text) if strip_markup(m.group(3))]


# -- JSON ------------------------------------------------------------------------------


def extract_json(text: str | None, *, kind: type | tuple[type, ...] = (dict, list)) -> Any:
    """The first JSON value of type ``kind`` in ``text``: whole text, code fence, or embedded.

    Returns None when there is none.

    >>> extract_json('Sure! ```json\\n{"rating": 4}\\n``` Hope this helps.')
    {'rating': 4}
    >>> extract_json('The answer is {"a": [1, 2]} as requested.')
    {'a': [1, 2]}
    >>> extract_json("no json") is None
    True
    """
    if not isinstance(text, str):
        return None
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE_RE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, kind):
            return value
    tries = 0
    for match in re.finditer(r"[{\[]", text):
        tries += 1
        if tries > 200:
            break
        try:
            value, _ = _JSON_DECODER.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, kind):
            return value
    return None


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty dict (for reading decoded JSON safely)."""
    return value if isinstance(value, Mapping) else {}


def as_texts(value: Any, *, column: str, where: str, count: int | None = None) -> list[str]:
    """A list-of-texts input column as a list of str; raise TypeError naming ``column`` otherwise.

    For tasks' ``render`` (inputs, not model text): ``None`` items become ``""``.

    >>> as_texts(["a", None], column="generations", where="ultrafeedback")
    ['a', '']
    >>> as_texts("a", column="generations", where="ultrafeedback")
    Traceback (most recent call last):
    ...
    TypeError: ultrafeedback: column 'generations' must be a non-empty list of texts, got 'a'
    """
    if isinstance(value, str | bytes) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        msg = f"{where}: column {column!r} must be a non-empty list of texts, got {value!r}"
        raise TypeError(msg)
    texts = ["" if v is None else str(v) for v in value]
    if not texts:
        msg = f"{where}: column {column!r} must be a non-empty list of texts, got {value!r}"
        raise TypeError(msg)
    if count is not None and len(texts) != count:
        msg = f"{where}: column {column!r} must hold {count} texts, got {len(texts)}"
        raise ValueError(msg)
    return texts
