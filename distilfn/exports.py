"""Training-ready exports from rated generations: DPO preference pairs and SFT rows.

The input is an UltraFeedback-style frame: one row per prompt with a list of
``generations`` and a list of ``ratings`` (ints or None when the judge gave none).
The prompt of each pair is the column the generations answered: read from the chats the
frame records in ``meta.*`` (``evolved_instruction`` after ``evol_instruct >>
ultrafeedback``), else the first of ``evolved_instruction``, ``instruction`` present (a
warning says so when both are there); ``prompt=`` chooses it yourself.
The outputs use the column layouts TRL reads:

* :func:`preference_pairs`: ``prompt``, ``chosen``, ``rejected`` (strings), or with
  ``chat_format=True`` the conversational layout (``prompt`` a list with the user
  message, ``chosen``/``rejected`` lists with the assistant message) - what
  ``trl.DPOTrainer`` reads - plus ``chosen_rating``, ``rejected_rating``, ``margin``.
* :func:`sft_rows`: ``messages`` (user + assistant), what ``trl.SFTTrainer`` reads, or
  ``prompt``/``completion`` with ``chat_format=False``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from distilfn.output import write_frame
from distilfn.seeding import rng_for

__all__ = ["preference_pairs", "sft_rows", "to_hf_dataset", "write_pairs", "answered_prompt", "PromptChoiceWarning"]

PROMPT_COLUMNS = ("evolved_instruction", "instruction")
"""The prompt columns distilfn's catalogue makes, the one answered first."""


class PromptChoiceWarning(UserWarning):
    """An export had to guess which column the generations answered; pass ``prompt=`` to say."""

Strategy = Literal["best_vs_worst", "best_vs_random", "all_pairs"]
Ties = Literal["drop", "keep"]

_MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})


def _require(df: pl.DataFrame, *columns: str | None) -> None:
    for column in columns:
        if column is not None and column not in df.columns:
            msg = f"the frame has no column {column!r}; columns are {df.columns}"
            raise pl.exceptions.ColumnNotFoundError(msg)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _candidates(generations: Any, ratings: Any) -> list[tuple[int, str, int | float]]:
    """(index, text, rating) for every generation that has text and a rating."""
    gens, rates = _as_list(generations), _as_list(ratings)
    return [
        (i, g, r)
        for i, (g, r) in enumerate(zip(gens, rates, strict=False))
        if isinstance(g, str) and r is not None and not (isinstance(r, float) and np.isnan(r))
    ]


def _accept(margin: float, *, min_margin: float, ties: Ties) -> bool:
    if margin == 0:
        return ties == "keep"
    return margin >= min_margin


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))] if len(items) > 1 else items[0]


def _pairs_for(cands, strategy: Strategy, rng: np.random.Generator, *, min_margin: float, ties: Ties):
    if len(cands) < 2:
        return []
    if strategy == "all_pairs":
        out = []
        for a in range(len(cands)):
            for b in range(a + 1, len(cands)):
                hi, lo = (cands[a], cands[b]) if cands[a][2] >= cands[b][2] else (cands[b], cands[a])
                if _accept(hi[2] - lo[2], min_margin=min_margin, ties=ties):
                    out.append((hi, lo))
        return out
    best_rating = max(c[2] for c in cands)
    chosen = _pick(rng, [c for c in cands if c[2] == best_rating])
    others = [c for c in cands if c[0] != chosen[0] and _accept(chosen[2] - c[2], min_margin=min_margin, ties=ties)]
    if not others:
        return []
    if strategy == "best_vs_worst":
        worst = min(c[2] for c in others)
        others = [c for c in others if c[2] == worst]
    return [(chosen, _pick(rng, others))]


def _chat_text(record: Any) -> str:
    messages = record.get("raw_input") if isinstance(record, dict) else None
    return "\n".join(m.get("content") or "" for m in messages or () if isinstance(m, dict))


def _recorded_prompt(df: pl.DataFrame, generations: str, candidates: list[str]) -> str | None:
    """The candidate column whose text is in the chats that produced ``generations``,
    read from the model metadata the frame records (a list of answers per row)."""
    for meta in (c for c in df.columns if c.startswith("meta.")):
        dtype = df.schema[meta]
        if not (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)
                and {"raw_input", "raw_output"} <= {f.name for f in dtype.inner.fields}):
            continue
        for row in df.select(generations, meta, *candidates).iter_rows(named=True):
            gens = [g for g in _as_list(row[generations]) if isinstance(g, str) and g]
            records = [r for r in row[meta] or () if isinstance(r, dict)]
            if not gens or not records:
                continue
            answering = [r for r in records if any(g in (r.get("raw_output") or "") for g in gens)]
            if not answering:
                break  # this step did not write the generations
            chat = _chat_text(answering[0])
            for column in candidates:
                value = row[column]
                if isinstance(value, str) and value and value in chat:
                    return column
            break
    return None


