"""Every example runs as written (with its scripted stand-in model), in a real subprocess.

The examples that use only a scripted model must run after the main-job install
(``pip install -e '.[local]'``), without the ``test`` extra: they run here in a child
where hypothesis, httpx and httptools cannot be imported.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from without_packages import MARK, TEST_EXTRA, python_without

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# (script, args, a pattern its output must contain when it ran correctly)
EXAMPLE_RUNS = [
    ("equal_prompts_judge.py", [], r"Name a fruit!\s+┆\s+true\b"),
    ("evol_ultrafeedback.py", ["--scripted"], re.escape("ultrafeedback_overall_rating  [judge]")),
    ("haiku_self_instruct.py", [], r"Write a haiku about autumn rain at dawn\.\nMist over still pond"),
    ("image_questions.py", [], r"What animal is this\? -> \(scripted\) I see Cat03\.jpg"),
    ("judge_comparison.py", [], re.escape("answered by {'writer'} - judged by judge")),
    ("oss_instruct.py", [], r"PROBLEM:\nWrite `dedupe\(xs\)`(.|\n)*SOLUTION:\n```python\ndef dedupe\(xs\):"),
    ("structured_output.py", ["--scripted"], r"positive\s+┆\s+5\b"),
]
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "conftest.py" and not p.name.startswith("test_"))


@functools.cache
def run_without_test_extra(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python examples/<script> args`` in a child that cannot import the test extra (run once)."""
    return python_without(TEST_EXTRA, str(EXAMPLES / script), *args, cwd=EXAMPLES)


def test_the_bootstrap_hides_the_test_extra(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import polars, msgspec\nimport hypothesis\n")
    result = python_without(TEST_EXTRA, str(script), timeout=60)
    assert result.returncode != 0
    assert f"No module named 'hypothesis' ({MARK})" in result.stderr


def test_every_example_is_listed():
    assert [script for script, _, _ in EXAMPLE_RUNS] == SCRIPTS


@pytest.mark.parametrize(("script", "args"), [(script, args) for script, args, _ in EXAMPLE_RUNS])
def test_example_needs_no_test_extra(script, args):
    result = run_without_test_extra(script, *args)
    assert MARK not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        pytest.param(*run)
        for run in EXAMPLE_RUNS
    ],
)
def test_example_runs_without_test_extra(script, args, expected):
    result = run_without_test_extra(script, *args)
    assert result.returncode == 0, result.stderr
    assert re.search(expected, result.stdout), result.stdout


def test_custom_parser_property_example_passes():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_custom_parser.py"],
        capture_output=True, text=True, timeout=300, cwd=EXAMPLES,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
