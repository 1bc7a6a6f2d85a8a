"""One sampled answer as the interpreter and the cache see it."""

from __future__ import annotations

import msgspec

from distilfn.dtypes import lone_surrogate

__all__ = ["Answer", "safe_text"]


class Answer(msgspec.Struct, frozen=True):
    """One sample's outcome: its text or the error that took its place, and what the model reported.

    >>> Answer("hi", model_name="m").error is None
    True
    """

    text: str | None
    error: str | None = None
    model_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached: bool = False


def safe_text(text: str) -> tuple[str, str | None]:
    """``text`` made storable (lone surrogates replaced by U+FFFD), and why if it had to be.

    >>> safe_text("ok")
    ('ok', None)
    >>> safe_text("a\\ud800b")[0]
    'a\\ufffdb'
    """
    at = lone_surrogate(text)
    if at is None:
        return text, None
    fixed = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return fixed, f"the text holds a lone surrogate at position {at}, which UTF-8 cannot store (replaced by U+FFFD)"