def answered_prompt(df: pl.DataFrame, generations: str = "generations") -> str:
    """The column the ``generations`` were written for (see the module docstring).

    >>> answered_prompt(pl.DataFrame({"instruction": ["Hi"], "generations": [["a"]]}))
    'instruction'
    """
    candidates = [c for c in PROMPT_COLUMNS if c in df.columns]
    if generations in df.columns and candidates:
        found = _recorded_prompt(df, generations, candidates)
        if found is not None:
            return found
    if not candidates:
        msg = f"the frame has none of the prompt columns {list(PROMPT_COLUMNS)}; pass prompt=... (columns are {df.columns})"
        raise pl.exceptions.ColumnNotFoundError(msg)
    if len(candidates) > 1:
        warnings.warn(
            f"the frame records no chat that says which column {generations!r} answered; using {candidates[0]!r} "
            f"(pass prompt={candidates[1]!r} for the other)",
            PromptChoiceWarning,
            stacklevel=3,
        )
    return candidates[0]


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return repr(value)


def preference_pairs(
    df: pl.DataFrame,
    *,
    prompt: str | None = None,
    generations: str = "generations",
    ratings: str = "ratings",
    models: str | None = None,
    strategy: Strategy = "best_vs_worst",
    min_margin: float = 1,
    ties: Ties = "drop",
    chat_format: bool = False,
    keep: Sequence[str] = (),
    seed: int = 0,
) -> pl.DataFrame:
    """Chosen/rejected pairs from rated generations, in TRL's DPO column layout.

    ``strategy``: ``"best_vs_worst"`` pairs the best-rated generation with the worst;
    ``"best_vs_random"`` with a random lower-rated one; ``"all_pairs"`` makes every
    pair of differently rated generations. A pair is kept when the chosen rating
    exceeds the rejected one by at least ``min_margin``; equal ratings are kept only
    with ``ties="keep"``. Generations whose rating is None are never paired. Equally
    rated candidates are picked at random from ``seed`` and the prompt text, so the
    same frame and seed give the same pairs. ``models`` names a list column of model
    names (adds ``chosen_model``/``rejected_model``); ``keep`` copies other columns.
    ``prompt`` (default: :func:`answered_prompt`) is the column the generations answered.

    >>> df = pl.DataFrame({"instruction": ["Hi"], "generations": [["a", "b", "c"]],
    ...                    "ratings": [[5, None, 2]]})
    >>> preference_pairs(df).select("prompt", "chosen", "rejected", "margin").row(0)
    ('Hi', 'a', 'c', 3)
    """
    if strategy not in ("best_vs_worst", "best_vs_random", "all_pairs"):
        msg = f"strategy must be 'best_vs_worst', 'best_vs_random' or 'all_pairs', got {strategy!r}"
        raise ValueError(msg)
    if ties not in ("drop", "keep"):
        msg = f"ties must be 'drop' or 'keep', got {ties!r}"
        raise ValueError(msg)
    if min_margin < 0:
        msg = f"min_margin must be at least 0, got {min_margin!r}"
        raise ValueError(msg)
    _require(df, generations, ratings, models, *keep)
    prompt = prompt or answered_prompt(df, generations)
    _require(df, prompt)
    records: dict[str, list[Any]] = {
        k: [] for k in ("prompt", "chosen", "rejected", "chosen_rating", "rejected_rating", "margin")
    }
    if models is not None:
        records |= {"chosen_model": [], "rejected_model": []}
    kept: dict[str, list[Any]] = {c: [] for c in keep}
    for row in df.iter_rows(named=True):
        text = _text_of(row[prompt])
        cands = _candidates(row[generations], row[ratings])
        rng = rng_for(seed, text)
        names = _as_list(row[models]) if models is not None else []
        for hi, lo in _pairs_for(cands, strategy, rng, min_margin=min_margin, ties=ties):
            records["prompt"].append(text)
            records["chosen"].append(hi[1])
            records["rejected"].append(lo[1])
            records["chosen_rating"].append(hi[2])
            records["rejected_rating"].append(lo[2])
            records["margin"].append(hi[2] - lo[2])
            if models is not None:
                records["chosen_model"].append(names[hi[0]] if hi[0] < len(names) else None)
                records["rejected_model"].append(names[lo[0]] if lo[0] < len(names) else None)
            for c in keep:
                kept[c].append(row[c])
    rating_type = df.schema[ratings].inner if isinstance(df.schema[ratings], pl.List) else pl.Int64  # type: ignore[union-attr]
    if rating_type == pl.Null:
        rating_type = pl.Int64
    schema: dict[str, Any] = {
        "prompt": pl.String,
        "chosen": pl.String,
        "rejected": pl.String,
        "chosen_rating": rating_type,
        "rejected_rating": rating_type,
        "margin": rating_type,
    }
    if models is not None:
        schema |= {"chosen_model": pl.String, "rejected_model": pl.String}
    out = pl.DataFrame(records, schema=schema)
    if chat_format:
        out = out.with_columns(
            pl.concat_list(pl.struct(role=pl.lit("user"), content=pl.col("prompt"))).alias("prompt"),
            pl.concat_list(pl.struct(role=pl.lit("assistant"), content=pl.col("chosen"))).alias("chosen"),
            pl.concat_list(pl.struct(role=pl.lit("assistant"), content=pl.col("rejected"))).alias("rejected"),
        )
    if keep:
        out = out.with_columns(pl.Series(c, kept[c], dtype=df.schema[c]) for c in keep)
    return out


