"""The fault-injecting OpenAI-compatible test server, checked with a plain HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from distilfn.testing.fakeserver import FakeServer, FakeServerProcess, ReplyError, content_key, echo_reply


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

    latency = 1.0  # the ten are sent in a few ms: all are held together, however busy the machine
    with FakeServer(latency=latency) as srv:
        asyncio.run(burst(srv.url))
        stats = srv.stats()
    assert stats["max_in_flight"] == 10
    assert stats["in_flight"] == 0
    # each request was in flight for at least the latency: the mean times the busy span
    # (the area under the gauge) is at least 10 x latency, and the mean is below the peak
    assert stats["mean_in_flight"] * stats["busy_seconds"] >= 10 * latency * 0.999
    assert 0 < stats["mean_in_flight"] <= stats["max_in_flight"]


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
        [sys.executable, "-m", "distilfn.testing.fakeserver", "--port", "0", "--latency", "0.01", "--print-url"],
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


def raw_exchange(url: str, data: bytes) -> bytes:
    """Send ``data`` on one fresh connection; everything the server sends until it closes."""
    host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def raw_post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: x", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_pipelined_requests_are_answered_in_order_and_close_is_kept():
    first, second = json.dumps({"messages": chat("one")}).encode(), json.dumps({"messages": chat("two")}).encode()
    with FakeServer(latency=0.02) as srv:
        data = raw_post("/v1/chat/completions", first) + raw_post("/v1/chat/completions", second, "connection: close")
        received = raw_exchange(srv.url, data)
        stats = srv.stats()
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [a.split(b" ", 1)[0] for a in answers] == [b"200", b"200"]
    assert b"Connection: close" not in answers[0] and b"Connection: close" in answers[1]
    assert echo_reply(chat("one"), 0).encode() in answers[0] and echo_reply(chat("two"), 0).encode() in answers[1]
    assert stats["ok"] == 2 and stats["connections"] == 1


def test_http_1_0_chunked_bodies_and_malformed_requests():
    with FakeServer() as srv:
        old = raw_exchange(srv.url, b"GET /health HTTP/1.0\r\n\r\n")  # no keep-alive: closed after the answer
        assert old.startswith(b"HTTP/1.1 200 ") and old.endswith(b'{"status":"ok"}')
        body = json.dumps({"messages": chat("chunked")}).encode()
        chunked = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        assert raw_exchange(srv.url, chunked).startswith(b"HTTP/1.1 200 ")
        assert raw_exchange(srv.url, b"NOT HTTP AT ALL\r\n\r\n") == b""  # closed without a word
        assert post(srv.url, chat("still fine")).status_code == 200


def test_an_answer_whose_client_left_is_still_counted():
    with FakeServer(latency=1.0) as srv:  # far longer than the client's 0.02 s
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{srv.url}/chat/completions", json={"messages": chat("x")}, timeout=0.02)
        stats = wait_for_stats(srv, lambda s: s["ok"] == 1)
        srv.configure(latency=0.0)
        assert post(srv.url, chat("y")).status_code == 200
    assert stats["ok"] == 1 and stats["in_flight"] == 0


def wait_for_stats(srv: FakeServer, done, seconds: float = 30.0) -> dict:
    """The server's counters once ``done(stats)`` holds; fails after ``seconds`` (stuck)."""
    deadline = time.monotonic() + seconds
    while not done(stats := srv.stats()):
        assert time.monotonic() < deadline, stats
        time.sleep(0.01)
    return stats


def test_stopping_with_requests_in_flight_leaves_none_counted_in_flight():
    def post_unanswered(url: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            post(url, chat("x"))

    srv = FakeServer(latency=60.0).start()
    client = threading.Thread(target=post_unanswered, args=(srv.url,), daemon=True)
    client.start()
    wait_for_stats(srv, lambda s: s["in_flight"] == 1)
    srv.stop()
    client.join(timeout=5)
    assert srv.stats()["completions"] == 1 and srv.stats()["in_flight"] == 0


def test_a_shortened_latency_answers_the_later_request_first():
    """The slow request is held (60 s) when the latency is shortened: the fast one, sent
    after it, is answered while the slow one is still in flight."""

    async def two(url: str, srv: FakeServer) -> tuple[list[str], dict]:
        done: list[str] = []
        async with httpx.AsyncClient(timeout=120) as client:

            async def one(text: str) -> None:
                await client.post(f"{url}/chat/completions", json={"messages": chat(text)})
                done.append(text)

            slow = asyncio.create_task(one("slow"))
            await asyncio.to_thread(wait_for_stats, srv, lambda s: s["in_flight"] == 1)
            srv.configure(latency=0.05)
            await one("fast")
            stats = srv.stats()
            slow.cancel()
        return done, stats

    with FakeServer(latency=60.0) as srv:
        done, stats = asyncio.run(two(srv.url, srv))
    assert done == ["fast"] and stats["ok"] == 1 and stats["in_flight"] == 1


def test_a_crashing_reply_function_closes_only_its_connection(caplog):
    def reply(messages, index):
        if messages[-1]["content"] == "boom":
            raise RuntimeError("reply function bug")
        return "fine"

    for latency in (0.0, 0.01):
        with FakeServer(reply=reply, latency=latency) as srv:
            with pytest.raises(httpx.RemoteProtocolError):
                post(srv.url, chat("boom"))
            assert post(srv.url, chat("ok")).json()["choices"][0]["message"]["content"] == "fine"
            assert srv.stats()["in_flight"] == 0
    assert "reply function bug" in caplog.text


def test_slots_queue_the_rest_and_a_queued_request_whose_client_left_is_cancelled():
    with FakeServer(slots=1, latency=0.3) as srv:
        assert httpx.get(srv.url.removesuffix("/v1") + "/props").json()["total_slots"] == 1
        assert len(httpx.get(srv.url.removesuffix("/v1") + "/slots").json()) == 1
        first = threading.Thread(target=post, args=(srv.url, chat("first")))
        first.start()
        while srv.stats()["completions"] < 1:
            time.sleep(0.01)
        with pytest.raises(httpx.TimeoutException):  # queued behind the first, then given up on
            httpx.post(f"{srv.url}/chat/completions", json={"model": "m", "messages": chat("second")}, timeout=0.05)
        first.join()
        give_up = time.monotonic() + 10
        while srv.stats()["cancelled"] < 1 and time.monotonic() < give_up:
            time.sleep(0.01)
        stats = srv.stats()
    assert stats["ok"] == 1 and stats["cancelled"] == 1 and stats["abandoned"] == 1
    assert stats["max_in_flight"] == 2 and stats["in_flight"] == 0


def test_redirects_header_names_and_hidden_props():
    with FakeServer(redirect_to="http://elsewhere.invalid/v1", redirect_status=308, props=False, slots=2) as srv:
        answer = httpx.get(srv.url + "/models", headers={"X-Custom-Token": "t"})
        assert answer.status_code == 308 and answer.headers["location"] == "http://elsewhere.invalid/v1/models"
        srv.configure(redirect_to=None)
        assert httpx.get(srv.url.removesuffix("/v1") + "/props").status_code == 404
        assert srv.stats()["header_names"]["x-custom-token"] == 1
