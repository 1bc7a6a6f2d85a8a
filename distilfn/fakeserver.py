"""A small, real OpenAI-compatible HTTP server that injects faults, for tests and benchmarks.

It speaks HTTP/1.1 with keep-alive (asyncio + h11) on 127.0.0.1 and answers
``POST /v1/chat/completions`` (with ``n``, ``usage`` and ``model``), ``GET /v1/models``,
``GET /health`` and ``GET /stats`` (its counters as JSON). Faults are set at start or at
run time (``configure``, or ``POST /config`` from another process): a fixed latency, a
fraction of 500 / 429-with-Retry-After answers, a fraction of dropped connections, a
status every request gets (e.g. 401), and a required API key.

In a test::

    with FakeServer(latency=0.05, error_rate=0.2) as srv:
        model = openai_compatible(srv.url, model="fake")
        ...
        assert max(srv.stats()["ok_per_key"].values()) == 1

As a separate process (the first line printed is the base URL)::

    python -m distilfn.fakeserver --port 0 --latency 0.05 --error-rate 0.1 --print-url

or, from Python, ``with FakeServerProcess(latency=0.05) as srv: ...`` (same interface,
counters read over HTTP), when the server must not share the client's CPU.

Which requests fail is decided by a hash of (seed, request content, attempt number), so a
run with the same seed and the same requests meets the same faults.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import h11
import msgspec

__all__ = ["FakeServer", "FakeServerProcess", "FakeSettings", "ReplyError", "content_key", "echo_reply", "main"]

Reply = Callable[[list[dict[str, Any]], int], str]
"""``reply(messages, sample_index) -> text``; may raise :class:`ReplyError`."""


class ReplyError(Exception):
    """Raised by a reply function to answer one request with an HTTP error.

    >>> ReplyError(400, "prompt too long").status
    400
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class FakeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the server does with each chat-completion request (all changeable at run time).

    Attributes:
        latency: seconds every chat completion waits before it is answered (or dropped).
        error_rate: fraction answered 500 or 429 (half each) instead of a completion.
        drop_rate: fraction whose connection is closed without an answer.
        status: when set, every request (but ``/health`` and ``/stats``) gets this status.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
        retry_after: the ``Retry-After`` seconds sent with injected 429s.
        served_model: the ``model`` reported in answers; defaults to the requested one.
        seed: seeds the choice of failing requests.
        max_n: answer at most this many choices, like servers that ignore ``n``.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    status: int | None = None
    api_key: str | None = None
    retry_after: float = 0.0
    served_model: str | None = None
    seed: int = 0
    max_n: int | None = None

    def checked(self) -> FakeSettings:
        """Return self, or raise ValueError naming the setting that is out of range."""
        for name in ("error_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                msg = f"`{name}` must be between 0 and 1, got {value!r}"
                raise ValueError(msg)
        if self.latency < 0 or self.retry_after < 0:
            msg = f"`latency` and `retry_after` must be >= 0, got {self.latency!r} and {self.retry_after!r}"
            raise ValueError(msg)
        if self.status is not None and not 100 <= self.status <= 599:
            msg = f"`status` must be an HTTP status between 100 and 599, got {self.status!r}"
            raise ValueError(msg)
        if self.max_n is not None and self.max_n < 1:
            msg = f"`max_n` must be at least 1, got {self.max_n!r}"
            raise ValueError(msg)
        return self


def content_key(messages: Any) -> str:
    """The key the server counts a chat under: a stable hash of its messages.

    >>> content_key([{"role": "user", "content": "hi"}]) == content_key([{"content": "hi", "role": "user"}])
    True
    """
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def echo_reply(messages: list[dict[str, Any]], index: int) -> str:
    """The default answer: the last user message, the sample index and a stable hash.

    >>> echo_reply([{"role": "user", "content": "hi"}], 0) == echo_reply([{"role": "user", "content": "hi"}], 0)
    True
    >>> echo_reply([{"role": "user", "content": "hi"}], 0) != echo_reply([{"role": "user", "content": "hi"}], 1)
    True
    """
    last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    last = last if isinstance(last, str) else json.dumps(last)
    tag = hashlib.blake2b(f"{index}\x1f{last}".encode(), digest_size=4).hexdigest()
    return f"echo {index} {tag}: {last[:200]}"


def _fraction(*parts: Any) -> float:
    """A float in [0, 1) determined by ``parts``: the server's seeded coin."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class _Stats:
    """Counters, mutated in the server's loop thread under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0  # every HTTP request
        self.connections = 0  # connections accepted
        self.completions = 0  # chat-completion requests received
        self.ok = 0
        self.dropped = 0
        self.statuses: Counter[int] = Counter()
        self.requests_per_key: Counter[str] = Counter()
        self.ok_per_key: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.area = 0.0
        self.first_t: float | None = None
        self.last_t = 0.0
        self.last_body: Any = None

    def _advance(self, now: float) -> None:
        if self.first_t is None:
            self.first_t = now
        else:
            self.area += self.in_flight * (now - self.last_t)
        self.last_t = now

    def enter(self) -> None:
        with self.lock:
            self._advance(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self._advance(time.monotonic())
            self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            area, span = self.area, 0.0
            if self.first_t is not None:
                end = time.monotonic() if self.in_flight else self.last_t
                area += self.in_flight * (end - self.last_t)
                span = end - self.first_t
            return {
                "requests": self.requests,
                "connections": self.connections,
                "completions": self.completions,
                "ok": self.ok,
                "dropped": self.dropped,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "requests_per_key": dict(self.requests_per_key),
                "ok_per_key": dict(self.ok_per_key),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "mean_in_flight": area / span if span > 0 else float(self.in_flight),
                "busy_seconds": span,
                "last_body": self.last_body,
            }


class FakeServer:
    """An OpenAI-compatible server on 127.0.0.1 in a background thread.

    Keyword arguments are :class:`FakeSettings` fields, plus ``reply`` (a function
    ``(messages, index) -> str`` that may raise :class:`ReplyError`), ``host`` and ``port``
    (0 picks a free port). ``url`` is the base URL clients use (``http://127.0.0.1:PORT/v1``).

    >>> import httpx
    >>> with FakeServer() as srv:
    ...     httpx.get(srv.url + "/models").json()["data"][0]["id"]
    'fake-model'
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, reply: Reply | None = None, **settings: Any):
        self.host = host
        self.port = port
        self.reply: Reply = reply or echo_reply
        self.settings = FakeSettings(**settings).checked()
        self._stats = _Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- public ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def configure(self, **changes: Any) -> FakeSettings:
        """Change settings while running, e.g. ``srv.configure(error_rate=0.0)``."""
        reply = changes.pop("reply", None)
        if reply is not None:
            self.reply = reply
        self.settings = msgspec.structs.replace(self.settings, **changes).checked()
        return self.settings

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (what ``GET /stats`` returns)."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self._stats.lock:
            self._stats.reset()

    def start(self) -> FakeServer:
        """Start serving in a daemon thread; returns once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"FakeServer:{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection and stop the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeServer(url={self.url!r})"

    # -- connection handling -------------------------------------------------------------
    async def _bind(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self._stats.lock:
            self._stats.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, reader)
                if request is None:
                    break
                head, body = request
                answer = await self._answer(head, body)
                if answer is None:  # drop: close without a word
                    writer.transport.abort()
                    break
                status, payload, extra = answer
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(payload))),
                    *extra,
                ]
                head_bytes = conn.send(h11.Response(status_code=status, headers=headers)) or b""
                data_bytes = conn.send(h11.Data(data=payload)) or b""
                writer.write(head_bytes + data_bytes + (conn.send(h11.EndOfMessage()) or b""))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a cancelled handler (shutdown) ends quietly: asyncio 3.11 would log it
        finally:
            self._writers.discard(writer)
            writer.close()

    # -- routing -------------------------------------------------------------------------
    async def _answer(self, head: h11.Request, body: bytes) -> tuple[int, bytes, list[tuple[str, str]]] | None:
        method = head.method.decode()
        path = head.target.decode().split("?", 1)[0].rstrip("/")
        with self._stats.lock:
            self._stats.requests += 1
        if path == "/health":
            return 200, b'{"status":"ok"}', []
        if path == "/stats":
            if method == "POST":
                self.reset_stats()
            return 200, json.dumps(self.stats()).encode(), []
        if path == "/config" and method == "POST":
            try:
                settings = self.configure(**json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc))
            return 200, msgspec.json.encode(settings), []
        settings = self.settings
        denied = _check_auth(head, settings)
        if denied is not None:
            return denied
        if settings.status is not None:
            return _error(settings.status, f"forced status {settings.status}")
        if path == "/v1/models" and method == "GET":
            model = settings.served_model or "fake-model"
            return 200, json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode(), []
        if path == "/v1/chat/completions" and method == "POST":
            self._stats.enter()
            try:
                return await self._complete(body, settings)
            finally:
                self._stats.leave()
        return _error(404, f"no route for {method} {path}")

    async def _complete(self, body: bytes, settings: FakeSettings) -> tuple[int, bytes, list[tuple[str, str]]] | None:
        try:
            request = json.loads(body)
            messages = request["messages"]
            n = int(request.get("n") or 1)
            if settings.max_n is not None:
                n = min(n, settings.max_n)
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"invalid chat completion request: {exc}")
        key = content_key(messages)
        with self._stats.lock:
            self._stats.completions += 1
            self._stats.requests_per_key[key] += 1
            attempt = self._stats.requests_per_key[key]
            self._stats.last_body = request
        if settings.latency:
            await asyncio.sleep(settings.latency)
        coin = _fraction(settings.seed, key, attempt)
        if coin < settings.drop_rate:
            with self._stats.lock:
                self._stats.dropped += 1
            return None
        if coin < settings.drop_rate + settings.error_rate:
            if _fraction(settings.seed, key, attempt, "status") < 0.5:
                return self._count(_error(500, "injected server error"))
            return self._count(_error(429, "injected rate limit", retry_after=settings.retry_after))
        try:
            texts = [self.reply(messages, i) for i in range(n)]
        except ReplyError as exc:
            return self._count(_error(exc.status, exc.message, retry_after=exc.retry_after))
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        completion = {
            "id": f"chatcmpl-{key}-{attempt}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": settings.served_model or request.get("model") or "fake-model",
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                for i, t in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": math.ceil(prompt_chars / 4),
                "completion_tokens": sum(math.ceil(len(t) / 4) for t in texts),
                "total_tokens": math.ceil(prompt_chars / 4) + sum(math.ceil(len(t) / 4) for t in texts),
            },
        }
        with self._stats.lock:
            self._stats.ok += 1
            self._stats.ok_per_key[key] += 1
            self._stats.statuses[200] += 1
        return 200, msgspec.json.encode(completion), []

    def _count(self, answer: tuple[int, bytes, list[tuple[str, str]]]) -> tuple[int, bytes, list[tuple[str, str]]]:
        with self._stats.lock:
            self._stats.statuses[answer[0]] += 1
        return answer