def sft_rows(
    df: pl.DataFrame,
    *,
    prompt: str | None = None,
    generations: str = "generations",
    ratings: str | None = "ratings",
    min_rating: float | None = None,
    best_only: bool = True,
    chat_format: bool = True,
    keep: Sequence[str] = (),
    seed: int = 0,
) -> pl.DataFrame:
    """Supervised fine-tuning rows: each prompt with its best (or every good) generation.

    With ``best_only`` one row per prompt holds the highest-rated generation (ties broken
    at random from ``seed`` and the prompt); otherwise every generation rated at least
    ``min_rating`` (every generation with text when ``min_rating`` and ``ratings`` are
    None). Prompts with no eligible generation are left out. ``chat_format=True`` gives a
    ``messages`` column ``[user, assistant]`` as ``trl.SFTTrainer`` reads it; False gives
    ``prompt`` and ``completion`` columns. ``prompt`` (default: :func:`answered_prompt`)
    is the column the generations answered.

    >>> df = pl.DataFrame({"instruction": ["Hi"], "generations": [["a", "b"]], "ratings": [[2, 4]]})
    >>> sft_rows(df)["messages"].to_list()
    [[{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'b'}]]
    """
    if ratings is None and (best_only or min_rating is not None):
        msg = "sft_rows needs a ratings column for best_only=True or a min_rating; pass ratings=... or best_only=False"
        raise ValueError(msg)
    _require(df, generations, ratings, *keep)
    prompt = prompt or answered_prompt(df, generations)
    _require(df, prompt)
    prompts: list[str] = []
    completions: list[str] = []
    kept: dict[str, list[Any]] = {c: [] for c in keep}
    for row in df.iter_rows(named=True):
        text = _text_of(row[prompt])
        gens = _as_list(row[generations])
        if ratings is None:
            picked = [g for g in gens if isinstance(g, str)]
        else:
            cands = _candidates(gens, row[ratings])
            if min_rating is not None:
                cands = [c for c in cands if c[2] >= min_rating]
            if best_only and cands:
                top = max(c[2] for c in cands)
                cands = [_pick(rng_for(seed, text), [c for c in cands if c[2] == top])]
            picked = [c[1] for c in cands]
        for completion in picked:
            prompts.append(text)
            completions.append(completion)
            for c in keep:
                kept[c].append(row[c])
    out = pl.DataFrame({"prompt": prompts, "completion": completions}, schema={"prompt": pl.String, "completion": pl.String})
    if chat_format:
        out = out.select(
            pl.concat_list(
                pl.struct(role=pl.lit("user"), content=pl.col("prompt")),
                pl.struct(role=pl.lit("assistant"), content=pl.col("completion")),
            ).alias("messages")
        )
    if keep:
        out = out.with_columns(pl.Series(c, kept[c], dtype=df.schema[c]) for c in keep)
    return out


def to_hf_dataset(df: pl.DataFrame) -> Any:
    """A Hugging Face ``datasets.Dataset`` holding ``df`` (needs the ``hf`` extra)."""
    try:
        import datasets
    except ImportError as exc:
        msg = "to_hf_dataset needs the Hugging Face 'datasets' package: pip install 'distilfn[hf]'"
        raise ImportError(msg) from exc
    from_polars = getattr(datasets.Dataset, "from_polars", None)
    if from_polars is not None:
        return from_polars(df)
    return datasets.Dataset.from_dict(df.to_dict(as_series=False))  # datasets without from_polars


def write_pairs(df: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write exported rows to ``.parquet`` or ``.jsonl`` (atomically); returns the path."""
    return write_frame(df, path)
