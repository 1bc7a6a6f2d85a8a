"""distilfn: synthetic datasets and AI-feedback labels from frozen tasks and composable plans."""

from distilfn.output import read_output
from distilfn.plan import Plan, identity
from distilfn.run.options import RunOptions
from distilfn.steps import ensure, evolve, explode, fanout, filter_rows, group, map_rows, prefer, rename, select
from distilfn.task import Parsed, Task, task

__all__ = [
    "Parsed",
    "Plan",
    "RunOptions",
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
    "read_output",
    "rename",
    "select",
    "task",
]
