"""(b) Latency-bound throughput against the project's own OpenAI-compatible test server.

The server (``FakeServerProcess``, a separate process so it does not share the client's
GIL) answers every chat completion after a fixed 50 ms. With ``max_concurrency`` requests
in flight the ideal is ``max_concurrency / latency`` rows/s for a 1-step plan; the ratio
is distilfn's achieved rows/s over that ideal. Also reported: the client's CPU per
request (``time.process_time`` of this process / requests), the server's time-weighted
mean number of requests in flight (its ``/stats``) and its CPU per request, and three
hand-written clients on the same server in the same rounds: asyncio + aiohttp and
asyncio + httpx (what a user would write; distilfn sends its requests with aiohttp), httpx's
``AsyncClient`` on the ``httpx-aiohttp`` transport (issue 11 asks whether the backend could
move onto httpx's API at aiohttp's cost; skipped when the package is not installed:
``pip install httpx-aiohttp``) and a minimal asyncio-streams HTTP/1.1 client (the floor of
client cost: what this machine allows at all).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import polars as pl

from _common import info_line, ratio_line, text_task

ROWS = 2000
LATENCY = 0.05
CONCURRENCY = 32
ROUNDS = 3
TARGET = 0.9
MAX_TOKENS = 64


def chat_for(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"answer: {text}"}]


def through_distilfn(url: str, frame: pl.DataFrame) -> int:
    """Rows answered by a 1-step plan over ``openai_compatible``."""
    from distilfn.models.openai import openai_compatible
    from distilfn.plan import Plan
    from distilfn.run import RunStats

    model = openai_compatible(url, model="fake", max_concurrency=CONCURRENCY, api_key="")
    plan = Plan(steps=(text_task("answer", "instruction", "answer", max_tokens=MAX_TOKENS),))
    stats = RunStats()
    out = plan.run(frame, model=model, max_concurrency=CONCURRENCY, cache=False, stats=stats, progress=False, summary=False)
    assert stats.requests == frame.height, stats.summary()
    return out.height - out["answer"].null_count()


def plain_httpx(url: str, frame: pl.DataFrame) -> int:
    """The same requests by hand: asyncio + one httpx.AsyncClient, a semaphore."""
    import httpx

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            slots = asyncio.Semaphore(CONCURRENCY)

            async def one(text: str) -> str:
                body = {"model": "fake", "messages": chat_for(text), "max_tokens": MAX_TOKENS}
                async with slots:
                    response = await client.post(f"{url}/chat/completions", json=body)
                response.raise_for_status()
                return response.json()["choices"][0]["message"]["content"]

            return await asyncio.gather(*(one(t) for t in frame["instruction"]))

    return len(asyncio.run(main()))


def httpx_on_aiohttp(url: str, frame: pl.DataFrame) -> int:
    """The same requests by hand: asyncio + httpx.AsyncClient over the httpx-aiohttp transport."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        transport = AiohttpTransport(limits=limits, trust_env=False)
        async with httpx.AsyncClient(transport=transport, timeout=60, trust_env=False) as client:
            slots = asyncio.Semaphore(CONCURRENCY)

            async def one(text: str) -> str:
                body = {"model": "fake", "messages": chat_for(text), "max_tokens": MAX_TOKENS}
                async with slots:
                    response = await client.post(f"{url}/chat/completions", json=body)
                response.raise_for_status()
                return response.json()["choices"][0]["message"]["content"]

            return await asyncio.gather(*(one(t) for t in frame["instruction"]))

    return len(asyncio.run(main()))


def plain_aiohttp(url: str, frame: pl.DataFrame) -> int:
    """The same requests by hand: asyncio + one aiohttp.ClientSession, a semaphore."""
    import aiohttp

    async def main() -> list[str]:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            slots = asyncio.Semaphore(CONCURRENCY)

            async def one(text: str) -> str:
                body = {"model": "fake", "messages": chat_for(text), "max_tokens": MAX_TOKENS}
                async with slots, session.post(f"{url}/chat/completions", json=body) as response:
                    response.raise_for_status()
                    answer = await response.json()
                return answer["choices"][0]["message"]["content"]

            return await asyncio.gather(*(one(t) for t in frame["instruction"]))

    return len(asyncio.run(main()))


