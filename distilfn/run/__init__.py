"""The interpreter and what it uses: options, cache, stats, progress, assembly, the dry run."""

from distilfn.run.cache import RequestCache, clear_cache, default_cache_dir, open_cache, request_key
from distilfn.run.options import RunOptions
from distilfn.run.result import RowsFailedWarning, RunResult
from distilfn.run.stats import RunStats, StepStats

__all__ = [
    "RequestCache",
    "RowsFailedWarning",
    "RunOptions",
    "RunResult",
    "RunStats",
    "StepStats",
    "clear_cache",
    "default_cache_dir",
    "open_cache",
    "request_key",
]
