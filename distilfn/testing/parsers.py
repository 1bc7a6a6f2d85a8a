"""``check_parser``: a property test that a task reads any text (needs the ``test`` extra).

    from distilfn.testing import check_parser

    def test_my_parser_never_raises():
        check_parser(my_task)
"""

from __future__ import annotations

from distilfn.testing._extra import missing_test_extra

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # only without the test extra
    raise missing_test_extra(__name__, "hypothesis") from exc

from distilfn.task import Parsed, Task
from distilfn.testing.strategies import model_texts

__all__ = ["check_parser"]


def check_parser(
    task: Task,
    texts: st.SearchStrategy[str] | None = None,
    *,
    max_examples: int = 200,
) -> None:
    """Assert that ``task`` reads any text: no exception inside its parser, exactly its columns.

    Runs a Hypothesis property over ``texts`` (default :func:`model_texts`): ``task.read``
    returns a :class:`~distilfn.Parsed` whose values are exactly the task's output columns,
    every value the parser gave can be stored in its column (as declared: undeclared
    outputs are strings), and the parser itself did not raise (``Task.read`` would
    otherwise record "parse failed"). Raises AssertionError with the failing text.

    >>> from distilfn import task
    >>> upper = task(name="upper", inputs=["q"], outputs=["a"], render=lambda r: [], parse=lambda t: {"a": t.upper()})
    >>> check_parser(upper, max_examples=20)
    """
    strategy = texts if texts is not None else model_texts()

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(strategy)
    def property_(text: str) -> None:
        _check(task, text)

    _check(task, None)
    _check(task, "")
    property_()


def _check(task: Task, text: str | None) -> None:
    """One text: what ``task.read`` makes of it, against what the parser gave (``read_raw``)."""
    parsed = task.read(text)
    assert isinstance(parsed, Parsed), f"task {task.name!r} read {text!r} as {type(parsed).__name__}"
    assert set(parsed.values) == set(task.output_columns), (
        f"task {task.name!r} read {text!r} into columns {sorted(parsed.values)}, expected {sorted(task.output_columns)}"
    )
    assert not (parsed.error or "").startswith("parse failed"), (
        f"the parser of task {task.name!r} raised on {text!r}: {parsed.error}"
    )
    raw = task.read_raw(text) if text is not None else Parsed(values={})
    dropped = [
        column
        for name, column in zip(task.outputs, task.output_columns, strict=True)
        if raw.values.get(name) is not None and parsed.values[column] is None
    ]
    assert not dropped, f"task {task.name!r} read {text!r} into values that cannot be stored: {parsed.error}"
