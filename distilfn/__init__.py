"""distilfn: synthetic datasets and AI-feedback labels from frozen tasks and composable plans."""

from distilfn.task import Parsed, Task, preview, task

__all__ = ["Parsed", "Task", "preview", "task"]
