"""OpenAI-compatible chat-completion servers (OpenAI, vLLM, llama.cpp, SGLang, TGI, ...).

One HTTP request per chat (``n`` samples in one request when the server supports it),
many in flight at once over a keep-alive pool, retried with exponential backoff and full
jitter, spread over several endpoints, slowed down by 429s and optional client-side
request/token budgets. The API key never appears in a repr, identity, error or log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
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
from distilfn.errors import AuthenticationError, ModelError, TransportError
from distilfn.models._base import Generation
from distilfn.models._http_errors import is_retryable, status_error, transport_error
from distilfn.models._ratelimit import TokenBucket

__all__ = ["OpenAICompatible", "openai_compatible", "StructuredOutput"]

logger = logging.getLogger(__name__)

StructuredOutput = Literal["json_schema", "guided_json", "grammar"]
"""How a schema is sent: OpenAI ``response_format``, vLLM ``guided_json``, or the
top-level ``json_schema`` field llama.cpp's server turns into a grammar."""

_STRUCTURED_OUTPUTS = ("json_schema", "guided_json", "grammar", None)
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})


# -- wire format of an answer ----------------------------------------------------------------
class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None
    text: str | None = None  # some servers answer in the completions shape


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    model: str | None = None
    usage: _Usage | None = None


_decode_completion = msgspec.json.Decoder(_Completion).decode
_encode = msgspec.json.Encoder().encode


class _Secrets:
    """Request headers holding credentials, and a scrubber that hides their values."""

    __slots__ = ("headers", "_values")

    def __init__(self, headers: dict[str, str]):
        self.headers = headers
        values = [v for k, v in headers.items() if k.lower() in _SECRET_HEADERS and v]
        values += [v.split(" ", 1)[1] for v in values if " " in v]  # "Bearer <key>" -> "<key>"
        self._values = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text

    def __repr__(self) -> str:
        return "<hidden>"


class _Endpoint:
    """One base URL and what we know of its health."""

    __slots__ = ("url", "proxy", "in_flight", "failures", "down_until", "throttles", "cool_until")

    def __init__(self, url: str):
        self.url = url
        self.proxy: str | None = None  # read from the environment when a session is made
        self.in_flight = 0
        self.failures = 0  # consecutive transport/5xx failures (several endpoints only)
        self.down_until = 0.0
        self.throttles = 0  # consecutive 429s
        self.cool_until = 0.0

    def ready_at(self) -> float:
        return max(self.down_until, self.cool_until)


