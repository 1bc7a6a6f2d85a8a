"""(g) A small server: 4 slots at 1 s an answer, 200 requests (issue 11's "(f)").

``FakeServerProcess(slots=4, latency=1.0)`` serves like a 4-slot llama.cpp server: four
answers at a time, the other requests queued (their second starts when a slot frees),
``/props`` saying ``total_slots: 4``. A 1-step plan over 200 rows with
``openai_compatible`` at its defaults (no ``max_concurrency``) and the run's default
``max_concurrency=64``. Targets: 0 timeouts (the backend's count and the server's count
of requests whose client left), and at least 0.9 of the ideal 4 answers per second.

Also run, for information: the same server hiding its slots (no ``/props``) with a
``timeout`` of 8 s, so that the adaptive limit has to find the level on its own (queued
requests time out until it has come down).
"""

from __future__ import annotations

import time

import polars as pl

from _common import info_line, ratio_line, text_task

ROWS = 200
SLOTS = 4
LATENCY = 1.0
TARGET = 0.9


def run(url: str, frame: pl.DataFrame, **options) -> tuple[float, int, list]:
    from distilfn.models import openai_compatible
    from distilfn.plan import Plan
    from distilfn.run import RunStats

    plan = Plan(steps=(text_task("answer", "instruction", "answer"),))
    stats = RunStats()
    t0 = time.perf_counter()
    out = plan.run(frame, model=openai_compatible(url, model="fake", api_key="", **options), cache=False,
                   stats=stats, progress=False, summary=False, warn_failures=False, max_error_rate=None)
    return time.perf_counter() - t0, out.height - out["answer"].null_count(), stats.endpoints


def main() -> None:
    from distilfn.run.stats import endpoint_line
    from distilfn.testing.fakeserver import FakeServerProcess

    frame = pl.DataFrame({"instruction": [f"question {i}" for i in range(ROWS)]})
    ideal = SLOTS / LATENCY
    with FakeServerProcess(slots=SLOTS, latency=LATENCY) as srv:
        wall, answered, [endpoint] = run(srv.url, frame)
        server = srv.stats()
    rate = answered / wall
    print(f"{ROWS} requests, {SLOTS} slots at {LATENCY:g} s an answer (ideal {ideal:g} answers/s), defaults:")
    print(f"  {answered} answered in {wall:.1f} s = {rate:.2f} answers/s; server: max in flight "
          f"{server['max_in_flight']}, abandoned {server['abandoned']}, cancelled {server['cancelled']}")
    print("  " + endpoint_line(endpoint))
    timeouts = endpoint.timeouts + server["abandoned"]
    ratio_line("small_server_timeouts", timeouts, "=0", timeouts == 0)
    ratio_line("small_server_answers_per_s_over_4", rate / ideal, f">={TARGET}", rate / ideal >= TARGET and answered == ROWS)

    # the same server hiding its slots: the adaptive limit alone, with a short whole-answer deadline
    with FakeServerProcess(slots=SLOTS, latency=LATENCY, props=False) as srv:
        wall, answered, [endpoint] = run(srv.url, frame, timeout=8.0)
        server = srv.stats()
    print(f"  slots hidden, timeout=8s: {answered} answered in {wall:.1f} s = {answered / wall:.2f} answers/s; "
          f"server: abandoned {server['abandoned']}, cancelled {server['cancelled']}")
    print("  " + endpoint_line(endpoint))
    info_line("small_server_hidden_slots_answers_per_s_over_4", answered / wall / ideal)

if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"  (benchmark wall time {time.perf_counter() - t0:.1f} s)")
