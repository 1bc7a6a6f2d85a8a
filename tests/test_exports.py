"""DPO pairs and SFT rows from an UltraFeedback-style frame, in TRL's layouts."""

from __future__ import annotations

import sys
import types

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn.exports import preference_pairs, sft_rows, to_hf_dataset, write_pairs
from distilfn.inputs import read_input

UF = pl.DataFrame(
    {
        "instruction": ["Explain photosynthesis.", "Write a haiku about rain.", "Name a prime.", "Say hi."],
        "generations": [
            ["Plants make sugar from light.", "Photosynthesis is a thing.", "I don't know."],
            ["Rain taps the roof", "rain rain rain"],
            ["7", "9", "2"],
            ["hi", "hello"],
        ],
        "ratings": [[5, 3, 1], [4, 4], [5, None, 5], [None, None]],
        "model_names": [["a", "b", "c"], ["a", "b"], ["a", "b", "c"], ["a", "b"]],
    }
)


@st.composite
def uf_frames(draw):
    n = draw(st.integers(0, 6))
    gens, rates = [], []
    for _ in range(n):
        k = draw(st.integers(0, 5))
        gens.append([f"gen {j}" for j in range(k)])
        rates.append(draw(st.lists(st.none() | st.integers(1, 5), min_size=k, max_size=k)))
    return pl.DataFrame(
        {"instruction": [f"prompt {i}" for i in range(n)], "generations": gens, "ratings": rates},
        schema={"instruction": pl.String, "generations": pl.List(pl.String), "ratings": pl.List(pl.Int64)},
    )


@settings(max_examples=200, deadline=None)
@given(df=uf_frames(), strategy=st.sampled_from(["best_vs_worst", "best_vs_random", "all_pairs"]),
       ties=st.sampled_from(["drop", "keep"]), min_margin=st.integers(0, 3), seed=st.integers(0, 9))
def test_every_pair_follows_the_margin_and_tie_rules(df, strategy, ties, min_margin, seed):
    pairs = preference_pairs(df, strategy=strategy, ties=ties, min_margin=min_margin, seed=seed)
    rated = {
        row["instruction"]: {(g, r) for g, r in zip(row["generations"], row["ratings"], strict=True) if r is not None}
        for row in df.iter_rows(named=True)
    }
    for p in pairs.iter_rows(named=True):
        assert (p["chosen"], p["chosen_rating"]) in rated[p["prompt"]]  # never a None rating
        assert (p["rejected"], p["rejected_rating"]) in rated[p["prompt"]]
        assert p["chosen"] != p["rejected"]
        assert p["margin"] == p["chosen_rating"] - p["rejected_rating"]
        if p["margin"] == 0:
            assert ties == "keep"
        else:
            assert p["margin"] >= max(min_margin, 1)
    for prompt, cands in rated.items():
        ok = [(a, b) for a in cands for b in cands if a[0] < b[0]
              and ((a[1] - b[1] == 0 and ties == "keep") or (a[1] != b[1] and abs(a[1] - b[1]) >= min_margin))]
        got = pairs.filter(pl.col("prompt") == prompt)
        if strategy == "all_pairs":
            assert got.height == len(ok)
        else:
            assert got.height == (1 if ok and any(a[1] == max(r for _, r in cands) or b[1] == max(r for _, r in cands)
                                                  for a, b in ok) else 0)
            if got.height:
                assert got["chosen_rating"][0] == max(r for _, r in cands)
        if strategy == "best_vs_worst" and got.height:
            best = max(r for _, r in cands)
            allowed = [r for _, r in cands if (best - r >= max(min_margin, 1)) or (best == r and ties == "keep")]
            assert got["rejected_rating"][0] == min(allowed)
    assert pairs.equals(preference_pairs(df, strategy=strategy, ties=ties, min_margin=min_margin, seed=seed))


def test_best_vs_worst_on_an_ultrafeedback_frame():
    pairs = preference_pairs(UF, models="model_names")
    assert pairs.columns == ["prompt", "chosen", "rejected", "chosen_rating", "rejected_rating", "margin",
                             "chosen_model", "rejected_model"]
    assert pairs.rows() == [
        ("Explain photosynthesis.", "Plants make sugar from light.", "I don't know.", 5, 1, 4, "a", "c"),
    ]  # 4/4 is a dropped tie, 5/None/5 has only a tie, None/None has no rating
    kept = preference_pairs(UF, ties="keep")
    assert kept["prompt"].to_list() == ["Explain photosynthesis.", "Write a haiku about rain.", "Name a prime."]
    assert preference_pairs(UF, min_margin=5).height == 0
    assert preference_pairs(UF, strategy="all_pairs", min_margin=2)[["chosen", "rejected", "margin"]].rows() == [
        ("Plants make sugar from light.", "Photosynthesis is a thing.", 2),
        ("Plants make sugar from light.", "I don't know.", 4),
        ("Photosynthesis is a thing.", "I don't know.", 2),
    ]
    assert preference_pairs(UF, strategy="all_pairs", min_margin=3)["margin"].to_list() == [4]


