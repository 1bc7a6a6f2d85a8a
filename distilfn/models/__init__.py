"""Model backends: plain functions, OpenAI-compatible servers, the embedded local model."""

from distilfn.models._base import Generation, Model, is_model
from distilfn.models.function import FunctionModel

__all__ = ["Generation", "Model", "is_model", "FunctionModel"]
