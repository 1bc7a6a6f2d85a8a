"""(a) Framework overhead: rows/s through 1-step and 3-step plans with an instant in-process model.

The model returns fixed text at once, so the time measured is distilfn's own (render,
request bookkeeping, parse, metadata, assembling the typed frame). Compared with:

- a hand-written asyncio loop doing the same render/await/parse per row and building a
  frame (the ideal of zero framework), for 1 step: ``overhead_1step_vs_plain_asyncio``,
  target >= 0.5 (issue 10). Both await an async model: one chat per call.
- distilabel's 239 rows/s (MEASURED.md, a *1-step* pipeline on this kind of machine, not
  measured here) for distilfn's 3-step plan: ``overhead_vs_distilabel``, >= 1 (ours).

Sync plain functions are micro-batched in a worker thread (for vectorised engines); their
rows/s is printed too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import polars as pl

from _common import fastest, info_line, interleaved, ratio_line, text_task

ROWS = 10_000
ROUNDS = 5
CONCURRENCY = 64
DISTILABEL_ROWS_PER_S = 239.0  # MEASURED.md: distilabel 1.5.3, 1 step, instant model, 10k rows
ANSWER = "a fixed answer from an instant model"
STEPS = [("step1", "instruction", "a"), ("step2", "a", "b"), ("step3", "b", "c")]


def instant(chats: list[Any]) -> list[str]:
    """The instant model: no work, fixed text."""
    return [ANSWER] * len(chats)


async def async_instant(chats: list[Any]) -> list[str]:
    """The same, as an async function (one chat per call)."""
    return [ANSWER] * len(chats)


def distilfn_run(frame: pl.DataFrame, steps: int, model: Any = async_instant) -> pl.DataFrame:
    from distilfn.plan import Plan
    from distilfn.run import RunStats

    plan = Plan(steps=tuple(text_task(*s) for s in STEPS[:steps]))
    stats = RunStats()
    options = {"max_concurrency": CONCURRENCY, "cache": False, "stats": stats, "progress": False, "summary": False}
    out = plan.run(frame, model=model, **options)
    assert stats.requests == steps * frame.height, stats.summary()
    return out


def plain_asyncio(frame: pl.DataFrame, steps: int = 3) -> pl.DataFrame:
    """The same work by hand: per row, ``steps`` rounds of render -> await model -> parse."""
    tasks = [text_task(*s) for s in STEPS[:steps]]

    async def model(chat: Any) -> str:
        return (await async_instant([chat]))[0]

    async def main() -> list[dict[str, Any]]:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(row: dict[str, Any]) -> dict[str, Any]:
            for t in tasks:
                chat = t.render({name: row[name] for name in t.inputs})
                async with slots:
                    text = await model(chat)
                row = {**row, **t.parse(text)}
            return row

        return await asyncio.gather(*(one(r) for r in frame.iter_rows(named=True)))

    return pl.DataFrame(asyncio.run(main()))


def main() -> None:
    frame = pl.DataFrame({"instruction": [f"question {i}: explain item {i}" for i in range(ROWS)]})
    distilfn_run(frame.head(500), 3)  # warm imports
    runs = interleaved(
        ROUNDS,
        {
            "plain": lambda: plain_asyncio(frame),
            "plain1": lambda: plain_asyncio(frame, 1),
            "three": lambda: distilfn_run(frame, 3),
            "one": lambda: distilfn_run(frame, 1),
            "one_sync": lambda: distilfn_run(frame, 1, instant),
        },
    )
    picked = {k: fastest(v) for k, v in runs.items()}
    (t_base, c_base, base), (t3, c3, out3) = picked["plain"], picked["three"]
    (t1, c1, _), (t_base1, c_base1, _), (t1s, _, _) = picked["one"], picked["plain1"], picked["one_sync"]
    assert out3.height == ROWS and out3["c"].null_count() == 0 and base.height == ROWS
    rps3, rps1, rps_base = ROWS / t3, ROWS / t1, ROWS / t_base
    requests = 3 * ROWS
    print(f"{ROWS} rows, instant in-process model, max_concurrency={CONCURRENCY}, best of {ROUNDS} (interleaved)")
    print(f"  distilfn 3 steps   : {rps3:8.0f} rows/s  ({t3:.2f} s wall, {c3:.2f} s CPU)")
    print(f"  distilfn 1 step    : {rps1:8.0f} rows/s  ({t1:.2f} s wall, {c1:.2f} s CPU)")
    print(f"  distilfn 1 step, sync function (micro-batched in a thread): {ROWS / t1s:8.0f} rows/s")
    print(f"  plain asyncio 1x   : {ROWS / t_base1:8.0f} rows/s  ({t_base1:.2f} s wall, {c_base1:.2f} s CPU)  (no framework)")
    print(f"  plain asyncio 3x   : {rps_base:8.0f} rows/s  ({t_base:.2f} s wall, {c_base:.2f} s CPU)  (no framework)")
    print(f"  distilabel 1 step  : {DISTILABEL_ROWS_PER_S:8.0f} rows/s  (reference from MEASURED.md, not measured here)")
    for unit, count in (("per row (3 steps)", ROWS), ("per request", requests)):
        print(f"  {unit:<19}: {t3 / count * 1e6:7.1f} us wall; "
              f"{(t3 - t_base) / count * 1e6:7.1f} us more than plain asyncio")
    print(f"  CPU per request    : {c3 / requests * 1e6:7.1f} us distilfn, {c_base / requests * 1e6:7.1f} us plain asyncio")
    vs_distilabel = rps3 / DISTILABEL_ROWS_PER_S
    vs_plain = t_base1 / t1
    ratio_line("overhead_1step_vs_plain_asyncio", vs_plain, ">=0.5", vs_plain >= 0.5)
    ratio_line("overhead_vs_distilabel", vs_distilabel, ">=1", vs_distilabel >= 1)
    info_line("overhead_3step_vs_plain_asyncio", rps3 / rps_base)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"  (benchmark wall time {time.perf_counter() - t0:.1f} s)")
