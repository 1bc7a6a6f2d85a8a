"""A saved dataset folder: datasets reads it, huggingface_hub parses its card, push is one thin upload."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import huggingface_hub
import polars as pl
import pytest
from datasets.utils.metadata import MetadataConfigs, known_task_ids
from huggingface_hub import DatasetCard
from readme_fake import fake

from distilfn import hub
from distilfn.models import FunctionModel, Generation
from distilfn.output import read_output
from distilfn.tasks import evol_instruct, ultrafeedback

DF = pl.DataFrame({"instruction": ["Explain photosynthesis.", "Write a haiku about rain.", "Name a prime."]})
PLAN = evol_instruct(n=3) >> ultrafeedback()


def load(folder):
    """``datasets.load_dataset(folder)``, with a cache of its own (datasets' shared cache can
    serve an earlier session's folder of the same name and file sizes)."""
    return datasets.load_dataset(str(folder), split="train", cache_dir=str(Path(folder).parent / "hf-cache"))


def metered(chats):
    return [Generation(texts=[t], input_tokens=50, output_tokens=5, model_name="small-v1") for t in fake(chats)]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out.parquet"
    return PLAN.run_to(DF, out, model=FunctionModel(metered, name="small"), cache=False, quiet=True)


@pytest.fixture(scope="module")
def folder(result, tmp_path_factory):
    return hub.save(result, tmp_path_factory.mktemp("hub") / "dataset", pretty_name="Evolved and rated", license="apache-2.0")


def test_datasets_loads_the_saved_folder(folder, result):
    loaded = load(folder)
    assert loaded.num_rows == DF.height
    frame = result.read()
    assert loaded.column_names == frame.columns
    assert loaded["evolved_instruction"] == frame["evolved_instruction"].to_list()
    assert loaded["model_name"] == ["small-v1"] * DF.height


def test_the_card_parses_and_its_metadata_validates(folder):
    card = DatasetCard.load(folder / "README.md")
    data = card.data
    sizes = json.loads((Path(datasets.__file__).parent / "utils/resources/size_categories.json").read_text())
    assert data.size_categories == ["n<1K"] and set(data.size_categories) <= set(sizes)
    assert set(data.task_categories) == {"text-generation", "text-classification"} <= set(known_task_ids)
    assert {"synthetic", "distilfn", "rlaif"} <= set(data.tags)
    assert data.license == "apache-2.0" and data.pretty_name == "Evolved and rated"
    configs = MetadataConfigs.from_dataset_card_data(data)  # raises when data_files are malformed
    ((file,),) = [[f["path"] for f in configs["default"]["data_files"] if f["split"] == "train"]]
    assert (folder / file).is_file() and [p.name for p in (folder / "data").iterdir()] == [Path(file).name]


def test_the_card_records_the_plan_prompts_models_counts_and_citations(folder, result):
    text = (folder / "README.md").read_text()
    manifest = json.loads(result.with_name(result.name + ".manifest.json").read_text())
    assert f"Plan fingerprint: `{manifest['header']['plan']}`" in text
    assert "1. evolve x3 (last round)  evol_instruct  [generator]  instruction -> evolved_instruction" in text
    assert "ultrafeedback_overall_rating  [judge]  evolved_instruction, generations -> ratings, rationales" in text
    assert "### evol_instruct (evol_instruct, role generator)" in text and "#Given Prompt#" in text
    assert "# General Text Quality Assessment" in text  # the judge's prompt
    assert "| ultrafeedback_overall_rating | judge | small-v1 | 3 | 0 | 150 | 15 |" in text
    assert "| text_generation | generator | small-v1 | 12 | 0 | 600 | 60 |" in text
    assert "- rows: 3" in text and "- rows with an error in some step: 0" in text
    assert "- tokens: 1200 in, 120 out" in text
    assert "WizardLM: Empowering Large Language Models to Follow Complex Instructions, Xu et al., 2023" in text
    assert "UltraFeedback, Cui et al., 2023, arXiv:2310.01377" in text
    record = json.loads((folder / "distilfn.json").read_text())
    assert record["fingerprint"] == manifest["header"]["plan"]
    assert record["rows"] == 3 and record["output_tokens"] == 120


def test_a_frame_from_plan_run_with_its_plan_gives_the_same_record(result, tmp_path):
    frame = read_output(result)
    assert hub.record(frame, plan=PLAN)["fingerprint"] == hub.record(result)["fingerprint"]
    assert hub.record(frame, plan=PLAN)["plan"] == hub.record(result)["plan"]
    bare = hub.save(frame, tmp_path / "bare")  # no plan: the data and counts, no outline
    assert "Plan fingerprint: `not recorded`" in (bare / "README.md").read_text()
    assert load(bare).num_rows == 3


def test_saving_new_rows_to_the_same_folder_is_what_datasets_reads_next(tmp_path):
    # datasets caches a folder whose card lists its data files by the folder's name and that
    # list: the same file name would serve the first rows again (measured with datasets 5.2)
    cache = str(tmp_path / "hf-cache")
    for value in ("first", "again"):
        folder = hub.save(pl.DataFrame({"x": [value]}), tmp_path / "same")
        assert datasets.load_dataset(str(folder), split="train", cache_dir=cache)["x"] == [value]
    assert len(list((folder / "data").iterdir())) == 1


def test_failures_are_counted():
    def judge_down(chats):
        raise RuntimeError("judge down")

    out = PLAN.run(DF, model={"generator": fake, "judge": judge_down}, cache=False, quiet=True, warn_failures=False)
    info = hub.record(out, plan=PLAN)
    assert info["failed_rows"] == 3
    assert {s["step"]: s["errors"] for s in info["steps"]}["ultrafeedback_overall_rating"] == 3


def test_push_saves_the_folder_and_uploads_it_in_one_call(result, monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, *, repo_id, folder_path, repo_type, commit_message):
        calls.append(("upload_folder", repo_id, repo_type))
        assert load(folder_path).num_rows == 3
        assert DatasetCard.load(f"{folder_path}/README.md").data.size_categories == ["n<1K"]
        assert "load_dataset('me/evolved', split='train')" in (folder_path / "README.md").read_text()
        assert not [f for f in folder_path.rglob("*") if f.is_file() and b"hf_secret" in f.read_bytes()]  # no token in the upload
        return "https://huggingface.co/datasets/me/evolved/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)  # the real Hub cannot run here
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    url = hub.push(result, "me/evolved", token="hf_secret", private=True)
    assert url.endswith("/commit/abc")
    assert calls[0] == ("create_repo", "me/evolved", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls[1] == ("upload_folder", "me/evolved", "dataset")
