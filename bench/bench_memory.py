"""(c) Peak memory: 100k rows through a 1-step plan with streaming output.

The input is a Parquet file scanned lazily; ``plan.run_to`` streams finished rows to a
Parquet file. The run happens in a child process whose peak resident set size (VmHWM)
is the figure; for scale, the peak of a child that only imports distilfn and polars is
measured too. Target: under 500 MB; ratio = 500 MB / peak. A second, smaller run with a larger
``chunk_rows`` shows how the peak depends on the number of rows buffered before a write.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, ratio_line, text_task

ROWS = 100_000
LIMIT_MB = 500.0
CHUNK_ROWS = 1000  # run_to's default
SENSITIVITY = (30_000, 5000)  # rows, chunk_rows: how the peak grows with the write buffer
ANSWER = "a fixed answer from an instant model, about as long as a short reply would be"


def instant(chats: list[Any]) -> list[str]:
    """The instant model: no work, fixed text."""
    return [ANSWER] * len(chats)


def child_run(src: str, out: str, chunk_rows: int) -> None:
    """In the child: stream the plan's output to ``out``; print figures as JSON."""
    import polars as pl

    from distilfn.plan import Plan
    from distilfn.run import RunStats

    plan = Plan(steps=(text_task("answer", "instruction", "answer"),))
    stats = RunStats()
    t0 = time.perf_counter()
    plan.run_to(src, out, model=instant, chunk_rows=chunk_rows, cache=False, stats=stats, progress=False, summary=False)
    wall = time.perf_counter() - t0
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    print(json.dumps({"peak_mb": peak_rss_mb(), "wall": wall, "rows": rows, "requests": stats.requests}))


def child_floor() -> None:
    """In the child: only the imports a run needs (the floor of any run)."""
    import polars as pl  # noqa: F401

    import distilfn.plan  # noqa: F401
    import distilfn.run  # noqa: F401

    print(json.dumps({"peak_mb": peak_rss_mb()}))


def in_child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import polars as pl

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "input.parquet", Path(tmp) / "output.parquet"
        small = Path(tmp) / "small.parquet"
        frame = pl.DataFrame(
            {"id": range(ROWS), "instruction": [f"question {i}: explain item {i} in a few sentences" for i in range(ROWS)]}
        )
        frame.write_parquet(src)
        frame.head(SENSITIVITY[0]).write_parquet(small)
        del frame
        floor = in_child("--floor")["peak_mb"]
        result = in_child("--run", str(src), str(out), str(CHUNK_ROWS))
        size_mb = out.stat().st_size / 1e6
        bigger = in_child("--run", str(small), str(Path(tmp) / "small-out.parquet"), str(SENSITIVITY[1]))
    assert result["rows"] == ROWS and result["requests"] == ROWS, result
    peak = result["peak_mb"]
    print(f"1-step plan, {ROWS} rows, Parquet in (scanned lazily) -> plan.run_to Parquet out, chunk_rows={CHUNK_ROWS}")
    print(f"  peak RSS of the run's process : {peak:6.0f} MB  (imports alone: {floor:.0f} MB)")
    wall = result["wall"]
    print(f"  run time                      : {wall:6.1f} s ({ROWS / wall:.0f} rows/s), output {size_mb:.1f} MB")
    print(f"  same plan, {SENSITIVITY[0]} rows, chunk_rows={SENSITIVITY[1]}: peak {bigger['peak_mb']:.0f} MB "
          f"(the peak follows chunk_rows, not the row count)")
    ratio = LIMIT_MB / peak
    ratio_line("memory_500MB_over_peak", ratio, ">=1.0", ratio >= 1.0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        child_run(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1:2] == ["--floor"]:
        child_floor()
    else:
        t0 = time.perf_counter()
        main()
        print(f"  (benchmark wall time {time.perf_counter() - t0:.1f} s)")
