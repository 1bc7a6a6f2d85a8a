"""The task catalogue: one module per paper, prompts in ``templates/`` with citations.

One vocabulary (see the README's catalogue): a constructor whose name ends in ``_plan``
returns a :class:`~distilfn.plan.Plan` (several steps); every other returns a
:class:`~distilfn.task.Task` (one model call).
"""

from distilfn.tasks.chat_generation import chat_generation
from distilfn.tasks.deita_scorers import complexity_scorer, quality_scorer
from distilfn.tasks.elimination import eliminate_failed_evolutions_plan, elimination_reason, equal_prompts_judge
from distilfn.tasks.evol_complexity import evol_complexity_generator_plan, evol_complexity_plan
from distilfn.tasks.evol_instruct import (
    evol_instruct,
    evol_instruct_generator_plan,
    evol_instruct_plan,
    fresh_start,
    wizardlm_mutations,
)
from distilfn.tasks.evol_quality import evol_quality, evol_quality_plan
from distilfn.tasks.judgelm import judgelm
from distilfn.tasks.prometheus import prometheus
from distilfn.tasks.self_instruct import self_instruct
from distilfn.tasks.text_generation import text_generation, ultrafeedback_principles
from distilfn.tasks.ultracm import ultracm
from distilfn.tasks.ultrafeedback import ultrafeedback, ultrafeedback_plan
from distilfn.tasks.ultrajudge import ultrajudge
from distilfn.tasks.urial import urial

TASKS = (
    "chat_generation",
    "complexity_scorer",
    "equal_prompts_judge",
    "evol_instruct",
    "evol_quality",
    "fresh_start",
    "judgelm",
    "prometheus",
    "quality_scorer",
    "self_instruct",
    "text_generation",
    "ultracm",
    "ultrafeedback",
    "ultrajudge",
    "urial",
)
"""The constructors that return a Task."""

PLANS = (
    "eliminate_failed_evolutions_plan",
    "evol_complexity_generator_plan",
    "evol_complexity_plan",
    "evol_instruct_generator_plan",
    "evol_instruct_plan",
    "evol_quality_plan",
    "ultrafeedback_plan",
)
"""The constructors that return a Plan."""

__all__ = [*TASKS, *PLANS, "TASKS", "PLANS", "elimination_reason", "ultrafeedback_principles", "wizardlm_mutations"]
