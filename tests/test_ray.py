"""Issue 13 part 1: a plan on Ray Data, on a local Ray cluster the tests start, against the
fake server on 127.0.0.1. The same frame and the same server-counted requests as a local
run; every row comes out and failures are kept; a re-run with the same cache sends only
what failed; a killed actor or a killed driver costs at most the requests in flight."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

if os.environ.get("CI") and importlib.util.find_spec("ray") is None:
    pytest.fail("CI installs the ray extra (the README's test command): ray is missing", pytrace=False)
ray = pytest.importorskip("ray")

import warnings  # noqa: E402

import cloudpickle  # noqa: E402
import plans  # noqa: E402
import polars as pl  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from polars.testing import assert_frame_equal  # noqa: E402

import distilfn.ray  # noqa: E402
from distilfn import fanout, task  # noqa: E402
from distilfn.errors import ResumeRefusedError  # noqa: E402
from distilfn.models.openai import OpenAICompatible, openai_compatible  # noqa: E402
from distilfn.output.dataset_dir import MANIFEST, read_dataset_dir  # noqa: E402
from distilfn.run import RowsFailedWarning  # noqa: E402
from distilfn.testing.fakeserver import FakeServer, ReplyError, echo_reply  # noqa: E402

KEY = "sk-ray-test-secret-3141592653"
KEY_ENV = "DISTILFN_RAY_TEST_KEY"
REGISTRY = "distilfn-test-actors"


def _ask(row):
    return [{"role": "user", "content": f"question {row['q']}"}]


def _answer(text):
    return {"a": text}


def _rate(row):
    return [{"role": "user", "content": f"rate: {row['a']}"}]


def _score(text):
    return {"score": len(text) % 7}


generate = task(name="generate", inputs=["q"], outputs=["a"], render=_ask, parse=_answer)
rate = task(name="rate", inputs=["a"], outputs={"score": int}, render=_rate, parse=_score)
PLAN = generate >> fanout(rate, n=2)


REJECTING = [True]
"""While true, the fake server rejects the questions with 'bad' in them (the server runs in this process)."""


def reply(messages, index):
    """Echo; a question with 'bad' in it is rejected (400: not retried), so its row fails."""
    text = messages[-1]["content"]
    if REJECTING[0] and text.startswith("question") and "bad" in text:
        raise ReplyError(400, "rejected on purpose")
    return echo_reply(messages, index)


def frame(rows: int, bad_every: int = 0) -> pl.DataFrame:
    qs = [f"q{i}-bad" if bad_every and i % bad_every == 0 else f"q{i}" for i in range(rows)]
    return pl.DataFrame({"id": list(range(rows)), "q": qs})


def uncached(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with every ``meta.*.cached`` flag set False (a re-run reads its answers from the cache)."""
    return df.with_columns(pl.col(c).struct.with_fields(pl.lit(False).alias("cached")) for c in df.columns if c.startswith("meta."))


