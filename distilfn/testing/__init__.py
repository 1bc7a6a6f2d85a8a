"""Testing helpers for users' own tasks: a scripted model, Hypothesis strategies, a parser
check, and a fault-injecting OpenAI-compatible server.

Each name loads its module on first use, so that importing this package needs no extra.
The scripted model needs nothing more than distilfn::

    >>> from distilfn.testing import scripted_model
    >>> scripted_model(["ok"])([[{"role": "user", "content": "hi"}]])
    ['ok']

The strategies and :func:`check_parser` need hypothesis, and the fake server httptools,
both from ``pip install 'distilfn[test]'``; without them, importing those names raises
an ImportError that says so. Homes: ``scripted`` (ScriptedModel, scripted_model),
``strategies`` (model_texts, chats, rows, rating_answers), ``drift`` (Drift and one
strategy per family of drift real models show: count_drift, layout_drift, format_drift,
result_drift, json_drift, instruction_list_drift, rewrite_drift, score_drift),
``parsers`` (check_parser),
``fakeserver`` (FakeServer, FakeServerProcess, FakeSettings, ReplyError).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distilfn.testing.drift import (
        Drift,
        count_drift,
        format_drift,
        instruction_list_drift,
        json_drift,
        layout_drift,
        result_drift,
        rewrite_drift,
        score_drift,
    )
    from distilfn.testing.fakeserver import FakeServer, FakeServerProcess, FakeSettings, ReplyError
    from distilfn.testing.parsers import check_parser
    from distilfn.testing.scripted import ScriptedModel, scripted_model
    from distilfn.testing.strategies import chats, model_texts, rating_answers, rows

_DRIFT = ("Drift", "count_drift", "format_drift", "instruction_list_drift", "json_drift", "layout_drift",
          "result_drift", "rewrite_drift", "score_drift")

_HOMES = {
    **dict.fromkeys(_DRIFT, "drift"),
    "FakeServer": "fakeserver",
    "FakeServerProcess": "fakeserver",
    "FakeSettings": "fakeserver",
    "ReplyError": "fakeserver",
    "ScriptedModel": "scripted",
    "chats": "strategies",
    "check_parser": "parsers",
    "model_texts": "strategies",
    "rating_answers": "strategies",
    "rows": "strategies",
    "scripted_model": "scripted",
}

__all__ = [
    *_DRIFT,
    "FakeServer",
    "FakeServerProcess",
    "FakeSettings",
    "ReplyError",
    "ScriptedModel",
    "chats",
    "check_parser",
    "model_texts",
    "rating_answers",
    "rows",
    "scripted_model",
]


def __getattr__(name: str) -> Any:
    """Import the module that holds ``name`` (PEP 562), once."""
    home = _HOMES.get(name)
    if home is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
