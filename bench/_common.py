"""Shared helpers for the benchmarks: timing, peak memory, the RATIO line."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ratio_line", "info_line", "peak_rss_mb", "interleaved", "fastest", "cpu_count", "text_task"]


def ratio_line(name: str, value: float, target: str, ok: bool) -> str:
    """The line run_all.py collects: ``RATIO name=value target=... ok|MISS``."""
    line = f"RATIO {name}={value:.3f} target={target} {'ok' if ok else 'MISS'}"
    print(line, flush=True)
    return line


def info_line(name: str, value: float) -> str:
    """A ratio reported for information (no target): ``RATIO name=value target=none info``."""
    line = f"RATIO {name}={value:.3f} target=none info"
    print(line, flush=True)
    return line


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (VmHWM, else ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def interleaved(rounds: int, contenders: dict[str, Callable[[], Any]]) -> dict[str, list[tuple[float, float, Any]]]:
    """Run each contender once per round, alternating the order every round (ABBA...), so
    that load from other processes hits all of them alike.

    Returns, per contender, every round's (wall seconds, CPU seconds of this process, result).
    """
    runs: dict[str, list[tuple[float, float, Any]]] = {name: [] for name in contenders}
    order = list(contenders.items())
    for r in range(rounds):
        for name, fn in order if r % 2 == 0 else order[::-1]:
            c0, t0 = time.process_time(), time.perf_counter()
            result = fn()
            runs[name].append((time.perf_counter() - t0, time.process_time() - c0, result))
    return runs


def fastest(runs: list[tuple[float, float, Any]]) -> tuple[float, float, Any]:
    """The run with the shortest wall time."""
    return min(runs, key=lambda r: r[0])


def cpu_count() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def text_task(name: str, source: str, target: str, **params: Any) -> Any:
    """A custom generation task: one user message built from ``source``, the answer into ``target``."""
    import distilfn

    def render(row: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{name}: {row[source]}"}]

    def parse(text: str) -> dict[str, Any]:
        return {target: text}

    return distilfn.task(name=name, inputs=[source], outputs=[target], render=render, parse=parse, params=params or None)