class FakeServerProcess:
    """A :class:`FakeServer` in a child process (``python -m distilfn.fakeserver``), so that
    the server's CPU does not compete with the client's for one interpreter.

    Keyword arguments are :class:`FakeSettings` fields. ``stats()`` and ``configure()``
    go over HTTP (``GET /stats``, ``POST /config``).

    >>> with FakeServerProcess(latency=0.01) as srv:
    ...     srv.stats()["completions"]
    0
    """

    def __init__(self, **settings: Any):
        self.settings = FakeSettings(**settings).checked()
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> FakeServerProcess:
        """Start the child and wait for it to print its URL."""
        args = [sys.executable, "-m", "distilfn.fakeserver", "--port", "0", "--print-url"]
        for name, value in msgspec.structs.asdict(self.settings).items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url:
            self.stop()
            msg = f"the fake server process did not start (command {' '.join(args)!r})"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        """Terminate the child."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    def stats(self) -> dict[str, Any]:
        """The child's counters (``GET /stats``)."""
        return json.loads(self._call("GET", "/stats"))

    def reset_stats(self) -> None:
        """Zero the child's counters."""
        self._call("POST", "/stats")

    def configure(self, **changes: Any) -> None:
        """Change the child's settings (``POST /config``)."""
        self._call("POST", "/config", json.dumps(changes).encode())

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(self.url.removesuffix("/v1") + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own 127.0.0.1 URL
            return response.read()

    def __enter__(self) -> FakeServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeServerProcess(url={self.url!r})"


def _check_auth(head: h11.Request, settings: FakeSettings) -> tuple[int, bytes, list[tuple[str, str]]] | None:
    if settings.api_key is None:
        return None
    given = dict(head.headers).get(b"authorization", b"").decode("latin-1")
    if given == f"Bearer {settings.api_key}":
        return None
    # Like some real servers, echo what was sent: clients must not leak it further.
    return _error(401, f"Incorrect API key provided: {given.removeprefix('Bearer ')!r}.", kind="invalid_api_key")


def _error(
    status: int, message: str, *, retry_after: float | None = None, kind: str | None = None
) -> tuple[int, bytes, list[tuple[str, str]]]:
    body = {"error": {"message": message, "type": kind or "fake_error", "code": status}}
    headers = [] if retry_after is None else [("retry-after", f"{retry_after:g}")]
    return status, json.dumps(body).encode(), headers


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request, bytes] | None:
    head: h11.Request | None = None
    chunks: list[bytes] = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground; ``--print-url`` prints the base URL first."""
    parser = argparse.ArgumentParser(prog="python -m distilfn.fakeserver", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=None)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--retry-after", type=float, default=0.0)
    parser.add_argument("--served-model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-n", type=int, default=None)
    parser.add_argument("--print-url", action="store_true", help="print the base URL on the first line")
    args = parser.parse_args(argv)
    server = FakeServer(
        host=args.host,
        port=args.port,
        latency=args.latency,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        status=args.status,
        api_key=args.api_key,
        retry_after=args.retry_after,
        served_model=args.served_model,
        seed=args.seed,
        max_n=args.max_n,
    )

    async def run() -> None:
        await server._bind()
        if args.print_url:
            print(server.url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server._shutdown()

    asyncio.run(run())


if __name__ == "__main__":
    main()
