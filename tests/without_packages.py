"""Run Python in a child process where some installed packages cannot be imported, as if missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MARK", "TEST_EXTRA", "python_without"]

TEST_EXTRA = ("hypothesis", "httpx", "httptools")
"""The packages only ``pip install 'distilfn[test]'`` brings."""

MARK = "as if not installed"
"""In the ModuleNotFoundError of a hidden package: seeing it means something imported one."""

# argv: the hidden packages (comma-separated), then `-c code args...` or `script args...`.
BOOTSTRAP = f"""
import importlib.abc, os, runpy, sys

HIDDEN = set(sys.argv[1].split(","))
assert not [m for m in sys.modules if m.partition(".")[0] in HIDDEN], "imported before they could be hidden"


class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} ({MARK})", name=name)
        return None


sys.meta_path.insert(0, Hide())
if sys.argv[2] == "-c":
    code, sys.argv = sys.argv[3], ["-c", *sys.argv[4:]]
    exec(compile(code, "<string>", "exec"), {{"__name__": "__main__"}})
else:
    sys.argv = sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def python_without(
    hidden: Sequence[str], *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python *args`` (``-c code`` or a script and its arguments) with ``hidden`` unimportable."""
    return subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, ",".join(hidden), *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
    )
