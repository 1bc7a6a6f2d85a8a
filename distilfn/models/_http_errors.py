"""Turn HTTP failures into distilfn errors, and read how long a server asks us to wait.

Non-2xx answers go through :func:`status_error`, client exceptions (refused, dropped or
timed-out connections) through :func:`transport_error`; nothing else in the backend looks
at exception types or status codes to pick an error class.
"""

from __future__ import annotations

import email.utils
import http
import json
import math
import re
import time
from collections.abc import Callable, Mapping

import aiohttp

from distilfn.errors import (
    AuthenticationError,
    ModelError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
    TransportError,
)

__all__ = [
    "is_retryable",
    "parse_duration",
    "quota_exhausted",
    "retry_after_seconds",
    "server_message",
    "status_error",
    "transport_error",
]

Scrub = Callable[[str], str]

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def status_error(
    status: int, headers: Mapping[str, str], body: str, *, url: str, reason: str | None = None, scrub: Scrub = str
) -> ModelError:
    """The distilfn error for a non-2xx answer, with status and ``retry_after`` kept.

    ``scrub`` removes secrets from the server's message (a server may echo a credential).

    >>> error = status_error(429, {"retry-after": "2"}, "", url="http://h/v1")
    >>> type(error).__name__, error.status, error.retry_after
    ('RateLimitError', 429, 2.0)
    >>> str(status_error(400, {}, '{"error": {"message": "too long"}}', url="http://h/v1"))
    'http://h/v1 answered 400 Bad Request: too long'
    """
    detail = scrub(server_message(body))
    reason = reason or _reason(status)
    message = f"{url} answered {status} {reason}: {detail}" if reason else f"{url} answered {status}: {detail}"
    retry_after = retry_after_seconds(headers, rate_limited=status == 429)
    cls: type[ModelError]
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 429:
        cls = RateLimitError
    elif status == 408:
        cls = TransportError
    elif status >= 500 or status == 409:
        cls = ServerError
    elif 400 <= status < 500:
        cls = RequestRejectedError
    else:
        cls = ModelError
    return cls(message, status=status, retry_after=retry_after)


def transport_error(exc: BaseException, *, url: str, scrub: Scrub = str) -> ModelError:
    """The distilfn error for a request that got no (complete) answer.

    The client exception is kept as ``__cause__``, except a response error, whose request
    headers may hold a credential.

    >>> error = transport_error(aiohttp.ServerDisconnectedError(), url="http://h/v1")
    >>> type(error).__name__, str(error)
    ('TransportError', 'could not get an answer from http://h/v1 (ServerDisconnectedError: Server disconnected)')
    """
    name = type(exc).__name__
    detail = scrub(str(exc)) or "no detail"
    if isinstance(exc, TimeoutError):
        error: ModelError = TransportError(f"request to {url} timed out ({name}: {detail})")
    elif isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | OSError):
        error = TransportError(f"could not get an answer from {url} ({name}: {detail})")
    else:
        error = ModelError(f"request to {url} failed ({name}: {detail})")
    if not isinstance(exc, aiohttp.ClientResponseError):
        error.__cause__ = exc
    return error


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed: transport errors and timeouts, 408, 409, 429,
    5xx, and server errors without a status (a 200 that is no chat completion).

    >>> is_retryable(ServerError("x", status=503)), is_retryable(RequestRejectedError("x", status=400))
    (True, False)
    >>> is_retryable(ServerError("a 200 with a broken body"))
    True
    """
    if isinstance(error, AuthenticationError | RequestRejectedError):
        return False
    if isinstance(error, TransportError | ServerError | RateLimitError):
        return True
    status = getattr(error, "status", None)
    return status is not None and (status in _RETRYABLE_STATUSES or status >= 500)


def retry_after_seconds(
    headers: Mapping[str, str], *, rate_limited: bool = True, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait, or None if it does not say.

    Reads ``retry-after-ms``, then ``retry-after`` (seconds or an HTTP date), then, for a
    429 (``rate_limited``), the ``x-ratelimit-reset-*`` of the exhausted budget (the one
    whose ``x-ratelimit-remaining-*`` is 0, else the soonest).

    >>> retry_after_seconds({"retry-after": "1.5"})
    1.5
    >>> retry_after_seconds({"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-reset-tokens": "20ms"})
    0.02
    >>> retry_after_seconds({"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-remaining-requests": "0",
    ...                      "x-ratelimit-reset-tokens": "20ms", "x-ratelimit-remaining-tokens": "900"})
    90.0
    >>> retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0)
    10.0
    >>> retry_after_seconds({}) is None
    True
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after-ms")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            return seconds / 1000
    value = lowered.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            try:
                return max(0.0, when.timestamp() - (time.time() if now is None else now))
            except (OverflowError, ValueError, OSError):
                return None
    if not rate_limited:
        return None
    resets = {
        name[len("x-ratelimit-reset-") :]: parse_duration(v)
        for name, v in lowered.items()
        if name.startswith("x-ratelimit-reset-")
    }
    resets = {k: v for k, v in resets.items() if v is not None}
    exhausted = [v for k, v in resets.items() if lowered.get(f"x-ratelimit-remaining-{k}", "").strip() == "0"]
    if exhausted:
        return max(exhausted)
    return min(resets.values()) if resets else None


def quota_exhausted(headers: Mapping[str, str]) -> bool:
    """Whether the rate-limit headers say a budget is used up (``x-ratelimit-remaining-*: 0``).

    >>> quota_exhausted({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"})
    True
    >>> quota_exhausted({"x-ratelimit-remaining-tokens": "900"}), quota_exhausted({})
    (False, False)
    """
    for name, value in headers.items():
        if name.lower().startswith("x-ratelimit-remaining-") and value.strip() in ("0", "0.0"):
            return True
    return False


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI-style duration (``"6m0s"``, ``"20ms"``, ``"1.5"``); None if unreadable.

    >>> parse_duration("6m0s"), parse_duration("20ms"), parse_duration("2"), parse_duration("soon")
    (360.0, 0.02, 2.0, None)
    """
    text = text.strip()
    number = _number(text)
    if number is not None:
        return number
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    return sum(float(amount) * _UNITS[unit] for amount, unit in parts)


def server_message(text: str) -> str:
    """The error message in a server's answer body (OpenAI, vLLM, llama.cpp, FastAPI shapes).

    >>> server_message('{"error": {"message": "too long"}}')
    'too long'
    >>> server_message('{"object": "error", "message": "bad n"}')
    'bad n'
    >>> server_message("")
    '(empty body)'
    """
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "(empty body)"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        for candidate in (error, body.get("message"), body.get("detail")):
            if candidate:
                return (candidate if isinstance(candidate, str) else json.dumps(candidate))[:500]
    return text.strip()[:500]


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < math.inf else None
