"""The fault-injecting OpenAI-compatible test server, checked with a plain HTTP client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from distilfn.fakeserver import FakeServer, FakeServerProcess, ReplyError, content_key, echo_reply


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def post(url: str, messages, **fields) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json={"model": "m", "messages": messages, **fields}, timeout=10)


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def test_url_health_and_models(server):
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    assert server.port > 0
    assert httpx.get(server.url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
    assert [m["id"] for m in httpx.get(server.url + "/models").json()["data"]] == ["fake-model"]


def test_completion_has_n_choices_usage_and_model(server):
    body = post(server.url, chat("Name a colour."), n=3).json()
    texts = [c["message"]["content"] for c in body["choices"]]
    assert texts == [echo_reply(chat("Name a colour."), i) for i in range(3)]
    assert len(set(texts)) == 3
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["model"] == "m"
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    stats = server.stats()
    assert stats["completions"] == 1 and stats["ok"] == 1
    assert stats["ok_per_key"] == {content_key(chat("Name a colour.")): 1}
    assert stats["last_body"]["n"] == 3


def test_served_model_and_max_n():
    with FakeServer(served_model="llama-3-8b", max_n=1) as srv:
        body = post(srv.url, chat("x"), n=4).json()
    assert body["model"] == "llama-3-8b"
    assert len(body["choices"]) == 1


def test_reply_function_and_reply_error():
    def reply(messages, index):
        text = messages[-1]["content"]
        if text == "too long":
            raise ReplyError(400, "prompt is too long: 9000 tokens > 4096")
        return text.upper()

    with FakeServer(reply=reply) as srv:
        assert post(srv.url, chat("hi")).json()["choices"][0]["message"]["content"] == "HI"
        rejected = post(srv.url, chat("too long"))
        assert rejected.status_code == 400
        assert rejected.json()["error"]["message"] == "prompt is too long: 9000 tokens > 4096"
        assert httpx.post(f"{srv.url}/chat/completions", content=b"not json").status_code == 400
        assert srv.stats()["ok"] == 1


def test_api_key_required():
    with FakeServer(api_key="right") as srv:
        assert post(srv.url, chat("x")).status_code == 401
        wrong = httpx.post(
            f"{srv.url}/chat/completions",
            json={"model": "m", "messages": chat("x")},
            headers={"Authorization": "Bearer wrong"},
        )
        assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]["message"]
        right = httpx.post(
            f"{srv.url}/chat/completions",
            json={"model": "m", "messages": chat("x")},
            headers={"Authorization": "Bearer right"},
        )
        assert right.status_code == 200
        assert httpx.get(srv.url + "/models").status_code == 401


def test_status_override_changes_at_run_time(server):
    server.configure(status=503)
    assert post(server.url, chat("x")).status_code == 503
    server.configure(status=None)
    assert post(server.url, chat("x")).status_code == 200
    with pytest.raises(ValueError, match="error_rate"):
        server.configure(error_rate=1.5)


def test_error_rate_is_seeded_and_429_carries_retry_after():
    def statuses(seed: int) -> dict[str, int]:
        with FakeServer(error_rate=0.3, retry_after=0.25, seed=seed) as srv, httpx.Client() as client:
            out = {}
            for i in range(200):
                r = client.post(f"{srv.url}/chat/completions", json={"model": "m", "messages": chat(f"q{i}")})
                out[f"q{i}"] = r.status_code
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "0.25"
            assert srv.stats()["statuses"] == {str(s): list(out.values()).count(s) for s in set(out.values())}
            return out

    first, again, other = statuses(1), statuses(1), statuses(2)
    assert first == again
    assert first != other
    failed = sum(s != 200 for s in first.values())
    assert 30 <= failed <= 90  # 30% of 200, loosely
    assert {500, 429} <= set(first.values())


def test_dropped_connections_get_no_answer():
    with FakeServer(drop_rate=1.0) as srv:
        with pytest.raises(httpx.RemoteProtocolError):
            post(srv.url, chat("x"))
        stats = srv.stats()
    assert stats["dropped"] == 1 and stats["ok"] == 0


def test_keep_alive_reuses_one_connection(server):
    with httpx.Client() as client:
        for i in range(20):
            assert client.post(f"{server.url}/chat/completions", json={"model": "m", "messages": chat(str(i))}).is_success
    assert server.stats()["connections"] == 1


def test_in_flight_gauge_and_time_weighted_mean():
    async def burst(url: str) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(
                *(client.post(f"{url}/chat/completions", json={"model": "m", "messages": chat(str(i))}) for i in range(10))
            )

    with FakeServer(latency=0.2) as srv:
        asyncio.run(burst(srv.url))
        stats = srv.stats()
    assert stats["max_in_flight"] == 10
    assert stats["in_flight"] == 0
    assert 8 <= stats["mean_in_flight"] <= 10


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the server's CPU time from /proc")
def test_sustains_300_requests_per_second_over_64_connections():
    """Measured as the server process's own CPU per request, so a busy machine running
    the client too cannot make it fail or pass by accident."""

    async def hammer(url: str, total: int) -> None:
        # 16 clients of 4 connections: one httpx pool of 64 costs the *client* ~5 ms a request.
        clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=4), timeout=10) for _ in range(16)]

        async def worker(w: int) -> None:
            client = clients[w % 16]
            for i in range(w, total, 64):
                r = await client.post(f"{url}/chat/completions", json={"model": "m", "messages": chat(str(i))})
                r.raise_for_status()

        await asyncio.gather(*(worker(w) for w in range(64)))
        await asyncio.gather(*(c.aclose() for c in clients))

    with FakeServerProcess() as srv:
        before = process_cpu_seconds(srv.pid)
        asyncio.run(hammer(srv.url, 600))
        cpu = process_cpu_seconds(srv.pid) - before
        stats = srv.stats()
    assert stats["ok"] == 600
    assert stats["connections"] == 64 + 1  # keep-alive: one per worker, plus the stats call
    assert cpu / 600 < 1 / 300, f"{cpu / 600 * 1000:.2f} ms of server CPU per request"


def test_runs_as_a_separate_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "distilfn.fakeserver", "--port", "0", "--latency", "0.01", "--print-url"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert post(url, chat("hello")).status_code == 200
        base = url.removesuffix("/v1")
        stats = httpx.get(base + "/stats").json()
        assert stats["completions"] == 1 and stats["ok_per_key"] == {content_key(chat("hello")): 1}
        assert httpx.post(base + "/config", json={"status": 500}).json()["status"] == 500
        assert post(url, chat("hello")).status_code == 500
        assert httpx.post(base + "/config", json={"drop_rate": 2}).status_code == 400
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
