"""The interpreter: the only place with effects (model calls, cache, files, clocks)."""

from distilfn.run.driver import arun_plan, as_frame, run_plan
from distilfn.run.stats import RunStats, StepStats

__all__ = ["run_plan", "arun_plan", "as_frame", "RunStats", "StepStats"]