def raw_streams(url: str, frame: pl.DataFrame) -> int:
    """The same requests over CONCURRENCY keep-alive connections with bare asyncio streams."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    path = "/" + url.split("//", 1)[1].split("/", 1)[1] + "/chat/completions"

    async def post(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], body: bytes) -> bytes:
        reader, writer = conn
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode() + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(h[15:]) for h in head.split(b"\r\n") if h[:15].lower() == b"content-length:")
        return await reader.readexactly(length)

    async def main() -> list[str]:
        conns = await asyncio.gather(*(asyncio.open_connection(host, int(port)) for _ in range(CONCURRENCY)))
        pool: asyncio.Queue[Any] = asyncio.Queue()
        for conn in conns:
            pool.put_nowait(conn)

        async def one(text: str) -> str:
            body = json.dumps({"model": "fake", "messages": chat_for(text), "max_tokens": MAX_TOKENS}).encode()
            conn = await pool.get()
            try:
                data = await post(conn, body)
            finally:
                pool.put_nowait(conn)
            return json.loads(data)["choices"][0]["message"]["content"]

        try:
            return await asyncio.gather(*(one(t) for t in frame["instruction"]))
        finally:
            for _, writer in conns:
                writer.close()

    return len(asyncio.run(main()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CLIENTS = {
    "distilfn": through_distilfn,
    "aiohttp by hand": plain_aiohttp,
    "httpx by hand": plain_httpx,
    "httpx on aiohttp": httpx_on_aiohttp,
    "raw asyncio streams": raw_streams,
}
try:
    import httpx_aiohttp  # noqa: F401 - only to know whether that client can run
except ImportError:
    del CLIENTS["httpx on aiohttp"]
    print("  httpx on aiohttp: skipped (pip install httpx-aiohttp to measure it)")


def main() -> None:
    from distilfn.testing.fakeserver import FakeServerProcess

    frame = pl.DataFrame({"instruction": [f"question {i}: explain item {i}" for i in range(ROWS)]})
    ideal = CONCURRENCY / LATENCY
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
    with FakeServerProcess(latency=LATENCY) as srv:
        server_pid = srv._proc.pid  # noqa: SLF001 - to read the server's CPU time from /proc
        for client in CLIENTS.values():  # warm imports, connections and the server
            client(srv.url, frame.head(2 * CONCURRENCY))
        order = list(CLIENTS.items())
        for r in range(ROUNDS):  # alternating order, so that other processes' load hits all alike
            for name, client in order if r % 2 == 0 else order[::-1]:
                srv.reset_stats()
                s0, c0, t0 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
                answered = client(srv.url, frame)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                server = srv.stats()
                assert answered == ROWS and server["ok"] == ROWS, (name, answered, server["ok"])
                server_cpu = cpu_seconds(server_pid) - s0
                runs[name].append({"wall": wall, "cpu": cpu, "in_flight": server["mean_in_flight"], "server_cpu": server_cpu})
    print(f"1-step plan, {ROWS} rows, server latency {LATENCY * 1000:.0f} ms, max_concurrency={CONCURRENCY}, "
          f"ideal {ideal:.0f} rows/s; best of {ROUNDS} rounds")
    best = {name: min(rs, key=lambda r: r["wall"]) for name, rs in runs.items()}
    for name, b in best.items():
        print(f"  {name:<20}: {ROWS / b['wall']:6.1f} rows/s = {ROWS / b['wall'] / ideal:.2f} of ideal; "
              f"client CPU {b['cpu'] / ROWS * 1000:.2f} ms/request ({b['cpu'] / b['wall']:.0%} of a core); "
              f"mean in flight {b['in_flight']:.1f}; server CPU {b['server_cpu'] / ROWS * 1000:.2f} ms/request")
    print("  distilfn rounds     : " + ", ".join(f"{ROWS / r['wall']:.0f}" for r in runs["distilfn"]) + " rows/s")
    ratio = ROWS / best["distilfn"]["wall"] / ideal
    ratio_line("latency_bound_vs_ideal", ratio, f">={TARGET}", ratio >= TARGET)
    if "httpx on aiohttp" in runs:  # issue 11: move onto httpx's API if within ~15% of aiohttp's CPU
        cpu = {name: sorted(r["cpu"] for r in rs)[len(rs) // 2] for name, rs in runs.items()}  # median
        info_line("httpx_aiohttp_cpu_over_aiohttp", cpu["httpx on aiohttp"] / cpu["aiohttp by hand"])


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"  (benchmark wall time {time.perf_counter() - t0:.1f} s)")
