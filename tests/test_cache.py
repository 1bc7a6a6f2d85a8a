"""The request cache: stable keys, durable puts, no secrets on disk, kill -9 safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn.run.cache import (
    CACHE_FILENAME,
    Answer,
    RequestCache,
    clear_cache,
    default_cache_dir,
    open_cache,
    request_key,
    strip_secrets,
)

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Explain photosynthesis."}]


def key(**overrides):
    args = {"chat": CHAT, "model_identity": "openai:http://127.0.0.1:8000/v1:qwen", "params": {"temperature": 0.7},
            "n_index": 0, "seed": None, "schema_name": None}
    return request_key(**(args | overrides))


# -- keys ------------------------------------------------------------------------------

param_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                         st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3))
params_st = st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: "key" not in k.lower() and "token" not in k.lower()),
                            param_values, max_size=6)


@settings(max_examples=200, deadline=None)
@given(params=params_st, n=st.integers(0, 50), seed=st.none() | st.integers(0, 2**32), data=st.data())
def test_key_is_independent_of_param_order_and_depends_on_sample_index(params, n, seed, data):
    shuffled = dict(data.draw(st.permutations(list(params.items()))))
    assert key(params=params, n_index=n, seed=seed) == key(params=shuffled, n_index=n, seed=seed)
    assert key(params=params, n_index=n, seed=seed) != key(params=params, n_index=n + 1, seed=seed)


@settings(max_examples=100, deadline=None)
@given(a=st.text(max_size=30), b=st.text(max_size=30))
def test_key_depends_on_the_chat_content(a, b):
    ka = key(chat=[{"role": "user", "content": a}])
    kb = key(chat=[{"role": "user", "content": b}])
    assert (ka == kb) == (a == b)


def test_equal_numbers_give_equal_keys():
    assert key(params={"temperature": 1}) == key(params={"temperature": 1.0})
    assert key(params={"stop": ("a", "b")}) == key(params={"stop": ["a", "b"]})
    assert key(params={"temperature": 1}) != key(params={"temperature": 1.5})
    assert key(n_index=(0, 2)) == key(n_index=[0, 2]) != key(n_index=(2, 0))


def test_key_depends_on_model_seed_schema_and_params():
    base = key()
    others = [key(model_identity="other"), key(seed=1), key(schema_name="Answer"),
              key(params={"temperature": 0.8}), key(params={"temperature": 0.7, "max_tokens": 10})]
    assert len({base, *others}) == len(others) + 1
    assert len(base) == 64 and int(base, 16) >= 0


def test_key_ignores_secrets_at_any_depth():
    with_secrets = {"temperature": 0.7, "api_key": "sk-secret", "extra_headers": {"Authorization": "Bearer sk-secret"}}
    assert key(params=with_secrets) == key(params={"temperature": 0.7, "extra_headers": {}})
    assert strip_secrets({"max_tokens": 5, "X-Api-Key": "k", "client_secret": "s"}) == {"max_tokens": 5}


def test_key_refuses_unhashable_parameter_values():
    with pytest.raises(TypeError, match="cannot hash a parameter value of type object"):
        key(params={"temperature": object()})


# -- store -----------------------------------------------------------------------------


@pytest.fixture(params=["inline", "background"])
def writer(request):
    return request.param


def test_put_get_len_clear(tmp_path, writer):
    with RequestCache(tmp_path / "c.sqlite", writer=writer) as cache:
        answer = Answer(text="Plants turn light into sugar.", model_name="qwen", input_tokens=12, output_tokens=7)
        cache.put("k1", answer)
        cache.put("k1", Answer(text="a later answer"))  # first answer wins
        cache.put_many({"k2": Answer(text="two"), "k3": Answer(text="three")})
        assert cache.get("k1") == msgspec.structs.replace(answer, cached=True)  # what comes back says it was cached
        assert cache.get("nope") is None
        assert "k2" in cache and "nope" not in cache
        assert cache.get_many(["k3", "nope", "k1", "k3"]) == {"k3": Answer(text="three", cached=True), "k1": msgspec.structs.replace(answer, cached=True)}
        assert len(cache) == 3
        assert cache.clear() == 3
        assert len(cache) == 0
    with pytest.raises(RuntimeError, match="is closed"):
        cache.get("k1")
    cache.close()  # twice is fine


def test_get_many_of_many_keys(tmp_path, writer):
    with RequestCache(tmp_path / "c.sqlite", writer=writer) as cache:
        cache.put_many({f"k{i}": Answer(text=str(i)) for i in range(2500)})
        got = cache.get_many([f"k{i}" for i in range(0, 3000, 3)])
        assert {k: v.text for k, v in got.items()} == {f"k{i}": str(i) for i in range(0, 2500, 3)}


def test_answers_are_visible_to_another_connection_once_committed(tmp_path, writer):
    with RequestCache(tmp_path / "c.sqlite", writer=writer) as w, RequestCache(tmp_path / "c.sqlite") as reader:
        w.put("k", Answer(text="hello"))
        w.flush()
        assert reader.get("k") == Answer(text="hello", cached=True)


def test_background_writer_serves_queued_answers_and_commits_on_close(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite", writer="background")
    answers = {f"k{i}": Answer(text=f"t{i}") for i in range(3000)}
    for k, a in answers.items():
        cache.put(k, a)
        assert cache.get(k) == msgspec.structs.replace(a, cached=True)  # seen at once, committed or not
    cache.close()
    with pytest.raises(RuntimeError, match="is closed"):
        cache.put("x", Answer(text="late"))
    with RequestCache(tmp_path / "c.sqlite") as reopened:
        assert reopened.get_many(answers) == {k: msgspec.structs.replace(a, cached=True) for k, a in answers.items()}


def test_writer_option_is_checked(tmp_path):
    with pytest.raises(ValueError, match="writer must be 'inline' or 'background', got 'async'"):
        RequestCache(tmp_path / "c.sqlite", writer="async")


def test_concurrent_puts_from_threads(tmp_path, writer):
    with RequestCache(tmp_path / "c.sqlite", writer=writer) as cache:
        def work(t):
            for i in range(200):
                cache.put(f"{t}-{i}", Answer(text=f"{t}:{i}"))
                cache.get(f"{t}-{i // 2}")
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(cache) == 800
        assert cache.get("3-199").text == "3:199"


def test_a_file_that_is_not_a_database_is_reported(tmp_path):
    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="not a readable SQLite database"):
        RequestCache(bad)


def test_cache_files_never_contain_the_api_key(tmp_path, writer):
    secret = "sk-test-THIS-MUST-NEVER-BE-STORED-1234567890"
    params = {"temperature": 0.2, "api_key": secret, "headers": {"Authorization": f"Bearer {secret}"}}
    path = tmp_path / "c.sqlite"
    cache = RequestCache(path, writer=writer)
    for i in range(50):
        k = key(params=params, n_index=i)
        cache.put(k, Answer(text=f"answer {i}", model_name="qwen"))
    cache.flush()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("c.sqlite")]
    assert any(p.name.endswith("-wal") for p in files)  # checked while the log holds the writes
    for p in files:
        assert secret.encode() not in p.read_bytes(), p
        assert b"sk-test" not in p.read_bytes(), p
    cache.close()
    assert secret.encode() not in path.read_bytes()


# -- crash safety --------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from distilfn.run.cache import RequestCache, Answer
    cache = RequestCache(sys.argv[1], writer=sys.argv[2])
    i = 0
    while True:
        cache.put(f"key-{i}", Answer(text=f"answer {i} " + "x" * (i % 5000), input_tokens=i))
        i += 1
        if i == 3000:
            cache.flush()
            print("ready", flush=True)
    """
)


