"""Run every benchmark in its own process and print their ratios as one table.

    python bench/run_all.py                 # all of them (what `just bench` runs)
    python bench/run_all.py latency memory  # only bench_latency.py and bench_memory.py
    python bench/run_all.py --strict        # exit 1 when a ratio misses its target

Each ``bench_<name>.py`` prints a few lines and ``RATIO name=value target=... ok|MISS``
lines (``info`` for ratios without a target, ``skipped`` when it cannot run here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["overhead", "latency", "memory", "warm", "local", "faults", "small_server", "ray"]
RATIO = re.compile(r"^RATIO (?P<name>[\w.]+)=(?P<value>\S+) target=(?P<target>\S+) (?P<status>\w+)\s*$")


def benches(selected: list[str]) -> list[Path]:
    found = {p.stem.removeprefix("bench_"): p for p in HERE.glob("bench_*.py")}
    names = selected or [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    unknown = [n for n in names if n not in found]
    if unknown:
        sys.exit(f"no benchmark named {unknown[0]!r}; there are: {', '.join(sorted(found))}")
    return [found[n] for n in names]


def run(path: Path) -> tuple[list[dict[str, str]], float, int]:
    """Run one benchmark, echoing its output; its RATIO lines, wall time and exit code."""
    print(f"== {path.name}", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True, cwd=HERE.parent, env=env)
    ratios = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print("   " + line, end="", flush=True)
        match = RATIO.match(line.strip())
        if match:
            ratios.append(match.groupdict())
    code = proc.wait()
    return ratios, time.perf_counter() - t0, code


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    selected = [a for a in argv if a != "--strict"]
    rows: list[tuple[str, dict[str, str]]] = []
    failed: list[str] = []
    t0 = time.perf_counter()
    for path in benches(selected):
        ratios, wall, code = run(path)
        if code != 0 or not ratios:
            failed.append(f"{path.name} (exit code {code})")
        rows += [(path.stem, r) for r in ratios]
    print()
    print(f"{'benchmark':<16}{'ratio':<30}{'value':>9}  {'target':<8}{'status'}")
    print("-" * 72)
    for bench, r in rows:
        print(f"{bench.removeprefix('bench_'):<16}{r['name']:<30}{r['value']:>9}  {r['target']:<8}{r['status']}")
    for name in failed:
        print(f"{name}: crashed or printed no RATIO line")
    print(f"\n{len(rows)} ratios in {time.perf_counter() - t0:.0f} s; on {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end (the ratios compare runs made side by side)")
    missed = [r for _, r in rows if r["status"] == "MISS"]
    return 1 if failed or (strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