def resent(server: FakeServer) -> int:
    """Requests the server received more than once (same content)."""
    counts = server.stats()["requests_per_key"]
    return sum(counts.values()) - len(counts)


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module (2 CPUs, no dashboard). Its workers inherit an
    environment where the test key is under KEY_ENV (and DISTILFN_API_KEY, which the CLI's
    default model reads), OPENAI_API_KEY holds a wrong one, and this module is importable."""
    saved = {k: os.environ.get(k) for k in (KEY_ENV, "DISTILFN_API_KEY", "OPENAI_API_KEY", "PYTHONPATH")}
    os.environ[KEY_ENV] = os.environ["DISTILFN_API_KEY"] = KEY
    here = Path(__file__).resolve().parent  # the workers import this module's plan and model by name
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent), *filter(None, [saved["PYTHONPATH"]])])
    os.environ["OPENAI_API_KEY"] = "sk-wrong-key-0000"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_ray_run_gives_the_local_frame_schema_and_requests(cluster, tmp_path):
    data = frame(40, bad_every=7)
    with FakeServer(reply=reply, api_key=KEY) as server:
        model = openai_compatible(server.url, model="fake", api_key_env=KEY_ENV, max_retries=0)
        assert KEY.encode() not in cloudpickle.dumps(model)  # the spec travels, the key does not
        with pytest.warns(UserWarning, match="input rows failed"):
            local = PLAN.run(data, model, cache=tmp_path / "local")
        local_requests = server.stats()["completions"]
        server.reset_stats()

        out = PLAN.run(ray.data.from_arrow(data.to_arrow()), model, cache=tmp_path / "ray", actors=2, batch_rows=8)
        assert isinstance(out, ray.data.Dataset)
        got = pl.from_arrow(_table(out))
        assert server.stats()["completions"] == local_requests

    assert got.schema == local.schema == PLAN.compile(data.schema).schema
    assert_frame_equal(got.sort("id", maintain_order=True), local.sort("id", maintain_order=True))
    failed = got.filter(pl.col("meta.generate").struct.field("error").is_not_null())
    assert failed["id"].unique().sort().to_list() == list(range(0, 40, 7))
    assert failed["a"].null_count() == failed.height
    assert failed["meta.generate"].struct.field("error").str.contains("rejected on purpose").all()
    logs = Path(_session_dir()) / "logs"
    assert not any(KEY in p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file() and p.stat().st_size < 5_000_000)


def _table(ds):
    import pyarrow as pa

    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def _session_dir() -> str:
    from ray._private.worker import _global_node

    return _global_node.get_session_dir_path()


def test_ray_run_to_writes_a_directory_and_a_rerun_sends_only_what_failed(cluster, tmp_path):
    data = frame(30, bad_every=5)
    ds = ray.data.from_arrow(data.to_arrow())
    out, cache = tmp_path / "out", tmp_path / "cache"
    with FakeServer(reply=reply, api_key=KEY) as server:
        model = openai_compatible(server.url, model="fake", api_key_env=KEY_ENV, max_retries=0)
        with pytest.warns(RowsFailedWarning, match="12 of 60 output rows failed"):
            first = distilfn.ray.run_to(PLAN, ds, out, model, cache=cache, batch_rows=10)
        assert (first.rows_in, first.rows_out, first.failed) == (30, 60, 12)  # 6 failed rows x fanout 2
        assert server.stats()["completions"] == 30 + 24  # one request per question, one (n=2) per answered row
        frame_one = read_dataset_dir(out)
        assert frame_one.height == 60 and sorted(set(frame_one["id"])) == list(range(30))
        assert frame_one.schema == PLAN.compile(data.schema).schema
        failed_ids = frame_one.filter(pl.col("a").is_null())["id"].unique().sort().to_list()
        assert failed_ids == [0, 5, 10, 15, 20, 25]

        REJECTING[0] = False  # the server now answers them
        try:
            server.reset_stats()
            second = distilfn.ray.run_to(PLAN, ds, out, model, cache=cache, batch_rows=10)
            assert server.stats()["completions"] == 6 + 6  # the failed questions, then their ratings: nothing else
            assert (second.failed, second.rows_out, second.already_complete) == (0, 60, False)
            redone = read_dataset_dir(out)
            kept = ~pl.col("id").is_in(failed_ids)
            assert_frame_equal(uncached(redone.filter(kept)).sort("id", maintain_order=True),
                               uncached(frame_one.filter(kept)).sort("id", maintain_order=True))
            assert redone.filter(~kept)["a"].null_count() == 0

            third = distilfn.ray.run_to(PLAN, ds, out, model, cache=cache)
            assert third.already_complete and third.rows_out == 60 and server.stats()["completions"] == 12
            with pytest.raises(ResumeRefusedError, match="input changed"):
                distilfn.ray.run_to(PLAN, ray.data.from_arrow(frame(31).to_arrow()), out, model, cache=cache)
        finally:
            REJECTING[0] = True


def test_a_wrong_key_stops_the_ray_run_with_the_authentication_error(cluster, tmp_path):
    from distilfn.errors import AuthenticationError

    with FakeServer(api_key=KEY) as server:
        model = openai_compatible(server.url, model="fake", max_retries=0)  # workers read OPENAI_API_KEY: the wrong one
        with pytest.raises(AuthenticationError, match="401") as raised:
            distilfn.ray.run_to(generate, ray.data.from_arrow(frame(4).to_arrow()), tmp_path / "out", model, cache=False)
    assert "sk-wrong-key-0000" not in str(raised.value) and not (tmp_path / "out").exists()


class _ReportingModel(OpenAICompatible):
    """The fake server's model, which hands the test the actor it runs in (to kill it)."""

    async def agenerate(self, chats, **kwargs):
        if not getattr(self, "_reported", False):
            self._reported = True
            ray.get_actor(REGISTRY).add.remote(ray.get_runtime_context().current_actor)
        return await super().agenerate(chats, **kwargs)


@ray.remote(num_cpus=0)
class _Registry:
    def __init__(self):
        self.actors = []

    def add(self, handle):
        self.actors.append(handle)

    def first(self):
        return self.actors[0] if self.actors else None


