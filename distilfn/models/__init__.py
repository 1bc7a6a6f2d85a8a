"""Model backends: plain functions, OpenAI-compatible servers, offline batch APIs, the
embedded local model.

``openai_compatible`` and ``openai_batch`` are imported on first use, so that importing distilfn does not
load aiohttp; ``local`` is cheap to import (the engine is looked for on first use).
"""

from typing import Any

from distilfn.models._base import Generation, Model, is_model
from distilfn.models.binding import as_model, bind_models
from distilfn.models.function import FunctionModel
from distilfn.models.local import LocalModel, LocalModelError, local  # a function named like its module: bind it eagerly

__all__ = [
    "FunctionModel",
    "Generation",
    "LocalModel",
    "LocalModelError",
    "Model",
    "OpenAIBatch",
    "OpenAICompatible",
    "as_model",
    "bind_models",
    "default_model",
    "is_model",
    "local",
    "openai_batch",
    "openai_compatible",
]

_LAZY = {
    "OpenAICompatible": "distilfn.models.openai",
    "openai_compatible": "distilfn.models.openai",
    "OpenAIBatch": "distilfn.models.batch_api",
    "openai_batch": "distilfn.models.batch_api",
    "default_model": "distilfn.models.default",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'distilfn.models' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    return getattr(importlib.import_module(module), name)
