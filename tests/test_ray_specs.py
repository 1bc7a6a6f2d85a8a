"""Issue 13 part 1, without a cluster: what travels to Ray workers (model specs, never keys),
the Ray options' errors, and the dataset directory's manifest rules."""

from __future__ import annotations

import pickle

import filelock
import polars as pl
import pytest

from distilfn import task
from distilfn.errors import OutputLockedError, ResumeRefusedError
from distilfn.models.default import default_model
from distilfn.models.openai import openai_compatible
from distilfn.output.dataset_dir import MANIFEST, DatasetDirectory
from distilfn.output.manifest import Header, encode_schema
from distilfn.testing.fakeserver import FakeServer

KEY = "sk-spec-test-secret-2718281828"

echo = task(name="echo", inputs=["q"], outputs=["a"],
            render=lambda r: [{"role": "user", "content": r["q"]}], parse=lambda t: {"a": t})


def test_a_pickled_model_reads_its_key_from_the_variable_it_names(monkeypatch):
    monkeypatch.setenv("TEAM_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-someone-elses-key")
    with FakeServer(api_key=KEY) as server:
        model = openai_compatible(server.url, model="fake", api_key_env="TEAM_KEY", max_retries=0)
        payload = pickle.dumps(model)
        assert KEY.encode() not in payload
        copy = pickle.loads(payload)  # what a worker gets: it reads $TEAM_KEY where it lands
        out = echo.run(pl.DataFrame({"q": ["hi"]}), copy, cache=False)
    assert out["meta.echo"].struct.field("error").to_list() == [None] and out["a"].str.ends_with("hi").all()


def test_the_default_model_tells_its_copies_which_variable_holds_the_key(monkeypatch):
    monkeypatch.setenv("DISTILFN_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-someone-elses-key")
    with FakeServer(api_key=KEY) as server:
        monkeypatch.setenv("DISTILFN_MODEL", server.url)
        monkeypatch.setenv("DISTILFN_MODEL_NAME", "fake")
        payload = pickle.dumps(default_model())
        assert KEY.encode() not in payload
        out = echo.run(pl.DataFrame({"q": ["hi"]}), pickle.loads(payload), cache=False)
    assert out["meta.echo"].struct.field("error").to_list() == [None]


def test_api_key_env_must_name_a_variable():
    with pytest.raises(ValueError, match="api_key_env"):
        openai_compatible("http://127.0.0.1:9/v1", model="m", api_key_env="not a name")


def test_ray_options_fail_with_one_clear_error():
    ray = pytest.importorskip("ray")
    import distilfn.ray as dray

    ds = ray.data.from_items([{"q": "x"}]) if ray.is_initialized() else None
    with pytest.raises(ValueError, match="actors must be"):
        dray.RayOptions(actors=(3, 2))
    with pytest.raises(ValueError, match="batch_rows"):
        dray.RayOptions(batch_rows=0)
    with pytest.raises(ValueError, match="'stats' does not apply to a Ray run"):
        dray._split({"stats": object()})
    with pytest.raises(TypeError, match="unknown run option 'actor'"):
        dray._split({"actor": 2})
    assert dray._split({"actors": None, "max_concurrency": 8})[1].max_concurrency == 8
    assert not dray.is_dataset(pl.DataFrame()) and (ds is None or dray.is_dataset(ds))


def header(plan: str = "p1", rows: int = 3) -> Header:
    schema = pl.Schema({"q": pl.String, "a": pl.String})
    return Header(format="parquet-dir", plan=plan, plan_lines=[plan], input_rows=rows, input_digest="d",
                  schema=encode_schema(schema), columns={k: str(v) for k, v in schema.items()})


def write(directory: DatasetDirectory, rows: int = 3) -> None:
    pl.DataFrame({"q": ["x"] * rows, "a": ["y"] * rows}).write_parquet(directory.parts / "block-0.parquet")


def test_a_dataset_directory_appears_whole_and_a_finished_one_is_not_redone(tmp_path):
    out = tmp_path / "out"
    with DatasetDirectory(out, header=header()) as d:
        assert d.open() is None and not out.exists()
        write(d)
        final = d.finalize(failed=0)
    assert (out / MANIFEST).is_file() and final.rows == 3 and not d.parts.exists()
    with DatasetDirectory(out, header=header()) as d:
        assert d.open() == final  # complete: nothing to do
    with DatasetDirectory(out, header=header(plan="p2")) as d, pytest.raises(ResumeRefusedError, match="plan changed"):
        d.open()
    (out / "block-0.parquet").write_bytes(b"garbage")
    with DatasetDirectory(out, header=header()) as d, pytest.raises(ResumeRefusedError, match="no longer matches its checksum"):
        d.open()
    with DatasetDirectory(out, header=header(), restart=True) as d:
        assert d.open() is None
        write(d, rows=2)
        assert d.finalize(failed=0).rows == 2


def test_a_dataset_directory_with_failed_rows_is_redone_and_replaced(tmp_path):
    out = tmp_path / "out"
    with DatasetDirectory(out, header=header()) as d:
        d.open()
        write(d)
        d.finalize(failed=1)
    with DatasetDirectory(out, header=header()) as d:
        assert d.open() is None and out.exists()  # the old output stays until the new one is whole
        write(d)
        assert d.finalize(failed=0).failed == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "block-0.parquet"]


def test_a_killed_drivers_parts_are_started_again_unless_another_plan_left_them(tmp_path):
    out = tmp_path / "out"
    with DatasetDirectory(out, header=header()) as d:
        d.open()
        write(d)  # then the driver dies: no finalize
    with DatasetDirectory(out, header=header(plan="p2")) as d, pytest.raises(ResumeRefusedError, match="plan changed"):
        d.open()
    with DatasetDirectory(out, header=header()) as d:
        assert d.open() is None and list(d.parts.glob("*.parquet")) == []


def test_a_dataset_directory_is_never_overwritten_nor_written_twice(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with DatasetDirectory(foreign, header=header()) as d, pytest.raises(ResumeRefusedError, match="has no manifest"):
        d.open()
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = tmp_path / "out"
    with filelock.FileLock(str(tmp_path / ".out.lock")), pytest.raises(OutputLockedError, match="another run is writing"):
        DatasetDirectory(out, header=header()).__enter__()
