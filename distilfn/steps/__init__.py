"""The step kinds: one module each, holding the step, its compiled node and its constructor.

- :mod:`~distilfn.steps.call`: a task's model call;
- :mod:`~distilfn.steps.fan`: ``fanout``, ``explode``, ``group``;
- :mod:`~distilfn.steps.evolve`: ``evolve``;
- :mod:`~distilfn.steps.rows`: ``map_rows``, ``filter_rows``;
- :mod:`~distilfn.steps.reshape`: ``rename``, ``select``;
- :mod:`~distilfn.steps.choose`: ``ensure``, ``prefer``.
"""

from distilfn.steps.choose import ensure, prefer
from distilfn.steps.evolve import evolve
from distilfn.steps.fan import explode, fanout, group
from distilfn.steps.reshape import rename, select
from distilfn.steps.rows import filter_rows, map_rows

__all__ = ["ensure", "evolve", "explode", "fanout", "filter_rows", "group", "map_rows", "prefer", "rename", "select"]
