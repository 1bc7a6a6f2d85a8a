"""Per-step metadata: one fixed struct dtype per kind of step, whatever happens in a run.

Every model step writes a column ``meta.<label>`` of :data:`MODEL_META`; map and filter
steps write :data:`ROW_META`. Inside a grouped fanout or an evolve the column becomes a
list of those structs. The dtype never depends on the data, so two outputs of one plan
always concatenate.

At run time a record is a plain tuple in the struct's field order (cheap to make, and
assembled column by column).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from distilfn.chat import stored_chat

__all__ = ["META_PREFIX", "MESSAGE", "MODEL_META", "ROW_META", "model_record", "row_record"]

META_PREFIX = "meta."
"""Per-step metadata lives in struct columns named ``meta.<step label>``."""

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
"""One chat message as stored in ``raw_input``."""

MODEL_META = pl.Struct(
    {
        "raw_input": pl.List(MESSAGE),
        "raw_output": pl.String,
        "model_name": pl.String,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "error": pl.String,
        "cached": pl.Boolean,
        "note": pl.String,
    }
)
"""The metadata of one model answer: the chat sent, the text received, what the model
reported, the error that kept the row from its outputs (None when it has them),
whether the answer came from the cache, and what the parser noted without failing the
row (e.g. "read the first 5 of 7 instructions")."""

ROW_META = pl.Struct({"error": pl.String})
"""The metadata of a map or filter step: the error its function raised, if any."""

def model_record(
    chat: Any,
    text: str | None,
    model_name: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    error: str | None,
    cached: bool,
    note: str | None = None,
) -> tuple[Any, ...]:
    """A :data:`MODEL_META` value.

    >>> model_record(None, None, None, None, None, "skipped", False)[5]
    'skipped'
    """
    return (stored_chat(chat), text, model_name, input_tokens, output_tokens, error, cached, note)


def row_record(error: str | None) -> tuple[Any, ...]:
    """A :data:`ROW_META` value."""
    return (error,)
