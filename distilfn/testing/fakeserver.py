"""A small, real OpenAI-compatible HTTP server that injects faults, for tests and benchmarks.

Needs ``httptools`` (the ``test`` extra).

It speaks HTTP/1.1 with keep-alive (asyncio + httptools) on 127.0.0.1 and answers
``POST /v1/chat/completions`` (with ``n``, ``usage`` and ``model``), ``GET /v1/models``,
``GET /health`` and ``GET /stats`` (its counters as JSON), and the Batch API's
``/v1/files`` and ``/v1/batches`` (``srv.batches``, see :mod:`distilfn.testing.fakebatch`). Faults are set at start or at
run time (``configure``, or ``POST /config`` from another process): a fixed latency, a
fraction of 500 / 429-with-Retry-After answers (optionally with rate-limit headers that say
the quota is gone), a fraction of dropped connections, a fraction of 200 answers whose body
is broken JSON, a status every request gets (e.g. 401), a required API key, a redirect of
every request to another URL, answers dripped byte by byte, stalled after some bytes or
never ending, and a fixed number of slots (like llama.cpp: the others queue; ``GET /props``
and ``GET /slots`` say how many). A reply function may answer a message that is not text
(``content: null`` with a refusal or tool calls).

It counts what a client cannot hide: requests per path, the names of the headers it
received, completions in flight (and the time-weighted mean), requests whose client left
before the answer was written (``abandoned``) and queued requests dropped because their
client had left (``cancelled``, llama.cpp's "cancel task").

In a test::

    with FakeServer(latency=0.05, error_rate=0.2) as srv:
        model = openai_compatible(srv.url, model="fake")
        ...
        assert max(srv.stats()["ok_per_key"].values()) == 1

As a separate process (the first line printed is the base URL)::

    python -m distilfn.testing.fakeserver --port 0 --latency 0.05 --error-rate 0.1 --print-url

or, from Python, ``with FakeServerProcess(latency=0.05) as srv: ...`` (same interface,
counters read over HTTP), when the server must not share the client's CPU.

Which requests fail is decided by a hash of (seed, request content, attempt number), so a
run with the same seed and the same requests meets the same faults.

Its own CPU per chat completion is kept near 0.1 ms, as 32 requests arriving together are
served one after the other: httptools (llhttp, in C) parses them, and the requests waiting
out their latency share one timer.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import concurrent.futures
import hashlib
import json
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, cast

import msgspec

from distilfn.testing._extra import missing_test_extra
from distilfn.testing.fakebatch import FakeBatches

try:
    import httptools
except ImportError as exc:  # only without the test extra
    raise missing_test_extra(__name__, "httptools") from exc

__all__ = ["FakeServer", "FakeServerProcess", "FakeSettings", "ReplyError", "content_key", "echo_reply", "main"]

Reply = Callable[[list[dict[str, Any]], int], "str | dict[str, Any]"]
"""``reply(messages, sample_index) -> text``; may raise :class:`ReplyError`, or return a dict:
the choice's ``message`` as is (e.g. ``{"content": None, "refusal": "no"}``), with an optional
``finish_reason`` key taken out of it."""


class ReplyError(Exception):
    """Raised by a reply function to answer one request with an HTTP error.

    >>> ReplyError(400, "prompt too long").status
    400
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.headers = dict(headers or {})


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
        malformed_rate: fraction of 200 answers whose body is cut short (not valid JSON).
        ratelimit_headers: injected 429s also say the quota is gone
            (``x-ratelimit-remaining-requests: 0``, ``x-ratelimit-reset-requests``).
        redirect_to: when set, every request (but ``/health``, ``/stats``, ``/config``) is
            answered ``redirect_status`` with ``Location: redirect_to + path``.
        redirect_status: 301, 302, 307 or 308.
        drip: seconds between the bytes of a chat completion's answer (head and body).
        stall_after: send this many bytes of a chat completion's answer, then nothing more
            (the connection stays open).
        endless: a chat completion's answer declares a huge body and drips it for ever.
        slots: completions served at once; the others wait in a queue (their latency
            starts when a slot frees), and ``/props`` reports ``total_slots``.
        props: False hides the slots (no ``/props`` or ``/slots``), like a server that does
            not say.
        capacity: a completion that arrives while this many are in flight is answered
            429 at once (with ``retry_after``), as a rate-limited server does.
        echo_headers: error answers quote every request header, as some servers do when
            they explain a refusal (clients must not pass the values on).
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
    malformed_rate: float = 0.0
    ratelimit_headers: bool = False
    redirect_to: str | None = None
    redirect_status: int = 307
    drip: float = 0.0
    stall_after: int | None = None
    endless: bool = False
    slots: int | None = None
    props: bool = True
    capacity: int | None = None
    echo_headers: bool = False

    def checked(self) -> FakeSettings:
        """Return self, or raise ValueError naming the setting that is out of range."""
        for name in ("error_rate", "drop_rate", "malformed_rate"):
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
        for name in ("max_n", "slots", "capacity"):
            value = getattr(self, name)
            if value is not None and value < 1:
                msg = f"`{name}` must be at least 1, got {value!r}"
                raise ValueError(msg)
        if self.redirect_status not in (301, 302, 303, 307, 308):
            msg = f"`redirect_status` must be a redirect status (301, 302, 303, 307, 308), got {self.redirect_status!r}"
            raise ValueError(msg)
        if self.drip < 0 or (self.stall_after is not None and self.stall_after < 0):
            msg = f"`drip` and `stall_after` must be >= 0, got {self.drip!r} and {self.stall_after!r}"
            raise ValueError(msg)
        return self

    @property
    def trickles(self) -> bool:
        """Whether answers are written a byte at a time (or not all)."""
        return bool(self.drip or self.endless or self.stall_after is not None)


