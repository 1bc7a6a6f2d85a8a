"""distilfn.testing loads each helper's module on first use: a scripted model needs no extra,
and what needs the test extra says how to install it."""

from __future__ import annotations

import importlib.util
import json

import pytest
from without_packages import MARK, TEST_EXTRA, python_without

import distilfn.testing

# Each statement's ImportError message (or "ok"), as JSON.
TRY = """
import json
results = {}
for statement in STATEMENTS:
    try:
        exec(statement, {})
        results[statement] = "ok"
    except ImportError as exc:
        results[statement] = str(exc)
print(json.dumps(results))
"""
NEEDS_HYPOTHESIS = [
    "from distilfn.testing import check_parser",
    "from distilfn.testing import model_texts, chats, rows, rating_answers",
    "from distilfn.testing import layout_drift, Drift",
    "import distilfn.testing.strategies",
    "import distilfn.testing.parsers",
]
NEEDS_HTTPTOOLS = [
    "from distilfn.testing import FakeServer",
    "from distilfn.testing.fakeserver import FakeServerProcess",
]
SCRIPTED = [
    "from distilfn.testing import ScriptedModel, scripted_model\n"
    "assert scripted_model(['a'])([[{'role': 'user', 'content': 'q'}]]) == ['a']",
]


def tried(hidden: tuple[str, ...], statements: list[str]) -> dict[str, str]:
    result = python_without(hidden, "-c", f"STATEMENTS = {statements!r}\n{TRY}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_the_test_extra_only_the_scripted_model_loads():
    results = tried(TEST_EXTRA, SCRIPTED + NEEDS_HYPOTHESIS + NEEDS_HTTPTOOLS)
    assert results.pop(SCRIPTED[0]) == "ok"
    for statement, message in results.items():
        package = "hypothesis" if statement in NEEDS_HYPOTHESIS else "httptools"
        assert f"needs {package}: pip install 'distilfn[test]'" in message, statement
        assert MARK not in message  # the hint, not the bare ModuleNotFoundError


def test_each_helper_needs_only_its_own_package():
    without_hypothesis = tried(("hypothesis",), NEEDS_HTTPTOOLS)
    without_httptools = tried(("httptools",), NEEDS_HYPOTHESIS)
    assert set(without_hypothesis.values()) == set(without_httptools.values()) == {"ok"}


@pytest.mark.parametrize("name", distilfn.testing.__all__)
def test_every_public_name_resolves_from_the_package(name):
    value = getattr(distilfn.testing, name)
    assert value.__module__.startswith("distilfn.testing.")
    assert name in dir(distilfn.testing)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        distilfn.testing.nope  # noqa: B018


def test_the_fake_server_moved_into_distilfn_testing():
    assert importlib.util.find_spec("distilfn.fakeserver") is None
    assert importlib.util.find_spec("distilfn.testing.fakeserver") is not None
