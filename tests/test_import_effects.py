"""Importing distilfn has no effects: no threads, exit hooks, written files, processes or sockets.

Each check runs in a fresh interpreter; the declared third-party dependencies are
imported first, so only what distilfn itself does on import is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys

MODULES = ("distilfn", "distilfn.tasks", "distilfn.models", "distilfn.testing")
NOT_ON_IMPORT = ("aiohttp", "hypothesis", "httptools", "httpx", "xllamacpp")

PROBE = """
import atexit, json, sys, threading

import filelock, jinja2, msgspec, numpy, polars, rich  # the main dependencies, measured before

events = []
WATCHED = ("subprocess.Popen", "os.system", "os.fork", "socket.connect", "socket.bind",
           "os.mkdir", "os.remove", "os.rename", "os.putenv", "os.unsetenv")


def audit(event, args):
    if event in WATCHED:
        events.append(event)
    elif event == "open" and isinstance(args[1], str) and any(c in args[1] for c in "wax+"):
        events.append(f"open {args[0]!r} {args[1]}")


def started(thread, start=threading.Thread.start):
    events.append(f"thread {thread.name}")
    start(thread)


threads, exit_hooks = threading.active_count(), atexit._ncallbacks()
threading.Thread.start = started  # Python 3.11 raises no audit event for a new thread
sys.addaudithook(audit)
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps({
    "events": events,
    "threads": threading.active_count() - threads,
    "exit_hooks": atexit._ncallbacks() - exit_hooks,
    "modules": sorted({m.partition(".")[0] for m in sys.modules} & set(%r)),
}))
""" % (NOT_ON_IMPORT,)


def imported(*modules: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_importing_distilfn_has_no_side_effects():
    assert imported(*MODULES) == {"events": [], "threads": 0, "exit_hooks": 0, "modules": []}


def test_the_probe_sees_threads_exit_hooks_files_and_modules(tmp_path):
    (tmp_path / "noisy.py").write_text(
        "import atexit, threading, aiohttp\n"
        "atexit.register(print)\n"
        "threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        f"open({str(tmp_path / 'out.txt')!r}, 'w').close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); exec({PROBE!r})", "noisy"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["threads"] == 1 and seen["exit_hooks"] == 1 and "aiohttp" in seen["modules"]
    assert any(e.startswith("thread ") for e in seen["events"]) and any(e.startswith("open ") for e in seen["events"])
