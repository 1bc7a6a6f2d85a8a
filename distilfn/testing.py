"""Testing helpers for users' own tasks: Hypothesis strategies, a parser check, a fake model.

Needs ``hypothesis`` (the ``test`` extra). A parser test is one line::

    from distilfn.testing import check_parser

    def test_my_parser_never_raises():
        check_parser(my_task)

and a plan runs offline with a scripted model::

    model = scripted_model(lambda chat: "#### Output for Text 1\\nRating: 4\\nRationale: Fine.")
    out = plan.run(df, model=model)
    assert model.calls == len(df)
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - only without the test extra
    msg = "distilfn.testing needs hypothesis: pip install 'distilfn[test]'"
    raise ImportError(msg) from exc

from distilfn._types import Chat
from distilfn.dtypes import StoreError, checker
from distilfn.task import Parsed, Task

__all__ = [
    "ScriptedModel",
    "chats",
    "check_parser",
    "model_texts",
    "rating_answers",
    "rows",
    "scripted_model",
]

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


def check_parser(
    task: Task,
    texts: st.SearchStrategy[str] | None = None,
    *,
    max_examples: int = 200,
) -> None:
    """Assert that ``task`` reads any text: no exception inside its parser, exactly its columns.

    Runs a Hypothesis property over ``texts`` (default :func:`model_texts`): ``task.read``
    returns a :class:`~distilfn.Parsed` whose values are exactly the task's output columns,
    the parser itself did not raise (``Task.read`` would otherwise record "parse failed"),
    and every value it read fits its column's declared type (``Task.read`` would otherwise
    drop it with an error). Raises AssertionError with the failing text.

    >>> from distilfn import task
    >>> upper = task(name="upper", inputs=["q"], outputs=["a"], render=lambda r: [], parse=lambda t: {"a": t.upper()})
    >>> check_parser(upper, max_examples=20)
    """
    strategy = texts if texts is not None else model_texts()
    columns = set(task.output_columns)

    def check(text: str | None) -> None:
        parsed = task.read(text)
        assert isinstance(parsed, Parsed), f"task {task.name!r} read {text!r} as {type(parsed).__name__}"
        assert set(parsed.values) == columns, (
            f"task {task.name!r} read {text!r} into columns {sorted(parsed.values)}, expected {sorted(columns)}"
        )
        assert not (parsed.error or "").startswith("parse failed"), (
            f"the parser of task {task.name!r} raised on {text!r}: {parsed.error}"
        )
        if text is not None:
            _check_storable(task, text)
        try:
            msgspec.json.encode(dict(parsed.values))
        except (TypeError, OverflowError) as exc:
            msg = f"task {task.name!r} read {text!r} into values that cannot be stored: {exc}"
            raise AssertionError(msg) from exc

    check(None)
    check("")

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(strategy)
    def property_(text: str) -> None:
        check(text)

    property_()


def _check_storable(task: Task, text: str) -> None:
    """Every value the parser read for ``text`` fits its column's declared dtype."""
    raw = task.read_raw(text)
    dtypes = task.output_dtypes
    for name, column in zip(task.outputs, task.output_columns, strict=True):
        try:
            checker(dtypes[column])(raw.values.get(name))
        except StoreError as exc:
            msg = (
                f"task {task.name!r} read {text!r} into values that cannot be stored in column {column!r} "
                f"({dtypes[column]}): {exc}"
            )
            raise AssertionError(msg) from None


class ScriptedModel:
    """A plain-function model answering from a script, recording what it was asked.

    Call it as ``model(chats, **params) -> list[str]``; ``calls`` counts the chats
    answered and ``chats`` keeps them in order. Thread-safe.
    """

    def __init__(self, answer: Callable[[Chat], str] | Sequence[str], *, name: str = "scripted"):
        if isinstance(answer, str) or not (callable(answer) or isinstance(answer, Sequence)):
            msg = f"scripted_model: `answer` must be a function of the chat or a list of texts, got {answer!r}"
            raise TypeError(msg)
        if not callable(answer) and not answer:
            msg = "scripted_model: `answer` is an empty list; give at least one text"
            raise ValueError(msg)
        self.__name__ = name
        self.__qualname__ = f"scripted_model.{name}"
        self.name = name
        self._answer = answer
        self._cycle = None if callable(answer) else itertools.cycle(list(answer))
        self._lock = threading.Lock()
        self.chats: list[Chat] = []

    @property
    def calls(self) -> int:
        """The number of chats answered so far."""
        return len(self.chats)

    def __call__(self, chats: list[Chat], **params: Any) -> list[str]:
        out = []
        for chat in chats:
            with self._lock:
                self.chats.append(chat)
                text = next(self._cycle) if self._cycle is not None else None
            out.append(text if text is not None else self._answer(chat))  # type: ignore[operator]
        return out

    def __repr__(self) -> str:
        return f"scripted_model(name={self.name!r}, calls={self.calls})"


def scripted_model(answer: Callable[[Chat], str] | Sequence[str], *, name: str = "scripted") -> ScriptedModel:
    """A fake model: ``answer(chat) -> str`` for each chat, or the texts of a list in turn (cycling).

    >>> model = scripted_model(["yes", "no"])
    >>> model([[{"role": "user", "content": "a"}]] * 3)
    ['yes', 'no', 'yes']
    >>> model.calls
    3
    """
    return ScriptedModel(answer, name=name)