class _LoopState:
    """What belongs to one event loop: the HTTP session and the concurrency bound (the
    model's own ``max_concurrency``; none when it has none: the run's then governs).

    ``guard`` is an async generator parked at its ``yield``: the loop's
    ``shutdown_asyncgens`` (which ``asyncio.run`` calls before it closes the loop) finishes
    it, and that closes the session, so a caller who never awaits ``aclose`` leaves no
    open connection and no "Unclosed client session" warning behind.
    """

    __slots__ = ("loop", "session", "semaphore", "guard")

    def __init__(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession, size: int | None):
        self.loop = loop
        self.session = session
        self.semaphore: asyncio.Semaphore | contextlib.nullcontext[None] = (
            asyncio.Semaphore(size) if size is not None else contextlib.nullcontext()
        )
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
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_concurrency: int | None = None,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
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
        self.name = model
        self.api_key_env = api_key_env
        self.base_urls = tuple(u.rstrip("/") for u in urls)
        self.supports_n = supports_n
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.connect_timeout = connect_timeout
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
        self._endpoints = [_Endpoint(u) for u in self.base_urls]
        self._state: _LoopState | None = None
        self._auth_error: AuthenticationError | None = None
        self._jitter = random.Random()

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
        """Answer each chat with ``n`` samples; one concurrent request per chat (all at
        once when ``max_concurrency`` is None: the interpreter bounds how many it asks).

        Returns a :class:`Generation` or the ``ModelError`` each request ended with;
        raises :class:`~distilfn.errors.AuthenticationError` (the run must stop).
        """
        if n < 1:
            msg = f"`n` must be at least 1, got {n!r}"
            raise ValueError(msg)
        self._check_auth()
        state = self._loop_state()
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
        body = {"model": self.name, "messages": chat, **fields}
        if n > 1:
            body["n"] = n
        payload = _encode(body)
        cost = _token_estimate(chat, fields, n) if self._tokens is not None else 0.0
        error: ModelError | None = None
        for attempt in range(self.max_retries + 1):
            if error is not None:
                delay = self._retry_delay(attempt - 1, error)
                logger.debug("retrying a request to model %r in %.2fs after: %s", self.name, delay, error)
                await asyncio.sleep(delay)
            if self._requests is not None:
                await self._requests.acquire(1)
            if self._tokens is not None:
                await self._tokens.acquire(cost)
            async with state.semaphore:
                self._check_auth()
                endpoint = await self._pick_endpoint()
                if endpoint is None:
                    urls = ", ".join(self.base_urls)
                    return TransportError(f"no endpoint of model {self.name!r} came back up in time ({urls})")
                try:
                    result = await self._post(state.session, endpoint, payload)
                finally:
                    endpoint.in_flight -= 1
                self._note(endpoint, result)
            if isinstance(result, Generation):
                return result
            if isinstance(result, AuthenticationError):
                self._auth_error = result
                raise result
            if not is_retryable(result):
                return result
            error = result
        assert error is not None
        return _gave_up(error, self.max_retries + 1)

    async def _post(self, session: aiohttp.ClientSession, endpoint: _Endpoint, payload: bytes) -> Generation | ModelError:
        url = endpoint.url
        try:
            post = session.post(f"{url}/chat/completions", data=payload, proxy=endpoint.proxy, allow_redirects=False)
            async with post as response:
                content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return transport_error(exc, url=url, scrub=self._secrets.scrub)
        if response.status >= 300:
            text = content.decode("utf-8", errors="replace")
            return status_error(
                response.status, response.headers, text, url=url, reason=response.reason, scrub=self._secrets.scrub
            )
        try:
            completion = _decode_completion(content)
        except msgspec.DecodeError as exc:
            return ModelError(f"{url} answered {response.status} with a body that is not a chat completion: {exc}")
        choices = sorted(completion.choices, key=lambda c: c.index)
        texts = tuple((c.message.content if c.message is not None else c.text) or "" for c in choices)
        usage = completion.usage or _Usage()
        return Generation(
            texts=texts,
            model_name=completion.model or self.name,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
        )

    def _check_auth(self) -> None:
        """After one authentication failure, every later request fails the same way."""
        if self._auth_error is not None:
            error = self._auth_error
            raise AuthenticationError(str(error), status=error.status, retry_after=error.retry_after)

    # -- endpoints, back-off and cool-down ---------------------------------------------------
    async def _pick_endpoint(self) -> _Endpoint | None:
        """The healthy endpoint with the fewest requests in flight; waits while none is,
        for at most ``backoff_max * (max_retries + 1)`` seconds (then None)."""
        give_up = time.monotonic() + self.backoff_max * (self.max_retries + 1)
        while True:
            now = time.monotonic()
            best: _Endpoint | None = None
            for endpoint in self._endpoints:
                if now < endpoint.ready_at() or (endpoint.failures and endpoint.in_flight):
                    continue  # down, cooling down after a 429, or already being probed
                if best is None or endpoint.in_flight < best.in_flight:
                    best = endpoint
            if best is not None:
                best.in_flight += 1
                return best
            if now > give_up:
                return None
            wake = min(e.ready_at() for e in self._endpoints)
            await asyncio.sleep(min(max(wake - now, 0.005), self.backoff_max))

    def _note(self, endpoint: _Endpoint, result: Generation | ModelError) -> None:
        """Update the endpoint's health after an answer."""
        now = time.monotonic()
        if isinstance(result, Generation):
            endpoint.failures = endpoint.throttles = 0
            return
        if result.status == 429:
            endpoint.throttles += 1
            pause = result.retry_after
            if pause is not None:
                pause = min(pause, max(self.backoff_max, 60.0))
            else:
                pause = self._jitter.uniform(0.5, 1.0) * min(self.backoff_max, self.backoff_base * 2**endpoint.throttles)
            endpoint.cool_until = max(endpoint.cool_until, now + pause)
        elif len(self._endpoints) > 1 and _endpoint_fault(result):
            endpoint.failures += 1
            endpoint.down_until = now + min(self.backoff_max, self.backoff_base * 2 ** (endpoint.failures - 1))

    def _retry_delay(self, attempt: int, error: ModelError) -> float:
        """Retry-After when the server gave one (at most a minute, or ``backoff_max`` if
        longer); none when another endpoint can take it; else exponential backoff with
        full jitter."""
        if error.retry_after is not None:
            return min(error.retry_after, max(self.backoff_max, 60.0))
        if len(self._endpoints) > 1 and _endpoint_fault(error):
            now = time.monotonic()
            if any(not e.failures and e.ready_at() <= now for e in self._endpoints):
                return 0.0
        return self._jitter.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    # -- plumbing ------------------------------------------------------------------------
    def _loop_state(self) -> _LoopState:
        """The session for the running loop, made on first use and again when the loop changed."""
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            if state is not None:
                _abandon(state)
            # limit=0 is aiohttp's "no limit": with no cap of our own, the pool must not
            # impose one (the run's max_concurrency bounds the requests in flight)
            connector = aiohttp.TCPConnector(limit=self.max_concurrency or 0, limit_per_host=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=self.timeout)
            # trust_env=False: aiohttp would read the proxy settings and ~/.netrc in a worker
            # thread for every request; the proxy is read here once per endpoint instead.
            session = aiohttp.ClientSession(connector=connector, headers=self._secrets.headers, timeout=timeout)
            state = self._state = _LoopState(loop, session, self.max_concurrency)
            for endpoint in self._endpoints:
                endpoint.in_flight = 0
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
    timeout: float = 60.0,
    connect_timeout: float = 10.0,
    max_concurrency: int | None = None,
    max_retries: int = 6,
    backoff_base: float = 0.5,
    backoff_max: float = 30.0,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
    structured_output: StructuredOutput | None = "json_schema",
    extra_body: Mapping[str, Any] | None = None,
    supports_n: bool = True,
) -> OpenAICompatible:
    """A model served over the OpenAI chat-completions API at ``base_url`` (``.../v1``).

    Args:
        base_url: one base URL, or several serving the same model; each request goes to
            the healthy one with the fewest requests in flight.
        model: the served model's name (sent as ``model``).
        api_key: sent as ``Authorization: Bearer``; defaults to ``$OPENAI_API_KEY``
            (``$<api_key_env>``); none is sent when both are unset. Never shown in reprs,
            errors or logs, and never pickled.
        api_key_env: the environment variable the key is read from, here and in every
            process a pickled copy lands in (a Ray worker, a subprocess): the key itself
            never travels.
        headers: extra request headers.
        timeout, connect_timeout: seconds for a whole answer and for connecting.
        max_concurrency: None (the default): no cap of its own, so the run's
            ``max_concurrency`` decides how many requests are in flight (and the
            connection pool has no limit). An int: at most that many in flight across all
            calls (and pool size); a run with a higher ``max_concurrency`` says so once on
            stderr. Set it for a server with a fixed number of slots.
        max_retries: further attempts after transport errors, 408, 409, 429 and 5xx.
        backoff_base, backoff_max: exponential backoff with full jitter, in seconds;
            a ``Retry-After`` answer is honoured instead.
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
        max_concurrency=max_concurrency,
        max_retries=max_retries,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
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
