"""Binding models to roles: one model for all, a ``{role: model}`` map, or the default."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from distilfn.errors import PlanError
from distilfn.models._base import is_model
from distilfn.models.function import FunctionModel

__all__ = ["as_model", "bind_models"]


def as_model(value: Any, *, role: str | None = None) -> Any:
    """A model speaking the rich protocol: ``value`` itself, or a plain function wrapped.

    >>> as_model(lambda chats: ["x"] * len(chats)).name
    '<lambda>'
    """
    if is_model(value):
        return value
    if callable(value):
        return FunctionModel(value)
    where = f" for role {role!r}" if role else ""
    msg = f"model{where} must be a callable `chats -> texts` or a model object, got {type(value).__name__}"
    raise TypeError(msg)


def bind_models(model: Any, roles: Iterable[str]) -> dict[str, Any]:
    """Map every role in ``roles`` to a model; raise PlanError for a role left unbound.

    ``model`` may be None (the default model: ``DISTILFN_MODEL``/``OPENAI_BASE_URL`` or
    the embedded local one), one model for every role, or a ``{role: model}`` mapping.
    """
    roles = sorted(set(roles))
    if model is None:
        if not roles:
            return {}
        from distilfn.models.default import default_model

        shared = default_model()
        return {role: shared for role in roles}
    if isinstance(model, Mapping):
        missing = [r for r in roles if r not in model]
        if missing:
            msg = (
                f"no model is bound to the role {missing[0]!r} used by this plan; "
                f"bound roles: {', '.join(sorted(model)) or 'none'}; roles used: {', '.join(roles)}"
            )
            raise PlanError(msg)
        converted: dict[int, Any] = {}
        out = {}
        for role in roles:  # the same object bound to two roles stays one model
            value = model[role]
            out[role] = converted.setdefault(id(value), as_model(value, role=role))
        return out
    shared = as_model(model)
    return {role: shared for role in roles}