def test_a_killed_actor_loses_no_row_and_resends_at_most_its_requests_in_flight(cluster, tmp_path):
    rows, per_actor = 160, 4
    data = pl.DataFrame({"id": list(range(rows)), "q": [f"q{i}" for i in range(rows)]})
    registry = _Registry.options(name=REGISTRY).remote()
    single = generate  # one request per row: the server's counts say what was re-sent
    try:
        with FakeServer(latency=0.15, api_key=KEY) as server:
            model = _ReportingModel(server.url, model="fake", api_key_env=KEY_ENV)
            done: list = []
            runner = threading.Thread(target=lambda: done.append(distilfn.ray.run_to(
                single, ray.data.from_arrow(data.to_arrow()), tmp_path / "out", model,
                cache=tmp_path / "cache", actors=2, max_concurrency=per_actor, batch_rows=20,
            )))
            runner.start()
            victim = None
            while runner.is_alive() and (victim is None or server.stats()["ok"] < 24):
                victim = victim or ray.get(registry.first.remote())
                time.sleep(0.05)
            assert victim is not None and server.stats()["ok"] < rows  # killed mid-run
            ray.kill(victim, no_restart=False)  # Ray restarts it and retries its blocks
            runner.join(timeout=300)
            assert done, "the run did not finish"
            assert resent(server) <= per_actor
            assert len(server.stats()["ok_per_key"]) == rows
        result = read_dataset_dir(done[0])
        assert sorted(result["id"]) == list(range(rows))
        assert result["meta.generate"].struct.field("error").null_count() == rows
    finally:
        ray.kill(registry)


PLAN_FILE = """
from tests.test_ray import PLAN as plan
"""


def test_cli_ray_driver_killed_then_the_same_run_finishes_with_at_most_the_requests_in_flight_resent(cluster, tmp_path):
    rows = 60
    data = tmp_path / "in.parquet"
    pl.DataFrame({"id": list(range(rows)), "q": [f"q{i}" for i in range(rows)]}).write_parquet(data)
    plan_file = tmp_path / "plan.py"
    plan_file.write_text(PLAN_FILE)
    out = tmp_path / "out"
    with FakeServer(latency=0.1, api_key=KEY) as server:
        env = {**os.environ, "DISTILFN_API_KEY": KEY}  # PYTHONPATH: the fixture's (this module and the repo)
        command = [sys.executable, "-m", "distilfn.cli", "run", str(plan_file), "--input", str(data), "--output", str(out),
                   "--model", server.url, "--model-name", "fake", "--cache", str(tmp_path / "cache"),
                   "--max-concurrency", "4", "--ray", cluster, "-q"]
        driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            while driver.poll() is None and server.stats()["ok"] < 12:
                time.sleep(0.05)
            assert driver.poll() is None, driver.stderr.read().decode()
            os.killpg(driver.pid, signal.SIGKILL)
        finally:
            driver.wait()
        assert not out.exists()  # a directory appears only when whole
        in_flight_bound = 2 * 4  # two actors, four requests each
        model = openai_compatible(server.url, model="fake", api_key_env="DISTILFN_API_KEY")  # what --model URL makes
        again = distilfn.ray.run_file_to(PLAN, data, out, model, cache=tmp_path / "cache", max_concurrency=4)
        assert again.rows_out == rows * 2 and again.failed == 0
        assert resent(server) <= in_flight_bound
        assert len(server.stats()["ok_per_key"]) == rows * 2  # every question and every rating, once
    result = read_dataset_dir(out)
    assert result.height == rows * 2 and sorted(set(result["id"])) == list(range(rows))
    assert (out / MANIFEST).is_file()
    assert KEY not in (out / MANIFEST).read_text()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=plans.frames().filter(lambda f: f.height > 0), specs=plans.plan_specs())
def test_ray_gives_the_local_frame_for_random_plans_and_frames(cluster, data, specs):
    """Random plans (fanout, explode, group, evolve, filter, map, rename) over random
    frames of many dtypes, with a model that fails some requests and writes unreadable
    answers. (An empty input is left out: Ray Data never calls the actors for zero rows,
    so the lazy dataset it gives has no columns; ``run_to`` records the schema anyway.)"""
    plan, _ = plans.build(specs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsFailedWarning)
        local = plan.run(data, model=plans.model, cache=False, max_error_rate=None)
    out = distilfn.ray.run(plan, ray.data.from_arrow(data.to_arrow()), plans.model, cache=False, max_error_rate=None, batch_rows=2)
    got = pl.from_arrow(_table(out))
    assert got.schema == local.schema
    assert_frame_equal(got.sort("id", maintain_order=True), local.sort("id", maintain_order=True))


def test_the_readmes_ray_block_runs(cluster, tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "import ray" in b]
    monkeypatch.chdir(tmp_path)
    data = frame(6)
    with FakeServer(reply=reply, api_key=KEY) as server:
        model = openai_compatible(server.url, model="fake", api_key_env=KEY_ENV)
        namespace = {"plan": PLAN, "df": data, "model": model}
        exec(compile(block, "README's Ray block", "exec"), namespace)
        lazy = pl.from_arrow(_table(namespace["out"]))
    assert lazy.height == 12 and lazy.schema == PLAN.compile(data.schema).schema
    assert (tmp_path / "out" / "ray-run" / MANIFEST).exists() and namespace["result"].rows_out == 12