def content_key(messages: Any) -> str:
    """The key the server counts a chat under: a stable hash of its messages.

    >>> content_key([{"role": "user", "content": "hi"}]) == content_key([{"content": "hi", "role": "user"}])
    True
    """
    return hashlib.blake2b(msgspec.json.encode(messages, order="sorted"), digest_size=8).hexdigest()


def echo_reply(messages: list[dict[str, Any]], index: int) -> str:
    """The default answer: the last user message, the sample index and a stable hash.

    >>> echo_reply([{"role": "user", "content": "hi"}], 0) == echo_reply([{"role": "user", "content": "hi"}], 0)
    True
    >>> echo_reply([{"role": "user", "content": "hi"}], 0) != echo_reply([{"role": "user", "content": "hi"}], 1)
    True
    """
    last: Any = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            last = message.get("content")
            break
    if not isinstance(last, str):
        last = json.dumps(last)
    tag = hashlib.blake2b(f"{index}\x1f{last}".encode(), digest_size=4).hexdigest()
    return f"echo {index} {tag}: {last[:200]}"


def _fraction(*parts: Any) -> float:
    """A float in [0, 1) determined by ``parts``: the server's seeded coin."""
    digest = hashlib.blake2b("\x1f".join([str(p) for p in parts]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


Answer = tuple[int, bytes, list[tuple[str, str]]]
"""``(status, JSON body, extra headers)``; ``None`` in its place drops the connection."""

_MAX_QUEUED = 16
"""Complete requests a connection holds, unanswered, before it stops reading."""

_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


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
        self.choices = 0  # samples in the 200 answers
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
        self.paths: Counter[str] = Counter()
        self.header_names: Counter[str] = Counter()
        self.abandoned = 0
        self.cancelled = 0

    def _advance(self, now: float) -> None:
        if self.first_t is None:
            self.first_t = now
        else:
            self.area += self.in_flight * (now - self.last_t)
        self.last_t = now

    def _enter(self) -> None:
        self._advance(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        self._advance(time.monotonic())
        self.in_flight -= 1

    def enter(self) -> None:
        with self.lock:
            self._enter()

    def leave(self) -> None:
        with self.lock:
            self._leave()

    def admit(self, key: str, request: Any) -> int:
        """Count a well-formed chat completion, now in flight; its attempt number for ``key``."""
        with self.lock:
            self._enter()
            self.completions += 1
            attempt = self.requests_per_key[key] = self.requests_per_key.get(key, 0) + 1
            self.last_body = request
            return attempt

    def settle(self, key: str, status: int | None, choices: int = 0) -> None:
        """Take an admitted chat completion out of flight, answered ``status`` (None: dropped)
        with ``choices`` samples."""
        with self.lock:
            self._leave()
            if status is None:
                self.dropped += 1
                return
            self.statuses[status] += 1
            if status == 200:
                self.ok += 1
                self.choices += choices
                self.ok_per_key[key] = self.ok_per_key.get(key, 0) + 1

    def cancel(self) -> None:
        """Take a queued chat completion whose client left out of flight, unanswered."""
        with self.lock:
            self._leave()
            self.cancelled += 1

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
                "choices": self.choices,
                "dropped": self.dropped,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "requests_per_key": dict(self.requests_per_key),
                "ok_per_key": dict(self.ok_per_key),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "mean_in_flight": area / span if span > 0 else float(self.in_flight),
                "busy_seconds": span,
                "last_body": self.last_body,
                "paths": dict(self.paths),
                "header_names": dict(self.header_names),
                "abandoned": self.abandoned,
                "cancelled": self.cancelled,
            }


class _Message(msgspec.Struct, kw_only=True):
    role: str = "assistant"
    content: str | None


class _Choice(msgspec.Struct, kw_only=True):
    index: int
    message: _Message | dict[str, Any]
    finish_reason: str = "stop"


class _Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class _Completion(msgspec.Struct, kw_only=True):
    """A chat completion as OpenAI's API answers it (these fields, in this order)."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[_Choice]
    usage: _Usage


class _Job(msgspec.Struct):
    """A chat completion admitted, waiting for its answer."""

    request: dict[str, Any]
    messages: list[dict[str, Any]]
    n: int
    key: str
    attempt: int
    settings: FakeSettings


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
        self._connections: set[_Connection] = set()
        self._deadlines = _Deadlines(self._answer_later)
        self.batches = FakeBatches(lambda: self.reply, lambda: self.settings.served_model)  # /v1/files, /v1/batches
        self._busy = 0  # completions holding a slot (``slots`` set)
        self._queued: deque[tuple[_Connection, _Job]] = deque()  # waiting for a slot
        self._trickles: set[asyncio.Task[None]] = set()  # answers being dripped

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

    def due_within(self, seconds: float) -> int:
        """How many chat completions waiting out their latency will be answered within ``seconds``.

        A test that raised the latency to hold new requests waits for this to reach 0: then
        every request still in flight is held, and every other one has been answered.
        """
        loop = self._loop
        if loop is None:
            return 0
        count: concurrent.futures.Future[int] = concurrent.futures.Future()

        def measure() -> None:
            limit = loop.time() + seconds
            count.set_result(sum(1 for due, _, _ in self._deadlines.queue if due <= limit))

        loop.call_soon_threadsafe(measure)
        return count.result(timeout=10)

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

    # -- connections ---------------------------------------------------------------------
    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for _ in self._deadlines.clear():
            self._stats.leave()
        for _ in self._queued:
            self._stats.leave()
        self._queued.clear()
        for task in list(self._trickles):
            task.cancel()
        for conn in list(self._connections):
            conn.transport.abort()
        await asyncio.sleep(0)  # the aborted transports close their sockets in this turn

    def _opened(self, conn: _Connection) -> None:
        self._connections.add(conn)
        with self._stats.lock:
            self._stats.connections += 1

    def _closed(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    # -- routing -------------------------------------------------------------------------
    def _handle(self, conn: _Connection, request: _Request) -> None:
        """Answer one request through ``conn.answer``: at once, or after the latency."""
        stats = self._stats
        with stats.lock:
            stats.requests += 1
            stats.paths[request.path] += 1
            for name, _ in request.headers:
                stats.header_names[name] += 1
        settings = self.settings
        if settings.redirect_to is not None and request.path not in ("/health", "/stats", "/config"):
            location = settings.redirect_to.rstrip("/") + request.path.removeprefix("/v1")
            conn.answer((settings.redirect_status, b"", [("location", location)]))
            return
        if request.path == "/v1/chat/completions" and request.method == "POST":
            refused = _refusal(request, settings)
            if refused is None:
                self._complete(conn, request.body, settings)
            else:
                conn.answer(refused)
            return
        conn.answer(self._answer(request))

    def _answer(self, request: _Request) -> Answer:
        """The answer to any request but a chat completion."""
        method, path = request.method, request.path
        if path == "/health":
            return 200, b'{"status":"ok"}', []
        if path == "/stats":
            if method == "POST":
                self.reset_stats()
            return 200, json.dumps(self.stats()).encode(), []
        if path == "/config" and method == "POST":
            try:
                settings = self.configure(**json.loads(request.body or b"{}"))
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc))
            return 200, msgspec.json.encode(settings), []
        settings = self.settings
        refused = _refusal(request, settings)
        if refused is not None:
            return refused
        if path.startswith(("/v1/files", "/v1/batches")):
            return self.batches.answer(method, path, request.body)
        if path == "/v1/models" and method == "GET":
            model = settings.served_model or "fake-model"
            return 200, json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode(), []
        if path in ("/props", "/slots") and method == "GET" and settings.slots is not None and settings.props:
            slots = [{"id": i, "is_processing": i < self._busy} for i in range(settings.slots)]
            body = {"total_slots": settings.slots, "default_generation_settings": {}} if path == "/props" else slots
            return 200, json.dumps(body).encode(), []
        return _error(404, f"no route for {method} {path}")

    def _complete(self, conn: _Connection, body: bytes, settings: FakeSettings) -> None:
        """Admit a chat completion and answer it after ``settings.latency``."""
        try:
            job = self._admit(body, settings)
        except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
            self._stats.enter()  # in flight for no time, like every request it answers
            self._stats.leave()
            conn.answer(_error(400, f"invalid chat completion request: {exc}"))
            return
        if settings.capacity is not None and self._stats.in_flight > settings.capacity:
            self._stats.settle(job.key, 429)
            conn.answer(_error(429, "over capacity", retry_after=settings.retry_after))
            return
        conn.open_job = True
        if settings.slots is not None:
            if self._busy >= settings.slots:
                self._queued.append((conn, job))
                return
            self._busy += 1
        if settings.latency:
            self._deadlines.add(settings.latency, conn, job)
        else:
            self._answer_later(conn, job, resume=False)

    def _admit(self, body: bytes, settings: FakeSettings) -> _Job:
        """Parse and count a chat completion; raises on a malformed one."""
        request = msgspec.json.decode(body)
        messages = request["messages"]
        n = int(request.get("n") or 1)
        if settings.max_n is not None:
            n = min(n, settings.max_n)
        key = content_key(messages)
        attempt = self._stats.admit(key, request)
        return _Job(request, messages, n, key, attempt, settings)

    def _answer_later(self, conn: _Connection, job: _Job, *, resume: bool = True) -> None:
        """Answer ``job`` on ``conn``, its latency past, and go on with the next request."""
        if job.settings.slots is not None:
            self._busy -= 1
            self._next_in_queue()
        try:
            answer = self._finish(job)
        except Exception:
            conn.transport.close()  # like a crashed handler
            raise
        if answer is not None and answer[0] == 200 and job.settings.trickles:
            conn.trickle(answer, job.settings)
            return
        conn.answer(answer)
        if resume:
            conn.resume()

    def _next_in_queue(self) -> None:
        """Give the free slot to the first queued completion whose client is still there."""
        while self._queued:
            conn, job = self._queued.popleft()
            if conn.transport.is_closing() or not conn.open_job:  # its client left (closed, or EOF)
                self._stats.cancel()  # llama.cpp's "cancel task"
                conn.open_job = False
                if not conn.transport.is_closing():
                    conn.transport.close()
                continue
            self._busy += 1
            if job.settings.latency:
                self._deadlines.add(job.settings.latency, conn, job)
            else:
                asyncio.get_running_loop().call_soon(self._answer_later, conn, job)
            return

    def _finish(self, job: _Job) -> Answer | None:
        """The answer to an admitted chat completion, counted."""
        try:
            answer = self._outcome(job)
        except BaseException:
            self._stats.leave()
            raise
        self._stats.settle(job.key, None if answer is None else answer[0], job.n if answer is not None else 0)
        return answer

    def _outcome(self, job: _Job) -> Answer | None:
        """A dropped connection (None), an injected error, or the choices."""
        settings = job.settings
        if not (settings.drop_rate or settings.error_rate or settings.malformed_rate):
            return self._choices(job)
        if settings.malformed_rate and _fraction(settings.seed, job.key, job.attempt, "malformed") < settings.malformed_rate:
            status, payload, extra = self._choices(job)
            return (status, payload[: len(payload) // 2], extra) if status == 200 else (status, payload, extra)
        coin = _fraction(settings.seed, job.key, job.attempt)
        if coin < settings.drop_rate:
            return None
        if coin < settings.drop_rate + settings.error_rate:
            if _fraction(settings.seed, job.key, job.attempt, "status") < 0.5:
                return _error(500, "injected server error")
            error = _error(429, "injected rate limit", retry_after=settings.retry_after)
            if settings.ratelimit_headers:
                error[2].extend(_quota_gone(settings.retry_after))
            return error
        return self._choices(job)

    def _choices(self, job: _Job) -> Answer:
        """The completion itself, or the reply function's :class:`ReplyError`."""
        try:
            replies = [self.reply(job.messages, i) for i in range(job.n)]
        except ReplyError as exc:
            status, body, extra = _error(exc.status, exc.message, retry_after=exc.retry_after)
            return status, body, extra + list(exc.headers.items())
        choices = [_choice(i, r) for i, r in enumerate(replies)]
        texts = [r if isinstance(r, str) else str(r.get("content") or "") for r in replies]
        prompt_tokens = _tokens(sum([len(str(m.get("content", ""))) for m in job.messages]))
        completion_tokens = sum([_tokens(len(t)) for t in texts])
        completion = _Completion(
            id=f"chatcmpl-{job.key}-{job.attempt}",
            created=int(time.time()),
            model=job.settings.served_model or job.request.get("model") or "fake-model",
            choices=choices,
            usage=_Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens),
        )
        return 200, msgspec.json.encode(completion), []


class _Request(msgspec.Struct):
    """One complete HTTP request, as the server routes it."""

    method: str
    path: str  # without the query and a trailing slash
    authorization: bytes  # the Authorization header's value, b"" when absent
    body: bytes
    keep_alive: bool  # False: close the connection after the answer
    headers: list[tuple[str, str]]  # (lower-cased name, value), in the order received


class _Connection(asyncio.Protocol):
    """One client connection: httptools parses its requests, answered one at a time, in order."""

    transport: asyncio.Transport  # from connection_made on

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.authorization = b""
        self.chunks: list[bytes] = []
        self.queue: deque[_Request] = deque()  # complete requests, not answered yet
        self.current: _Request | None = None  # the request being answered
        self.last = False  # read no more: close once the queue is answered
        self.paused = False  # reading paused while too many requests wait
        self.writable = True  # False while the transport's write buffer is full
        self.headers: list[tuple[str, str]] = []
        self.open_job = False  # a chat completion admitted on this connection is not fully answered
        self.trickling = False  # its answer is being written a byte at a time (or stalled)

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server._opened(self)

    def data_received(self, data: bytes) -> None:
        if self.last:
            return
        self._feed(data)
        if len(self.queue) > _MAX_QUEUED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self.resume()

    def eof_received(self) -> bool:
        self.last = True
        if self.open_job:  # the client left before its answer was written
            self._abandon()
            if self.trickling:
                self.transport.close()
                return True
        self.resume()
        return True  # keep the transport open for the answers still due

    def _abandon(self) -> None:
        self.open_job = False
        with self.server._stats.lock:
            self.server._stats.abandoned += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open_job:
            self._abandon()
        self.server._closed(self)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.resume()

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url, self.authorization, self.chunks, self.headers = b"", b"", [], []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))
        if len(name) == 13 and name.lower() == b"authorization":
            self.authorization = value.strip()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        method = parser.get_method().decode()
        path = self.url.decode("latin-1").split("?", 1)[0].rstrip("/")
        keep_alive = parser.should_keep_alive() and parser.get_http_version() == "1.1"  # h11 closes after 1.0
        request = _Request(method, path, self.authorization, b"".join(self.chunks), keep_alive, self.headers)
        self.queue.append(request)

    # -- requests and answers ------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:  # refused by answering as usual, like h11
            self._feed(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self.last = True  # answer the requests before the malformed one, then close

    def resume(self) -> None:
        """Answer the queued requests in order, one at a time; close after the last."""
        while self.current is None and self.writable:
            if not self.queue:
                if self.last:
                    self.transport.close()
                elif self.paused:
                    self.paused = False
                    self.transport.resume_reading()
                return
            self.current = self.queue.popleft()
            self.server._handle(self, self.current)

    def answer(self, answer: Answer | None) -> None:
        """Send ``answer`` to the request in hand (``None``: drop the connection without a word)."""
        transport, request = self.transport, self.current
        assert request is not None
        self.open_job = False
        if answer is None:
            transport.abort()
        elif not transport.is_closing():  # else the client left while we waited
            status, payload, extra = answer
            head = _head(status, len(payload), extra, close=not request.keep_alive)
            transport.write(head if request.method == "HEAD" else head + payload)
            if request.keep_alive:
                self.current = None
            else:
                transport.close()


    def trickle(self, answer: Answer, settings: FakeSettings) -> None:
        """Write a 200 answer a byte at a time (``drip``), stop after ``stall_after`` bytes, or
        never end (``endless``); the next request on this connection waits its turn."""
        status, payload, extra = answer
        length = 10**12 if settings.endless else len(payload)
        data = _head(status, length, extra, close=False) + payload
        if settings.stall_after is not None:
            data = data[: settings.stall_after]
        self.trickling = True
        task = asyncio.get_running_loop().create_task(self._trickle(data, settings))
        self.server._trickles.add(task)
        task.add_done_callback(self.server._trickles.discard)

    async def _trickle(self, data: bytes, settings: FakeSettings) -> None:
        transport = self.transport
        pause = settings.drip or (0.05 if settings.endless else 0.0)
        for i in range(len(data)):
            if transport.is_closing():
                return
            transport.write(data[i : i + 1])
            if pause:
                await asyncio.sleep(pause)
        while settings.endless and not transport.is_closing():
            transport.write(b" ")
            await asyncio.sleep(pause)
        if settings.stall_after is not None:
            return  # silence; the client has to give up
        if not transport.is_closing():
            self.open_job = self.trickling = False
            self.current = None
            self.resume()


class _Deadlines:
    """Calls of ``fire(conn, job)`` at set times, in one queue under one asyncio timer.

    Chat completions all wait the same latency, so they fall due in the order they came:
    a queue costs less than a timer each (asyncio keeps those in a heap).
    """

    def __init__(self, fire: Callable[[_Connection, _Job], None]) -> None:
        self.fire = fire
        self.queue: deque[tuple[float, _Connection, _Job]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.armed_for = math.inf  # when the timer rings

    def add(self, delay: float, conn: _Connection, job: _Job) -> None:
        """Call ``fire(conn, job)`` in ``delay`` seconds."""
        loop = asyncio.get_running_loop()
        entry = (loop.time() + delay, conn, job)
        queue = self.queue
        if queue and entry[0] < queue[-1][0]:  # the latency was shortened meanwhile
            bisect.insort(queue, entry, key=_due)
        else:
            queue.append(entry)
        if queue[0][0] < self.armed_for:
            self._arm(loop)

    def clear(self) -> list[_Job]:
        """Cancel every call; the jobs they were for."""
        self._disarm()
        jobs = [job for _, _, job in self.queue]
        self.queue.clear()
        return jobs

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.armed_for = None, math.inf

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the timer for the first call due, if any."""
        self._disarm()
        if self.queue:
            self.armed_for = self.queue[0][0]
            self.timer = loop.call_at(self.armed_for, self._ring, loop)

    def _ring(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer, self.armed_for = None, math.inf
        end = loop.time() + _CLOCK_RESOLUTION  # as asyncio decides what is due
        queue = self.queue
        while queue and queue[0][0] <= end:
            _, conn, job = queue.popleft()
            try:
                self.fire(conn, job)
            except Exception as exc:  # noqa: BLE001 - reported, and the others still answered
                loop.call_exception_handler({"message": "a fake server answer failed", "exception": exc})
        self._arm(loop)


def _due(entry: tuple[float, _Connection, _Job]) -> float:
    return entry[0]


class FakeServerProcess:
    """A :class:`FakeServer` in a child process (``python -m distilfn.testing.fakeserver``),
    so that the server's CPU does not compete with the client's for one interpreter.

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
        args = [sys.executable, "-m", "distilfn.testing.fakeserver", "--port", "0", "--print-url"]
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


def _refusal(request: _Request, settings: FakeSettings) -> Answer | None:
    """The 401 for a wrong API key, or the forced status; None to go on."""
    if settings.api_key is not None:
        given = request.authorization.decode("latin-1")
        if given != f"Bearer {settings.api_key}":
            # Like some real servers, echo what was sent: clients must not leak it further.
            message = f"Incorrect API key provided: {given.removeprefix('Bearer ')!r}."
            return _error(401, message, kind="invalid_api_key")
    if settings.status is not None:
        message = f"forced status {settings.status}"
        if settings.echo_headers:
            message += "; you sent " + ", ".join(f"{k}: {v}" for k, v in request.headers)
        return _error(settings.status, message)
    return None


def _choice(index: int, reply: str | dict[str, Any]) -> _Choice:
    """One choice of an answer: a text, or a message given as is (``finish_reason`` taken out)."""
    if isinstance(reply, str):
        return _Choice(index=index, message=_Message(content=reply))
    message = dict(reply)
    finish = message.pop("finish_reason", "stop")
    return _Choice(index=index, message={"role": "assistant", **message}, finish_reason=finish)


def _quota_gone(reset: float) -> list[tuple[str, str]]:
    """OpenAI's headers for a request budget used up until ``reset`` seconds from now."""
    return [
        ("x-ratelimit-limit-requests", "100"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", f"{reset:g}s"),
    ]


def _tokens(chars: int) -> int:
    """Tokens counted for ``chars`` characters: one per 4, rounded up."""
    return (chars + 3) // 4


def _head(status: int, length: int, extra: list[tuple[str, str]], *, close: bool) -> bytes:
    """The status line and headers of an answer, as h11 wrote them."""
    head = b"HTTP/1.1 %d \r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (status, length)
    for name, value in extra:
        head += f"{name}: {value}\r\n".encode("latin-1")
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n"


def _error(status: int, message: str, *, retry_after: float | None = None, kind: str | None = None) -> Answer:
    body = {"error": {"message": message, "type": kind or "fake_error", "code": status}}
    headers = [] if retry_after is None else [("retry-after", f"{retry_after:g}")]
    return status, json.dumps(body).encode(), headers


def _flag(text: str) -> bool:
    """``True``/``False`` as FakeServerProcess passes booleans."""
    return text.strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground; ``--print-url`` prints the base URL first."""
    parser = argparse.ArgumentParser(prog="python -m distilfn.testing.fakeserver", description=__doc__.split("\n")[0])
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
    parser.add_argument("--malformed-rate", type=float, default=0.0)
    parser.add_argument("--ratelimit-headers", type=_flag, default=False)
    parser.add_argument("--redirect-to", default=None)
    parser.add_argument("--redirect-status", type=int, default=307)
    parser.add_argument("--drip", type=float, default=0.0)
    parser.add_argument("--stall-after", type=int, default=None)
    parser.add_argument("--endless", type=_flag, default=False)
    parser.add_argument("--slots", type=int, default=None)
    parser.add_argument("--capacity", type=int, default=None)
    parser.add_argument("--props", type=_flag, default=True)
    parser.add_argument("--echo-headers", type=_flag, default=False)
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
        malformed_rate=args.malformed_rate,
        ratelimit_headers=args.ratelimit_headers,
        redirect_to=args.redirect_to,
        redirect_status=args.redirect_status,
        drip=args.drip,
        stall_after=args.stall_after,
        endless=args.endless,
        slots=args.slots,
        capacity=args.capacity,
        props=args.props,
        echo_headers=args.echo_headers,
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
