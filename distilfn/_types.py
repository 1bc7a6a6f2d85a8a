"""Type aliases shared across distilfn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Row", "Message", "Chat"]

Row = Mapping[str, Any]
"""One frame row as a mapping of column name to value."""

Message = dict[str, str]
"""An OpenAI-style message: ``{"role": "user", "content": "..."}``."""

Chat = list[Message]
"""A conversation: the list of messages sent in one request."""
