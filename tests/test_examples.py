"""Every example runs as written (with its scripted stand-in model), in a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("evol_ultrafeedback.py", ["--scripted"], "ultrafeedback_overall_rating  [judge]"),
        ("judge_comparison.py", [], "answered by {'writer'} - judged by judge"),
        ("structured_output.py", ["--scripted"], "positive"),
    ],
)
def test_example_runs(script, args, expected):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=120, cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_custom_parser_property_example_passes():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_custom_parser.py"],
        capture_output=True, text=True, timeout=300, cwd=EXAMPLES,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
