"""The interpreter: the only place with effects (model calls, cache, files, clocks)."""

from distilfn.run.driver import arun_plan, arun_plan_to, as_frame, run_plan, run_plan_to
from distilfn.run.stats import RunStats, StepStats

__all__ = ["run_plan", "arun_plan", "run_plan_to", "arun_plan_to", "as_frame", "RunStats", "StepStats"]