def test_cache_survives_kill_9_of_a_writer(tmp_path, writer):
    path = tmp_path / "c.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), writer], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with RequestCache(path) as cache:
        n = len(cache)
        assert n >= 3000  # everything put before "ready" is durable
        got = cache.get_many([f"key-{i}" for i in range(n + 10)])
        assert set(got) == {f"key-{i}" for i in range(n)}  # no hole, nothing half-written
        for i in range(n):
            assert got[f"key-{i}"].text == f"answer {i} " + "x" * (i % 5000)
            assert got[f"key-{i}"].input_tokens == i
        cache.put("after", Answer(text="still writable"))
        assert cache.get("after").text == "still writable"


# -- locations -----------------------------------------------------------------------------


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DISTILFN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "distilfn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "distilfn"
    monkeypatch.setenv("DISTILFN_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_open_cache_options(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILFN_CACHE_DIR", str(tmp_path / "default"))
    assert open_cache(False) is None
    for option in (None, True):
        with open_cache(option) as cache:
            assert cache.path == tmp_path / "default" / CACHE_FILENAME
    with open_cache(tmp_path / "dir") as cache:
        assert cache.path == tmp_path / "dir" / CACHE_FILENAME
    with open_cache(str(tmp_path / "my.sqlite"), writer="background") as cache:
        assert cache.path == tmp_path / "my.sqlite"
        assert cache.writer == "background"
        assert open_cache(cache) is cache
    with pytest.raises(TypeError, match="cache must be a path"):
        open_cache(3)


def test_clear_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILFN_CACHE_DIR", str(tmp_path))
    assert clear_cache() == 0  # nothing there yet
    with open_cache(None) as cache:
        cache.put_many({"a": Answer(text="1"), "b": Answer(text="2")})
    assert clear_cache() == 2
    with open_cache(tmp_path / "other") as cache:
        cache.put("a", Answer(text="1"))
    assert clear_cache(tmp_path / "other") == 1
    with open_cache(tmp_path / "other") as cache:
        assert len(cache) == 0
