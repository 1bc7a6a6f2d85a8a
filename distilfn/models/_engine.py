"""The llama.cpp engine in its own process: ``python -m distilfn.models._engine``.

The child process loads a GGUF file into xllamacpp's embedded OpenAI-compatible HTTP
server, bound to 127.0.0.1, prints one JSON line ``{"address": ..., "pid": ...}`` on
stdout and then waits. It exits at once (``os._exit(0)``: llama.cpp's native teardown is
slow) on SIGTERM, when its stdin reaches end of file (the parent closed the pipe or died)
or when its parent process changes. It ignores SIGINT: Ctrl-C belongs to the parent.

The parent side is :class:`Engine`: it starts the child, waits for the address line and
for ``GET /health`` to answer 200, and stops the child on :meth:`Engine.stop`, when the
handle is garbage collected, or at interpreter exit.

This module imports only the standard library at the top, so the child starts fast and
the parent does not need xllamacpp in its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Sequence

__all__ = ["Engine", "EngineStartError", "engine_command", "main"]


class EngineStartError(RuntimeError):
    """The engine process did not come up; the message carries its stderr tail."""


def engine_command(
    model_path: str,
    *,
    alias: str,
    n_parallel: int = 4,
    ctx_per_slot: int = 4096,
    threads: int | None = None,
    verbose: bool = False,
) -> list[str]:
    """The command line that starts the engine process.

    >>> engine_command("m.gguf", alias="m", threads=2)[1:4]
    ['-m', 'distilfn.models._engine', '--model']
    """
    cmd = [
        sys.executable,
        "-m",
        "distilfn.models._engine",
        "--model",
        os.fspath(model_path),
        "--alias",
        alias,
        "--port",
        "0",
        "--n-parallel",
        str(n_parallel),
        "--ctx-per-slot",
        str(ctx_per_slot),
        "--threads",
        str(threads or default_threads()),
    ]
    if verbose:
        cmd.append("--verbose")
    return cmd


def default_threads() -> int:
    """Threads for llama.cpp: every usable core but one, which is left to Python.

    llama.cpp's threads wait for each other at every layer; when another busy process
    takes one of their cores, all of them stall. Measured on 2 shared cores: 2 threads
    fell to 1-4 generated tokens/s while 1 thread kept 20-34.

    >>> default_threads() >= 1
    True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class Engine:
    """A running engine process; ``Engine.launch(...)`` returns once it answers /health.

    ``base_url`` is the server's root (``http://127.0.0.1:PORT``); the OpenAI API lives
    under ``base_url + "/v1"``.
    """

    def __init__(self, proc: subprocess.Popen, base_url: str, stderr_tail: deque[str]):
        self.proc = proc
        self.base_url = base_url
        self._stderr_tail = stderr_tail
        self._finalizer = weakref.finalize(self, _terminate, proc, os.getpid())

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"Engine(pid={self.proc.pid}, base_url={self.base_url!r}, {state})"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def stderr_tail(self) -> str:
        return "".join(self._stderr_tail)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s) and reap it; idempotent."""
        self._finalizer()

    @classmethod
    def launch(cls, command: Sequence[str], *, timeout: float = 120.0) -> Engine:
        """Start ``command`` and wait until the server it announces answers /health."""
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the terminal's Ctrl-C goes to the parent only
        )
        tail: deque[str] = deque(maxlen=40)
        threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True).start()
        deadline = time.monotonic() + timeout
        try:
            line = _read_line(proc, deadline)
            if line is None:
                _fail(proc, tail, f"the engine did not print its address within {timeout:g} s")
            if not line:
                _wait_exit(proc)
                _fail(proc, tail, f"the engine process exited with code {proc.returncode} before listening")
            try:
                base_url = json.loads(line)["address"].rstrip("/")
            except (ValueError, KeyError, TypeError, AttributeError):
                _fail(proc, tail, f"the engine printed {line!r} instead of its address")
            if not base_url.startswith("http"):
                base_url = f"http://{base_url}"
            _wait_healthy(proc, tail, base_url, deadline, timeout)
        except BaseException:
            _terminate(proc)
            raise
        threading.Thread(target=_drain, args=(proc.stdout, deque(maxlen=1)), daemon=True).start()
        return cls(proc, base_url, tail)


def _drain(stream, tail: deque) -> None:
    with contextlib.suppress(ValueError, OSError):  # closed by _terminate
        for raw in iter(stream.readline, b""):
            tail.append(raw.decode("utf-8", "replace"))


def _read_line(proc: subprocess.Popen, deadline: float) -> str | None:
    """The first stdout line ("" at end of file), or None when the deadline passes."""
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    while reader.is_alive():
        reader.join(0.05)
        if time.monotonic() > deadline:
            return None
    return box[0].decode("utf-8", "replace").strip() if box else ""


def _wait_exit(proc: subprocess.Popen) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)


def _wait_healthy(proc, tail, base_url: str, deadline: float, timeout: float) -> None:
    while True:
        if proc.poll() is not None:
            _fail(proc, tail, f"the engine process exited with code {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # 503 while loading, or not listening yet
        if time.monotonic() > deadline:
            _fail(proc, tail, f"the engine at {base_url} did not answer /health with 200 within {timeout:g} s")
        time.sleep(0.05)


def _fail(proc: subprocess.Popen, tail: deque, message: str):
    if proc.poll() is None:
        _terminate(proc)
    else:
        time.sleep(0.1)  # let the drain thread read what the process wrote before dying
    stderr = "".join(tail).strip()
    raise EngineStartError(f"{message}; its stderr ends with:\n{stderr}" if stderr else f"{message} (no stderr)")


def _terminate(proc: subprocess.Popen, owner: int | None = None) -> None:
    """Stop and reap ``proc``; a forked copy of the owner process (``owner`` given) leaves it be."""
    if owner is not None and os.getpid() != owner:
        return
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        except ProcessLookupError:
            pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


# -- the child process ----------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m distilfn.models._engine", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--alias", required=True, help="the model name the server answers to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--n-parallel", type=int, default=4, help="slots (requests decoded together)")
    parser.add_argument("--ctx-per-slot", type=int, default=4096, help="context tokens of each slot")
    parser.add_argument("--threads", type=int, default=0, help="0: every usable core but one")
    parser.add_argument("--poll", type=int, default=None, help="llama.cpp busy-wait level, 0-100 (default 50)")
    parser.add_argument("--verbose", action="store_true", help="let llama.cpp log to stderr")
    return parser.parse_args(argv)


def _params(args: argparse.Namespace):
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.n_parallel
    params.n_ctx = args.ctx_per_slot * args.n_parallel  # n_ctx is the total over all slots
    threads = args.threads or default_threads()
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    if args.poll is not None:
        params.cpuparams.poll = params.cpuparams_batch.poll = args.poll
    params.model_alias = {args.alias}  # a set: a plain str would become a set of characters
    if not args.verbose:
        params.verbosity = 0
    return params


def _watch_stdin() -> None:
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the engine until SIGTERM, stdin EOF or the parent's death."""
    args = _parse_args(argv)
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import xllamacpp as xlc

    server = xlc.Server(_params(args))  # returns once the model is loaded and listening
    sys.stdout.write(json.dumps({"address": server.listening_address, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    threading.Thread(target=_watch_stdin, daemon=True).start()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    main()
