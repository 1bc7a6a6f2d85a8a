"""The task catalogue: one module per paper, prompts in ``templates/`` with citations."""

from distilfn.tasks.deita_scorers import complexity_scorer, quality_scorer
from distilfn.tasks.elimination import eliminate_failed_evolutions, elimination_reason, equal_prompts_judge
from distilfn.tasks.evol_complexity import evol_complexity, evol_complexity_generator
from distilfn.tasks.evol_instruct import (
    evol_instruct,
    evol_instruct_generator,
    evol_instruct_step,
    fresh_start,
    wizardlm_mutations,
)
from distilfn.tasks.evol_quality import evol_quality, evol_quality_step
from distilfn.tasks.judgelm import judgelm
from distilfn.tasks.prometheus import prometheus
from distilfn.tasks.self_instruct import self_instruct
from distilfn.tasks.text_generation import text_generation, ultrafeedback_principles
from distilfn.tasks.ultracm import ultracm
from distilfn.tasks.ultrafeedback import ultrafeedback, ultrafeedback_judge
from distilfn.tasks.ultrajudge import ultrajudge

__all__ = [
    "complexity_scorer",
    "judgelm",
    "prometheus",
    "quality_scorer",
    "ultracm",
    "ultrafeedback",
    "ultrafeedback_judge",
    "ultrajudge",
    "eliminate_failed_evolutions",
    "elimination_reason",
    "equal_prompts_judge",
    "evol_complexity",
    "evol_complexity_generator",
    "evol_instruct",
    "evol_instruct_generator",
    "evol_instruct_step",
    "evol_quality",
    "evol_quality_step",
    "fresh_start",
    "self_instruct",
    "text_generation",
    "ultrafeedback_principles",
    "wizardlm_mutations",
]
