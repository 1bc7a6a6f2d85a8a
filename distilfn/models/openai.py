"""OpenAI-compatible chat-completion servers (OpenAI, vLLM, llama.cpp, SGLang, TGI, ...).

One HTTP request per chat (``n`` samples in one request when the server supports it),
many in flight at once over a keep-alive pool, spread over several endpoints.

- **Deadlines**: connecting, the first byte of the answer, the whole answer, and the
  longest silence between two reads are each bounded; a request past one is retried
  like a 5xx.
- **Back-pressure**: each endpoint has an adaptive in-flight limit (AIMD,
  :class:`~distilfn.models._ratelimit.AdaptiveLimit`): halved by a 429, a 503 or a
  timeout, grown back by successes. ``Retry-After`` holds back only the request that got
  it (and the whole endpoint only when its rate-limit headers say the quota is gone);
  in a pool that request goes at once to another endpoint with room. A llama.cpp
  server's slots (``/props``) are the starting limit.
- **Credentials** (the API key and every configured header value) go only to the
  configured hosts: redirects are never followed; they never appear in a repr,
  identity, error or log.
- **Only text is an answer**: ``content: null``, a refusal or a tool call is an error
  (never cached); a 200 that is not a chat completion is retried.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import random
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import msgspec

from distilfn._types import Chat
from distilfn.errors import AuthenticationError, ModelError, RequestRejectedError, ServerError, TransportError
from distilfn.models._base import EndpointStats, Generation, outside_run_slot
from distilfn.models._http_errors import is_retryable, quota_exhausted, status_error, transport_error
from distilfn.models._ratelimit import AdaptiveLimit, TokenBucket

__all__ = ["OpenAICompatible", "openai_compatible", "StructuredOutput", "refuse_userinfo"]

logger = logging.getLogger(__name__)

StructuredOutput = Literal["json_schema", "guided_json", "grammar"]
"""How a schema is sent: OpenAI ``response_format``, vLLM ``guided_json``, or the
top-level ``json_schema`` field llama.cpp's server turns into a grammar."""

_STRUCTURED_OUTPUTS = ("json_schema", "guided_json", "grammar", None)
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
_PLAIN_HEADERS = frozenset({"content-type", "accept", "user-agent"})  # values that are never secrets
_START_LIMIT = 16
"""In-flight requests per endpoint at first, when neither the user nor the server says."""
_MIN_RETRY_AFTER = 0.05
"""The shortest wait a ``Retry-After`` gets (``Retry-After: 0`` would make a busy loop)."""
_OVERLOAD_STATUSES = frozenset({429, 503, 529})


# -- wire format of an answer ----------------------------------------------------------------
class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[msgspec.Raw] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None
    text: str | None = None  # some servers answer in the completions shape
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Props(msgspec.Struct):
    total_slots: int | None = None


_decode_completion = msgspec.json.Decoder(_Completion).decode
_decode_props = msgspec.json.Decoder(_Props).decode
_encode = msgspec.json.Encoder().encode


