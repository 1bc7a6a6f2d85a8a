"""(h) Ray Data against the local interpreter, on the 50 ms latency workload.

The server (``FakeServerProcess``) answers every chat completion after 50 ms. A 1-step
plan runs over N rows with 32 requests in flight in total: locally (``plan.run``), and
through ``distilfn.ray.run`` on a local Ray cluster of this machine (2 actors x 16
requests; the cluster is started once, as a user's driver connects once). Each is timed
at a small and a large N, so that a run's time is split into a fixed start-up cost and a
cost per row (a straight line through the two sizes):

- ``ray_vs_local_rows_per_s``: rows/s through Ray / rows/s locally, at the large N;
- ``ray_startup_in_local_rows``: Ray's fixed start-up cost (actors, imports, the plan's
  first compile in each) as the rows the local run answers in that time;
- ``ray_per_row_vs_local``: Ray's seconds per row / the local run's.

``ray.init`` itself is printed, not counted: a cluster is started (or joined) once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from pathlib import Path

import polars as pl

from _common import info_line, interleaved, text_task

LATENCY = 0.05
CONCURRENCY = 32
ACTORS = 2
SMALL, LARGE = 64, 2000
ROUNDS = 2


def main() -> int:
    if importlib.util.find_spec("ray") is None:
        print("skipped: ray is not installed (pip install 'distilfn[ray]')")
        print("RATIO ray_vs_local_rows_per_s=nan target=none skipped")
        return 0
    import ray
    import ray.data

    import distilfn.ray
    from distilfn.models.openai import openai_compatible
    from distilfn.plan import Plan
    from distilfn.testing.fakeserver import FakeServerProcess

    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s (once per driver; not counted below)")
    plan = Plan(steps=(text_task("answer", "instruction", "answer", max_tokens=64),))
    frames = {n: pl.DataFrame({"instruction": [f"question {i}" for i in range(n)]}) for n in (SMALL, LARGE)}
    try:
        with FakeServerProcess(latency=LATENCY) as srv:
            model = openai_compatible(srv.url, model="fake", api_key="")

            def local(n: int) -> int:
                out = plan.run(frames[n], model, max_concurrency=CONCURRENCY, cache=False, progress=False, summary=False)
                return out.height

            def through_ray(n: int) -> int:
                ds = ray.data.from_arrow(frames[n].to_arrow())
                out = distilfn.ray.run(plan, ds, model, actors=ACTORS, max_concurrency=CONCURRENCY // ACTORS,
                                       batch_rows=max(16, n // (4 * ACTORS)), cache=False)
                return sum(ray.get(ref).num_rows for ref in out.to_arrow_refs())

            runs = interleaved(ROUNDS, {
                f"{kind}-{n}": (lambda fn=fn, n=n: fn(n))
                for n in (SMALL, LARGE) for kind, fn in (("local", local), ("ray", through_ray))
            })
    finally:
        ray.shutdown()
    best = {name: min(r[0] for r in rounds) for name, rounds in runs.items()}
    for name, rounds in runs.items():
        assert all(r[2] == int(name.split("-")[1]) for r in rounds), (name, [r[2] for r in rounds])
        print(f"{name:>11}: best {best[name]:.2f} s of {[round(r[0], 2) for r in rounds]}")
    fit = {}
    for kind in ("local", "ray"):
        small, large = best[f"{kind}-{SMALL}"], best[f"{kind}-{LARGE}"]
        per_row = (large - small) / (LARGE - SMALL)
        fit[kind] = (small - per_row * SMALL, per_row)
        print(f"{kind:>11}: start-up {fit[kind][0]:.2f} s + {per_row * 1000:.2f} ms/row; {LARGE / large:.0f} rows/s at {LARGE} rows "
              f"(ideal {CONCURRENCY / LATENCY:.0f})")
    local_rate = LARGE / best[f"local-{LARGE}"]
    info_line("ray_vs_local_rows_per_s", (LARGE / best[f"ray-{LARGE}"]) / local_rate)
    info_line("ray_startup_in_local_rows", fit["ray"][0] * local_rate)
    info_line("ray_per_row_vs_local", fit["ray"][1] / fit["local"][1])
    info_line("ray_rows_per_s_vs_ideal", (LARGE / best[f"ray-{LARGE}"]) / (CONCURRENCY / LATENCY))
    return 0


if __name__ == "__main__":
    sys.exit(main())
