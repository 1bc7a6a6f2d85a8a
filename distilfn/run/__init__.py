"""The interpreter: the only place with effects (model calls, cache, files, clocks)."""

from distilfn.run.cache import CachedAnswer, RequestCache, clear_cache, default_cache_dir, open_cache, request_key
from distilfn.run.driver import arun_plan, arun_plan_to, as_frame, run_plan, run_plan_to
from distilfn.run.stats import RunStats, StepStats

__all__ = [
    "CachedAnswer",
    "RequestCache",
    "RunStats",
    "StepStats",
    "arun_plan",
    "arun_plan_to",
    "as_frame",
    "clear_cache",
    "default_cache_dir",
    "open_cache",
    "request_key",
    "run_plan",
    "run_plan_to",
]
