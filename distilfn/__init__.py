"""distilfn: synthetic datasets and AI-feedback labels from frozen tasks and composable plans."""

from distilfn.ops import ensure, evolve, explode, fanout, filter_rows, group, map_rows, prefer, rename, select
from distilfn.plan import Plan, identity
from distilfn.task import Parsed, Task, preview, task

__all__ = [
    "Parsed",
    "Plan",
    "Task",
    "ensure",
    "evolve",
    "explode",
    "fanout",
    "filter_rows",
    "group",
    "identity",
    "map_rows",
    "prefer",
    "preview",
    "rename",
    "select",
    "task",
]
