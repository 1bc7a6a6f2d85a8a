"""The task catalogue: one module per paper, prompts in ``templates/`` with citations.

One vocabulary (see the README's catalogue): the constructors in :data:`PLANS` return a
:class:`~distilfn.plan.Plan` (several steps) and carry the paper's method name
(``evol_instruct(n=3) >> ultrafeedback()``); those in :data:`TASKS` return a
:class:`~distilfn.task.Task` (one model call), and the one-call task a plan of the same
paper is built from ends in ``_task`` (``evol_instruct_task()``, ``ultrafeedback_task()``).
"""

from distilfn.tasks.chat_generation import chat_generation
from distilfn.tasks.deita_scorers import complexity_scorer, quality_scorer
from distilfn.tasks.elimination import eliminate_failed_evolutions, elimination_reason, equal_prompts_judge
from distilfn.tasks.evol_complexity import evol_complexity, evol_complexity_generator
from distilfn.tasks.evol_instruct import (
    evol_instruct,
    evol_instruct_generator,
    evol_instruct_task,
    fresh_start,
    wizardlm_mutations,
)
from distilfn.tasks.evol_quality import evol_quality, evol_quality_task
from distilfn.tasks.judgelm import judgelm
from distilfn.tasks.prometheus import prometheus
from distilfn.tasks.self_instruct import self_instruct
from distilfn.tasks.text_generation import text_generation, ultrafeedback_principles
from distilfn.tasks.ultracm import ultracm
from distilfn.tasks.ultrafeedback import ultrafeedback, ultrafeedback_task
from distilfn.tasks.ultrajudge import ultrajudge
from distilfn.tasks.urial import urial

TASKS = (
    "chat_generation",
    "complexity_scorer",
    "equal_prompts_judge",
    "evol_instruct_task",
    "evol_quality_task",
    "fresh_start",
    "judgelm",
    "prometheus",
    "quality_scorer",
    "self_instruct",
    "text_generation",
    "ultracm",
    "ultrafeedback_task",
    "ultrajudge",
    "urial",
)
"""The constructors that return a Task."""

PLANS = (
    "eliminate_failed_evolutions",
    "evol_complexity_generator",
    "evol_complexity",
    "evol_instruct_generator",
    "evol_instruct",
    "evol_quality",
    "ultrafeedback",
)
"""The constructors that return a Plan."""

__all__ = [*TASKS, *PLANS, "TASKS", "PLANS", "elimination_reason", "ultrafeedback_principles", "wizardlm_mutations"]