class _Secrets:
    """Request headers, and a scrubber that hides the value of every one the user configured
    (and of the API key): any of them may be a credential."""

    __slots__ = ("headers", "_values")

    def __init__(self, headers: dict[str, str]):
        self.headers = headers
        values = [v for k, v in headers.items() if k.lower() not in _PLAIN_HEADERS and v]
        values += [v.split(" ", 1)[1] for v in values if " " in v]  # "Bearer <key>" -> "<key>"
        self._values = sorted({v.strip() for v in values if len(v.strip()) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text

    def __repr__(self) -> str:
        return "<hidden>"


class _Counts:
    """What one endpoint went through in the current session (see :class:`EndpointStats`)."""

    __slots__ = ("requests", "retries", "throttled", "timeouts", "errors", "clamped")

    def __init__(self) -> None:
        self.requests = self.retries = self.throttled = self.timeouts = self.errors = self.clamped = 0


class _Endpoint:
    """One base URL, its adaptive in-flight limit and what we know of its health."""

    __slots__ = ("url", "proxy", "limit", "start", "slots", "failures", "down_until", "quota_until", "counts")

    def __init__(self, url: str, start: int, ceiling: int | None):
        self.url = url
        self.proxy: str | None = None  # read from the environment when a session is made
        self.start = start
        self.limit = AdaptiveLimit(start, ceiling=ceiling)
        self.slots: int | None = None  # what the server said (llama.cpp /props), once asked
        self.failures = 0  # consecutive transport/5xx failures (several endpoints only)
        self.down_until = 0.0
        self.quota_until = 0.0  # its rate-limit headers said the quota is gone until then
        self.counts = _Counts()

    def blocked_until(self) -> float:
        return max(self.down_until, self.quota_until)

    def takes(self, now: float, avoid: Mapping[_Endpoint, float]) -> bool:
        """Whether a request that must stay away from ``avoid`` until then may go here now."""
        if self.blocked_until() > now or avoid.get(self, 0.0) > now:
            return False
        if self.failures and self.limit.in_flight:  # already being probed
            return False
        return self.limit.room()


Handoff = _Endpoint
"""An endpoint whose slot is taken for a request."""


class _LoopState:
    """What belongs to one event loop: the HTTP session, the model's own bound (its
    ``max_concurrency``; none when it has none: the run's then governs), the requests
    waiting for room on an endpoint, and the slot discovery.

    ``guard`` is an async generator parked at its ``yield``: the loop's
    ``shutdown_asyncgens`` (which ``asyncio.run`` calls before it closes the loop) finishes
    it, and that closes the session, so a caller who never awaits ``aclose`` leaves no
    open connection and no "Unclosed client session" warning behind.
    """

    __slots__ = ("loop", "session", "semaphore", "guard", "waiters", "discovery")

    def __init__(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession, size: int | None):
        self.loop = loop
        self.session = session
        self.semaphore: asyncio.Semaphore | contextlib.nullcontext[None] = (
            asyncio.Semaphore(size) if size is not None else contextlib.nullcontext()
        )
        self.waiters: collections.deque[tuple[asyncio.Future[Handoff | None], Mapping[_Endpoint, float]]] = (
            collections.deque()
        )
        self.discovery: asyncio.Future[None] | None = None
        self.guard = _close_with_loop(session)
        try:
            self.guard.asend(None).send(None)  # runs to the yield; the loop now tracks it
        except StopIteration:
            pass


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await session.close()


def _abandon(state: _LoopState) -> None:
    """Close, from outside its loop, the session of a loop that is no longer running.

    A stopped or closed loop will not run the closing: what aiohttp can do at once
    (mark the pool closed, ask each connection to close) is done, the rest is dropped.
    """
    closing = state.session.close()
    try:
        closing.send(None)
    except StopIteration:
        return
    closing.close()


def _wake(future: asyncio.Future[Handoff | None]) -> None:
    if not future.done():
        future.set_result(None)


def refuse_userinfo(url: str, setting: str = "base_url") -> None:
    """Raise ValueError when ``url`` holds credentials (``user:key@host``), without showing them.

    >>> refuse_userinfo("http://127.0.0.1:8000/v1")
    >>> refuse_userinfo("http://me:sk-secret@host/v1")
    Traceback (most recent call last):
    ...
    ValueError: `base_url` must not hold credentials (user:password@): pass the key as api_key= or in OPENAI_API_KEY; got 'http://***@host/v1'
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        shown = f"{parts.scheme}://***@{parts.netloc.rsplit('@', 1)[1]}{parts.path}"
        msg = (
            f"`{setting}` must not hold credentials (user:password@): pass the key as api_key= "
            f"or in OPENAI_API_KEY; got {shown!r}"
        )
        raise ValueError(msg)


class OpenAICompatible:
    """A chat-completion server (or several serving the same model) as a distilfn model.

    See :func:`openai_compatible` for the options. The HTTP session (aiohttp) belongs to
    the event loop that made it: a call from another loop makes a new one. It is closed by
    :meth:`aclose`, or when ``asyncio.run`` shuts its loop down.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        model: str,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        headers: Mapping[str, str] | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        first_byte_timeout: float | None = None,
        stall_timeout: float = 60.0,
        max_concurrency: int | None = None,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        structured_output: StructuredOutput | None = "json_schema",
        extra_body: Mapping[str, Any] | None = None,
        supports_n: bool = True,
    ):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            msg = "`base_url` needs at least one URL, got an empty list"
            raise ValueError(msg)
        for url in urls:
            if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
                msg = f"`base_url` must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {url!r}"
                raise ValueError(msg)
            refuse_userinfo(url)
        if not model or not isinstance(model, str):
            msg = f"`model` must be the served model's name, got {model!r}"
            raise ValueError(msg)
        if structured_output not in _STRUCTURED_OUTPUTS:
            msg = f"`structured_output` must be one of {_STRUCTURED_OUTPUTS}, got {structured_output!r}"
            raise ValueError(msg)
        if max_concurrency is not None and (not isinstance(max_concurrency, int) or max_concurrency < 1):
            msg = f"`max_concurrency` must be None or an int >= 1, got {max_concurrency!r}"
            raise ValueError(msg)
        if max_retries < 0:
            msg = f"`max_retries` must be >= 0, got {max_retries!r}"
            raise ValueError(msg)
        if not isinstance(api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
            msg = f"`api_key_env` must name an environment variable such as 'OPENAI_API_KEY', got {api_key_env!r}"
            raise ValueError(msg)
        for option, value in (("timeout", timeout), ("connect_timeout", connect_timeout),
                              ("first_byte_timeout", first_byte_timeout), ("stall_timeout", stall_timeout),
                              ("max_retry_after", max_retry_after)):
            if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
                msg = f"`{option}` must be a positive number of seconds, got {value!r}"
                raise ValueError(msg)
        self.name = model
        self.api_key_env = api_key_env
        self.base_urls = tuple(u.rstrip("/") for u in urls)
        self.supports_n = supports_n
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout if first_byte_timeout is not None else timeout
        self.stall_timeout = stall_timeout
        self.structured_output = structured_output
        self.extra_body = dict(extra_body or {})
        self.identity = f"openai_compatible:{model}@{','.join(sorted(self.base_urls))}"
        if self.extra_body:
            digest = hashlib.blake2b(json.dumps(self.extra_body, sort_keys=True, default=repr).encode(), digest_size=8)
            self.identity += f"#extra_body={digest.hexdigest()}"
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        all_headers = {"content-type": "application/json", **dict(headers or {})}
        if key:
            all_headers = {k: v for k, v in all_headers.items() if k.lower() != "authorization"}
            all_headers["authorization"] = f"Bearer {key}"
        self._secrets = _Secrets(all_headers)
        self._requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self._tokens = TokenBucket(tokens_per_minute, burst=tokens_per_minute / 60) if tokens_per_minute else None
        start = max_concurrency or _START_LIMIT
        self._endpoints = [_Endpoint(u, start, max_concurrency) for u in self.base_urls]
        self._discovered = max_concurrency is not None  # the user said: no need to ask the server
        self._state: _LoopState | None = None
        self._auth_error: AuthenticationError | None = None
        self._jitter = random.Random()
        self._warned: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        urls = self.base_urls[0] if len(self.base_urls) == 1 else list(self.base_urls)
        return f"OpenAICompatible({urls!r}, model={self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        """The spec travels (to a worker process), not its sessions nor its credentials:
        the copy reads its API key from ``$<api_key_env>`` where it lands."""
        state = dict(self.__dict__)
        state["_state"] = None
        state["_auth_error"] = None
        state["_secrets"] = {k: v for k, v in self._secrets.headers.items() if k.lower() not in _SECRET_HEADERS}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        headers = state.pop("_secrets")
        self.__dict__.update(state)
        key = os.environ.get(state.get("api_key_env", "OPENAI_API_KEY"))
        self._secrets = _Secrets({**headers, "authorization": f"Bearer {key}"} if key else headers)

    # -- the model protocol ------------------------------------------------------------
    async def agenerate(
        self, chats: Sequence[Chat], *, n: int = 1, schema: Any = None, **params: Any
    ) -> list[Generation | BaseException]:
        """Answer each chat with ``n`` samples; one concurrent request per chat (as many in
        flight as each endpoint's adaptive limit allows).

        Returns a :class:`Generation` or the ``ModelError`` each request ended with;
        raises :class:`~distilfn.errors.AuthenticationError` (the run must stop).
        """
        if n < 1:
            msg = f"`n` must be at least 1, got {n!r}"
            raise ValueError(msg)
        self._check_auth()
        state = self._loop_state()
        if not self._discovered:
            await self._discover_slots(state)
        fields = self._body_fields(schema, params)
        if len(chats) == 1:
            return [await self._generate(state, chats[0], n, fields)]
        results = await asyncio.gather(*(self._generate(state, c, n, fields) for c in chats), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ModelError):
                raise result
        for result in results:
            if isinstance(result, AuthenticationError):
                raise result
        return list(results)

    def endpoint_stats(self) -> list[EndpointStats]:
        """Per endpoint: requests, retries, 429s, timeouts, other errors, the concurrency
        reached and the adaptive limit, since the current session opened (one run)."""
        return [
            EndpointStats(
                endpoint=e.url,
                requests=e.counts.requests,
                retries=e.counts.retries,
                throttled=e.counts.throttled,
                timeouts=e.counts.timeouts,
                errors=e.counts.errors,
                max_in_flight=e.limit.peak,
                limit=int(e.limit.value),
                limit_cuts=e.limit.cuts,
                retry_after_clamped=e.counts.clamped,
                slots=e.slots,
            )
            for e in self._endpoints
        ]

    async def aclose(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        state, self._state = self._state, None
        self._auth_error = None
        if state is not None:
            if state.loop is asyncio.get_running_loop():
                await state.guard.aclose()
            else:
                _abandon(state)

    # -- one chat ------------------------------------------------------------------------
    async def _generate(self, state: _LoopState, chat: Chat, n: int, fields: dict[str, Any]) -> Generation | ModelError:
        if n > 1 and not self.supports_n:
            parts = await asyncio.gather(*(self._request(state, chat, 1, fields) for _ in range(n)))
            return _merge(parts, self.name)
        parts: list[Generation | ModelError] = []
        missing = n
        while missing > 0:  # top up when a server returns fewer choices than asked
            part = await self._request(state, chat, missing, fields)
            if isinstance(part, ModelError):
                return part
            if not part.texts:
                return ModelError(f"{self.base_urls[0]} answered with no choices for model {self.name!r}")
            parts.append(part)
            missing -= len(part.texts)
        return _merge(parts, self.name)

    async def _request(self, state: _LoopState, chat: Chat, n: int, fields: dict[str, Any]) -> Generation | ModelError:
        """One request, retried: after a failure it stays away from the endpoint that failed
        for the wait that endpoint asked for (or the backoff), and goes to another one with
        room at once when there is one."""
        body = {"model": self.name, "messages": chat, **fields}
        if n > 1:
            body["n"] = n
        payload = _encode(body)
        cost = _token_estimate(chat, fields, n) if self._tokens is not None else 0.0
        error: ModelError | None = None
        avoid: dict[_Endpoint, float] = {}
        for attempt in range(self.max_retries + 1):
            if avoid:
                await self._sit_out(avoid)
            if self._requests is not None:
                await self._requests.acquire(1)
            if self._tokens is not None:
                await self._tokens.acquire(cost)
            async with state.semaphore:
                self._check_auth()
                taken = await self._take(state, avoid)
                if taken is None:
                    urls = ", ".join(self.base_urls)
                    return TransportError(f"no endpoint of model {self.name!r} came back up in time ({urls})")
                endpoint = taken
                endpoint.counts.requests += 1
                if attempt:
                    endpoint.counts.retries += 1
                result: Generation | ModelError | None = None
                sent = time.monotonic()
                try:
                    result = await self._post(state.session, endpoint, payload)
                finally:
                    wait = self._settle(state, endpoint, result, attempt, time.monotonic() - sent)
            if isinstance(result, Generation):
                return result
            assert result is not None
            if isinstance(result, AuthenticationError):
                self._auth_error = result
                raise result
            if not is_retryable(result):
                return result
            error = result
            avoid[endpoint] = time.monotonic() + wait
            if attempt < self.max_retries:
                logger.debug("retrying a request to model %r (%.2fs away from %s) after: %s",
                             self.name, wait, endpoint.url, error)
        assert error is not None
        return _gave_up(error, self.max_retries + 1)

    async def _post(self, session: aiohttp.ClientSession, endpoint: _Endpoint, payload: bytes) -> Generation | ModelError:
        """One POST under the deadlines: the first byte within ``first_byte_timeout``, no
        silence longer than ``stall_timeout`` after it, the whole answer within ``timeout``."""
        url = endpoint.url
        clock = asyncio.get_running_loop().time
        begun = clock()
        whole = begun + self.timeout
        phase = "first byte"
        try:
            async with asyncio.timeout_at(min(whole, begun + self.first_byte_timeout)) as deadline:
                post = session.post(f"{url}/chat/completions", data=payload, proxy=endpoint.proxy,
                                    allow_redirects=False)
                async with post as response:
                    phase = "stall"
                    stream = response.content
                    chunks = []
                    while True:
                        deadline.reschedule(min(whole, clock() + self.stall_timeout))
                        chunk = await stream.readany()
                        if not chunk:
                            break
                        chunks.append(chunk)
                    content = b"".join(chunks)
        except aiohttp.ClientError as exc:  # before TimeoutError: aiohttp's connect timeout is both
            return transport_error(exc, url=url, scrub=self._secrets.scrub)
        except TimeoutError:
            if clock() >= whole - 1e-3:
                why = f"the whole answer took longer than timeout={self.timeout:g}s"
            elif phase == "first byte":
                why = f"no answer began within first_byte_timeout={self.first_byte_timeout:g}s"
            else:
                why = f"the answer stalled: nothing for stall_timeout={self.stall_timeout:g}s"
            return TransportError(f"request to {url} timed out: {why}")
        status = response.status
        if 300 <= status < 400:
            where = urlsplit(response.headers.get("location", ""))
            target = f"{where.scheme}://{where.hostname}" if where.hostname else "the same host"
            return RequestRejectedError(
                f"{url} answered {status} (a redirect to {target}): redirects are not followed, so that credentials "
                "stay with the configured host; set base_url to the final URL",
                status=status,
            )
        if status >= 400:
            text = content.decode("utf-8", errors="replace")
            error = status_error(status, response.headers, text, url=url, reason=response.reason,
                                 scrub=self._secrets.scrub)
            error.quota_gone = quota_exhausted(response.headers)  # type: ignore[attr-defined]
            return error
        return self._read_completion(url, status, content)

    def _read_completion(self, url: str, status: int, content: bytes) -> Generation | ModelError:
        """The texts of a 2xx answer; retried (ServerError) when it is no chat completion, an
        error naming ``finish_reason`` when a choice holds no text."""
        try:
            completion = _decode_completion(content)
        except msgspec.DecodeError as exc:
            return ServerError(f"{url} answered {status} with a body that is not a chat completion ({exc})")
        if completion.choices is None:
            return ServerError(f"{url} answered {status} with no `choices` in its body")
        choices = sorted(completion.choices, key=lambda c: c.index)
        texts = []
        for c in choices:
            message = c.message
            text = message.content if message is not None else c.text
            refusal = message.refusal if message is not None else None
            calls = len(message.tool_calls or ()) if message is not None else 0
            if text is None or refusal or (calls and not text):
                detail = f"finish_reason={c.finish_reason!r}"
                if refusal:
                    detail += f", refusal={self._secrets.scrub(refusal)[:300]!r}"
                if calls:
                    detail += f", {calls} tool call{'s' if calls > 1 else ''}"
                return ModelError(f"{url} answered without text for model {self.name!r} ({detail})")
            texts.append(text)
        usage = completion.usage or _Usage()
        return Generation(
            texts=tuple(texts),
            model_name=completion.model or self.name,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
        )

    def _check_auth(self) -> None:
        """After one authentication failure, every later request fails the same way."""
        if self._auth_error is not None:
            error = self._auth_error
            raise AuthenticationError(str(error), status=error.status, retry_after=error.retry_after)

    # -- endpoints: room, back-pressure and health -------------------------------------------
    async def _take(self, state: _LoopState, avoid: Mapping[_Endpoint, float]) -> Handoff | None:
        """A slot on the endpoint with room and the fewest requests in flight, staying away
        from ``avoid`` (this request's endpoints, until then). Waits, first come first
        served, for a request to end or a wait to pass; None when every endpoint stayed
        down for ``backoff_max * (max_retries + 1)`` seconds."""
        give_up = time.monotonic() + self.backoff_max * (self.max_retries + 1)
        first = True
        while True:
            now = time.monotonic()
            best: _Endpoint | None = None
            for endpoint in self._endpoints:
                if endpoint.takes(now, avoid) and (best is None or endpoint.limit.in_flight < best.limit.in_flight):
                    best = endpoint
            # first come, first served: a new request does not pass one already waiting for that room
            if best is not None and not (first and any(not f.done() and best.takes(now, a) for f, a in state.waiters)):
                best.limit.acquire()
                return best
            first = False
            times = [t for e in self._endpoints for t in (e.blocked_until(), avoid.get(e, 0.0)) if t > now]
            if now > give_up and all(e.blocked_until() > now for e in self._endpoints):
                return None
            future: asyncio.Future[Handoff | None] = state.loop.create_future()
            waiter = (future, avoid)
            state.waiters.append(waiter)
            # a waiter looks again at least once a second: room can also come back by a cut
            # ending or a quota refilling, which no request's end announces
            timer = state.loop.call_later(min(min(times, default=now + 1.0) - now, 1.0), _wake, future)
            try:
                handed = await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled() and future.result() is not None:
                    self._release(state, future.result())  # type: ignore[arg-type]
                raise
            finally:
                timer.cancel()
                with contextlib.suppress(ValueError):
                    state.waiters.remove(waiter)
            if handed is not None:
                return handed

    async def _sit_out(self, avoid: Mapping[_Endpoint, float]) -> None:
        """Wait, holding no slot (the run's, the model's), until this request may go back to
        at least one endpoint: at once in a pool where another endpoint can take it."""
        delay = min(avoid.get(e, 0.0) for e in self._endpoints) - time.monotonic()
        if delay > 0:
            async with outside_run_slot():
                await asyncio.sleep(delay)

    def _release(self, state: _LoopState, endpoint: _Endpoint, *, ok: bool = False, overload: bool = False,
                 latency: float | None = None) -> None:
        """Give a slot back, then hand the room on to the first waiters that may use it."""
        endpoint.limit.release(ok=ok, overload=overload, latency=latency)
        waiters = state.waiters
        if not waiters:
            return
        now = time.monotonic()
        while endpoint.takes(now, {}):
            for i, (future, avoid) in enumerate(waiters):
                if not future.done() and endpoint.takes(now, avoid):
                    del waiters[i]
                    endpoint.limit.acquire()
                    future.set_result(endpoint)
                    break
            else:
                return

    def _settle(self, state: _LoopState, endpoint: _Endpoint, result: Generation | ModelError | None,
                attempt: int, latency: float) -> float:
        """Account for an answer (None: the request was cancelled): the endpoint's limit and
        health, its counts; the seconds this request must stay away from it."""
        if result is None:
            self._release(state, endpoint)
            return 0.0
        if isinstance(result, Generation):
            endpoint.failures = 0
            self._release(state, endpoint, ok=True, latency=latency)
            return 0.0
        now = time.monotonic()
        counts = endpoint.counts
        timed_out = isinstance(result, TransportError) and "timed out" in str(result)
        if result.status == 429:
            counts.throttled += 1
        elif timed_out:
            counts.timeouts += 1
        else:
            counts.errors += 1
        overload = result.status in _OVERLOAD_STATUSES or timed_out
        if len(self._endpoints) > 1 and _endpoint_fault(result) and result.status not in _OVERLOAD_STATUSES:
            endpoint.failures += 1
            endpoint.down_until = now + min(self.backoff_max, self.backoff_base * 2 ** (endpoint.failures - 1))
        wait = self._wait(endpoint, result, attempt)
        if getattr(result, "quota_gone", False):
            endpoint.quota_until = max(endpoint.quota_until, now + wait)
        self._release(state, endpoint, overload=overload)
        return wait

    def _retry_delay(self, attempt: int, error: ModelError) -> float:
        """The wait before attempt ``attempt + 1`` of a call outside the chat path (the batch
        backend's file and batch calls, to the first endpoint): as :meth:`_wait`."""
        return self._wait(self._endpoints[0], error, attempt)

    def _wait(self, endpoint: _Endpoint, error: ModelError, attempt: int) -> float:
        """Retry-After when the server gave one (raised to a minimum, capped at
        ``max_retry_after``: both counted and said once; plus up to 20% so that requests
        told alike do not come back in step); else exponential backoff with full jitter."""
        if error.retry_after is None:
            return self._jitter.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        asked = error.retry_after
        wait = min(max(asked, _MIN_RETRY_AFTER), self.max_retry_after)
        jitter = wait * self._jitter.uniform(0.0, 0.2)  # so that requests told alike do not come back in step
        if wait != asked:
            endpoint.counts.clamped += 1
            kind = "short" if asked < wait else "long"
            if (endpoint.url, kind) not in self._warned:
                self._warned.add((endpoint.url, kind))
                logger.warning("%s asked to wait %gs (Retry-After); waiting %gs instead (%s)", endpoint.url, asked,
                               wait, "the minimum" if kind == "short" else "max_retry_after")
        return wait + jitter

    async def _discover_slots(self, state: _LoopState) -> None:
        """Ask each endpoint once how many slots it has (llama.cpp ``/props``, else ``/slots``)
        and start its limit there; servers that do not say keep the moderate start."""
        if state.discovery is None:
            state.discovery = state.loop.create_future()
            try:
                found = await asyncio.gather(*(self._ask_slots(state.session, e) for e in self._endpoints))
                for endpoint, slots in zip(self._endpoints, found, strict=True):
                    if slots is not None:
                        endpoint.slots = slots
                        endpoint.limit = AdaptiveLimit(slots, ceiling=slots)
                        endpoint.start = slots
                self._discovered = True
            finally:
                state.discovery.set_result(None)
        else:
            await state.discovery

    async def _ask_slots(self, session: aiohttp.ClientSession, endpoint: _Endpoint) -> int | None:
        root = endpoint.url.removesuffix("/v1")
        for path in ("/props", "/slots"):
            try:
                async with asyncio.timeout(min(self.connect_timeout, 5.0)):
                    async with session.get(root + path, proxy=endpoint.proxy, allow_redirects=False) as response:
                        if response.status != 200:
                            continue
                        body = await response.read()
                slots = len(json.loads(body)) if path == "/slots" else _decode_props(body).total_slots
            except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, msgspec.DecodeError):
                continue
            if isinstance(slots, int) and slots > 0:
                return slots
        return None

    # -- plumbing ------------------------------------------------------------------------
    def _loop_state(self) -> _LoopState:
        """The session for the running loop, made on first use and again when the loop changed."""
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            if state is not None:
                _abandon(state)
            # limit=0 is aiohttp's "no limit": with no cap of our own, the pool must not
            # impose one (the run's max_concurrency and the adaptive limits bound the requests)
            connector = aiohttp.TCPConnector(limit=self.max_concurrency or 0, limit_per_host=0)
            # the deadlines past connecting are the backend's own (see _post)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=None)
            # trust_env=False: aiohttp would read the proxy settings and ~/.netrc in a worker
            # thread for every request; the proxy is read here once per endpoint instead.
            session = aiohttp.ClientSession(connector=connector, headers=self._secrets.headers, timeout=timeout)
            state = self._state = _LoopState(loop, session, self.max_concurrency)
            for endpoint in self._endpoints:
                endpoint.limit.reset(endpoint.start)
                endpoint.limit.peak = endpoint.limit.cuts = 0
                endpoint.counts = _Counts()
                endpoint.failures = 0
                endpoint.down_until = endpoint.quota_until = 0.0
                endpoint.proxy = _env_proxy(endpoint.url)
        return state

    def _body_fields(self, schema: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        fields = {**self.extra_body, **{k: v for k, v in params.items() if v is not None}}
        fields.pop("n", None)
        if schema is not None and self.structured_output is not None:
            name, json_schema = _json_schema(schema)
            if self.structured_output == "json_schema":
                fields["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": json_schema, "strict": True},
                }
            elif self.structured_output == "guided_json":
                fields["guided_json"] = json_schema
            else:
                fields["json_schema"] = json_schema
        return fields


def openai_compatible(
    base_url: str | Sequence[str],
    *,
    model: str,
    api_key: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    headers: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    connect_timeout: float = 10.0,
    first_byte_timeout: float | None = None,
    stall_timeout: float = 60.0,
    max_concurrency: int | None = None,
    max_retries: int = 6,
    backoff_base: float = 0.5,
    backoff_max: float = 30.0,
    max_retry_after: float = 60.0,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
    structured_output: StructuredOutput | None = "json_schema",
    extra_body: Mapping[str, Any] | None = None,
    supports_n: bool = True,
) -> OpenAICompatible:
    """A model served over the OpenAI chat-completions API at ``base_url`` (``.../v1``).

    Args:
        base_url: one base URL, or several serving the same model; each request goes to
            the healthy one with room and the fewest requests in flight. A URL with
            credentials in it (``user:key@``) is refused: pass the key as ``api_key``.
        model: the served model's name (sent as ``model``).
        api_key: sent as ``Authorization: Bearer``; defaults to ``$OPENAI_API_KEY``
            (``$<api_key_env>``); ``""`` (or neither set) sends none, as a loopback server
            usually needs. Never shown in reprs, errors or logs, and never pickled.
        api_key_env: the environment variable the key is read from, here and in every
            process a pickled copy lands in (a Ray worker, a subprocess): the key itself
            never travels.
        headers: extra request headers. Every value given here counts as a secret: it
            is scrubbed from errors and logs like the key.
        timeout: seconds for the whole answer (default 10 minutes).
        connect_timeout: seconds to connect.
        first_byte_timeout: seconds until the answer starts (a non-streamed answer
            starts when it is generated); None: ``timeout``.
        stall_timeout: the longest silence, in seconds, once the answer has started.
        max_concurrency: None (the default): no cap of its own; each endpoint's
            adaptive limit starts at the server's slots when it says (llama.cpp
            ``/props``), else at 16, and grows while answers come back, so the run's
            ``max_concurrency`` decides at most. An int: at most that many in flight
            across all calls (and pool size), the limit starts there; a run with a
            higher ``max_concurrency`` says so once on stderr. Set it for a server with
            a fixed number of slots.
        max_retries: further attempts after transport errors and timeouts, 408, 409,
            429, 5xx and unreadable 200 answers.
        backoff_base, backoff_max: exponential backoff with full jitter, in seconds;
            a ``Retry-After`` answer is honoured instead, for that request.
        max_retry_after: the longest ``Retry-After`` honoured (longer ones are capped,
            counted and said once in the log; ``0`` is raised to 0.05 s).
        requests_per_minute, tokens_per_minute: client-side budgets (tokens estimated as
            prompt characters / 4 + ``max_tokens`` x n).
        structured_output: how a task's schema is sent: ``"json_schema"`` (OpenAI
            ``response_format``), ``"guided_json"`` (vLLM), ``"grammar"`` (llama.cpp's
            top-level ``json_schema``), or None to send no schema.
        extra_body: fields merged into every request body (e.g. vLLM's ``top_k``).
        supports_n: False for servers that ignore ``n``: n requests are sent instead.

    >>> m = openai_compatible("http://127.0.0.1:8000/v1", model="qwen", api_key="sk-secret")
    >>> m
    OpenAICompatible('http://127.0.0.1:8000/v1', model='qwen')
    >>> m.identity
    'openai_compatible:qwen@http://127.0.0.1:8000/v1'
    """
    return OpenAICompatible(
        base_url,
        model=model,
        api_key=api_key,
        api_key_env=api_key_env,
        headers=headers,
        timeout=timeout,
        connect_timeout=connect_timeout,
        first_byte_timeout=first_byte_timeout,
        stall_timeout=stall_timeout,
        max_concurrency=max_concurrency,
        max_retries=max_retries,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        max_retry_after=max_retry_after,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        structured_output=structured_output,
        extra_body=extra_body,
        supports_n=supports_n,
    )


def _env_proxy(url: str) -> str | None:
    """The proxy that ``HTTP(S)_PROXY`` / ``ALL_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts it.

    >>> _env_proxy("http://127.0.0.1:8000/v1") is None or "proxy set in this environment"
    True
    """
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def _endpoint_fault(error: ModelError) -> bool:
    """A failure that says something about the endpoint: transport error or 5xx."""
    return error.status is None or error.status >= 500


def _merge(parts: Sequence[Generation | ModelError], name: str) -> Generation | ModelError:
    for part in parts:
        if isinstance(part, ModelError):
            return part
    gens = [p for p in parts if isinstance(p, Generation)]
    if len(gens) == 1:
        return gens[0]
    return Generation(
        texts=tuple(t for g in gens for t in g.texts),
        model_name=gens[0].model_name or name,
        input_tokens=_sum(g.input_tokens for g in gens),
        output_tokens=_sum(g.output_tokens for g in gens),
    )


def _sum(values: Any) -> int | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _gave_up(error: ModelError, attempts: int) -> ModelError:
    final = type(error)(f"{error} (gave up after {attempts} attempts)", status=error.status, retry_after=error.retry_after)
    final.__cause__ = error.__cause__
    return final


def _token_estimate(chat: Chat, fields: Mapping[str, Any], n: int) -> float:
    """Prompt characters / 4 plus the completion budget for ``n`` samples."""
    chars = sum(len(m["content"]) if isinstance(m.get("content"), str) else 0 for m in chat)
    budget = fields.get("max_tokens") or fields.get("max_completion_tokens") or 0
    return chars / 4 + budget * n


def _json_schema(schema: Any) -> tuple[str, dict[str, Any]]:
    """``(name, JSON schema)`` for a msgspec type or a ready JSON-schema dict."""
    if isinstance(schema, Mapping):
        return _schema_name(str(schema.get("title", "output"))), dict(schema)
    return _struct_schema(schema)


@functools.lru_cache(maxsize=256)
def _struct_schema(schema: Any) -> tuple[str, dict[str, Any]]:
    raw = msgspec.json.schema(schema)
    ref, defs = raw.get("$ref"), raw.get("$defs", {})
    name = getattr(schema, "__name__", "output")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
        # Put the root object inline: some servers want an object at the top, not a $ref.
        root = dict(defs[ref[8:]])
        if len(defs) > 1 or '"$ref"' in json.dumps(root):
            root["$defs"] = defs
        raw = root
    return _schema_name(name), raw


def _schema_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"