def test_random_choices_are_seeded():
    df = pl.DataFrame({"instruction": [f"p{i}" for i in range(30)],
                       "generations": [["a", "b", "c", "d"]] * 30, "ratings": [[5, 1, 2, 3]] * 30})
    one = preference_pairs(df, strategy="best_vs_random", seed=1)
    assert one.equals(preference_pairs(df, strategy="best_vs_random", seed=1))
    assert set(one["rejected"]) == {"b", "c", "d"}
    assert not one.equals(preference_pairs(df, strategy="best_vs_random", seed=2))


def test_conversational_pairs_layout():
    pairs = preference_pairs(UF, chat_format=True, keep=["model_names"])
    row = pairs.row(0, named=True)
    assert row["prompt"] == [{"role": "user", "content": "Explain photosynthesis."}]
    assert row["chosen"] == [{"role": "assistant", "content": "Plants make sugar from light."}]
    assert row["rejected"] == [{"role": "assistant", "content": "I don't know."}]
    assert row["model_names"] == ["a", "b", "c"]


def test_empty_frame_gives_typed_empty_pairs():
    pairs = preference_pairs(UF.head(0))
    assert pairs.height == 0
    assert pairs.schema["chosen"] == pl.String and pairs.schema["margin"] == pl.Int64


def test_bad_options_and_missing_columns_are_named():
    with pytest.raises(ValueError, match="strategy must be .* got 'best'"):
        preference_pairs(UF, strategy="best")
    with pytest.raises(ValueError, match="ties must be"):
        preference_pairs(UF, ties="random")
    with pytest.raises(pl.exceptions.ColumnNotFoundError, match="no column 'scores'"):
        preference_pairs(UF, ratings="scores")
    with pytest.raises(ValueError, match="needs a ratings column"):
        sft_rows(UF, ratings=None)


def test_sft_rows_best_only_in_messages_layout():
    sft = sft_rows(UF)
    assert sft.columns == ["messages"]
    conversations = sft["messages"].to_list()
    assert [[m["role"] for m in c] for c in conversations] == [["user", "assistant"]] * 3
    assert [c[1]["content"] for c in conversations][0] == "Plants make sugar from light."
    assert conversations[2][1]["content"] in {"7", "2"}  # a tie at 5 broken by the seed, never the unrated 9
    assert all(c[0]["content"] != "Say hi." for c in conversations)  # no rating, no row


def test_sft_rows_filtered_in_prompt_completion_layout():
    sft = sft_rows(UF, best_only=False, min_rating=4, chat_format=False)
    assert sft.columns == ["prompt", "completion"]
    assert sft.rows() == [
        ("Explain photosynthesis.", "Plants make sugar from light."),
        ("Write a haiku about rain.", "Rain taps the roof"),
        ("Write a haiku about rain.", "rain rain rain"),
        ("Name a prime.", "7"),
        ("Name a prime.", "2"),
    ]
    everything = sft_rows(UF, ratings=None, best_only=False, chat_format=False)
    assert everything.height == 10


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_write_pairs_round_trip(tmp_path, suffix):
    pairs = preference_pairs(UF, chat_format=True)
    path = write_pairs(pairs, tmp_path / f"dpo{suffix}")
    assert read_input(path).to_dicts() == pairs.to_dicts()


def test_to_hf_dataset_without_datasets_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'distilfn\[hf\]'"):
        to_hf_dataset(UF)


def test_to_hf_dataset_uses_from_polars(monkeypatch):
    fake = types.ModuleType("datasets")
    fake.Dataset = type("Dataset", (), {"from_polars": staticmethod(lambda df: ("dataset", df.shape))})
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert to_hf_dataset(UF) == ("dataset", (4, 4))
    fake.Dataset = type("Dataset", (), {"from_dict": staticmethod(lambda d: sorted(d))})  # an older datasets
    assert to_hf_dataset(UF) == ["generations", "instruction", "model_names", "ratings"]
