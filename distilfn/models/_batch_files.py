"""The Batch API's file format: request lines out, result lines back (pure functions).

A request line is ``{"custom_id", "method", "url", "body"}``; a result line (output or
error file) is ``{"id", "custom_id", "response": {"status_code", "body"}, "error"}``,
where a failed request has a non-200 ``status_code`` (its ``body`` holds the server's
error) or an ``error`` object (``code``, ``message``) and no response.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from distilfn.errors import ModelError
from distilfn.models._base import Generation
from distilfn.models._http_errors import status_error

__all__ = ["custom_id", "request_line", "read_results", "batch_errors"]

logger = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"


def custom_id(prefix: bytes, body: bytes) -> str:
    """The name of a request in a batch: a hash of the model identity (``prefix``) and its body.

    >>> custom_id(b"m", b'{"messages": []}') == custom_id(b"m", b'{"messages": []}')
    True
    >>> len(custom_id(b"m", b"{}"))
    32
    """
    return hashlib.blake2b(prefix + b"\x1e" + body, digest_size=16).hexdigest()


def request_line(custom_id: str, body: bytes, endpoint: str = ENDPOINT) -> bytes:
    """One line of a batch file, for an encoded chat-completion ``body``.

    >>> json.loads(request_line("abc", b'{"model":"m"}'))["url"]
    '/v1/chat/completions'
    """
    head = json.dumps({"custom_id": custom_id, "method": "POST", "url": endpoint})
    return head[:-1].encode() + b', "body": ' + body + b"}\n"


def read_results(content: bytes, *, batch_id: str, url: str, model: str,
                 scrub: Callable[[str], str] = str) -> dict[str, Generation | ModelError]:
    """The result of each ``custom_id`` in an output or error file.

    A failed line is a :class:`ModelError` of that request only (never a fatal one, even
    for a 401 inside the file); a line that cannot be read is skipped with a warning.

    >>> lines = (b'{"custom_id": "a", "response": {"status_code": 200, "body": {"choices": '
    ...          b'[{"index": 0, "message": {"content": "hi"}}]}}}\\n'
    ...          b'{"custom_id": "b", "response": null, "error": {"code": "too_long", "message": "no"}}\\n')
    >>> results = read_results(lines, batch_id="batch_1", url="http://h/v1", model="m")
    >>> results["a"].texts, str(results["b"])
    (('hi',), 'batch batch_1: too_long: no')
    """
    out: dict[str, Generation | ModelError] = {}
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            name = line["custom_id"]
        except (ValueError, KeyError, TypeError):
            logger.warning("batch %s: a result line that is not JSON with a custom_id: %.80r", batch_id, raw)
            continue
        response = line.get("response") or {}
        status = response.get("status_code")
        body = response.get("body")
        if status == 200 and isinstance(body, dict):
            out[name] = _generation(body, url=url, model=model)
        elif line.get("error"):
            error = line["error"]
            out[name] = ModelError(scrub(f"batch {batch_id}: {error.get('code')}: {error.get('message')}"))
        else:
            text = body if isinstance(body, str) else json.dumps(body)
            error = status_error(int(status or 500), {}, text, url=f"{url} (batch {batch_id})", scrub=scrub)
            out[name] = ModelError(str(error), status=error.status)
    return out


def _generation(body: dict[str, Any], *, url: str, model: str) -> Generation | ModelError:
    choices = sorted(body.get("choices") or [], key=lambda c: c.get("index", 0))
    texts = tuple(((c.get("message") or {}).get("content") or c.get("text") or "") for c in choices)
    if not texts:
        return ModelError(f"{url} answered with no choices for model {model!r}")
    usage = body.get("usage") or {}
    return Generation(texts=texts, model_name=body.get("model") or model,
                      input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"))


def batch_errors(info: dict[str, Any]) -> str:
    """What a failed batch says went wrong (its first three errors).

    >>> batch_errors({"errors": {"data": [{"message": "line 1: bad"}]}})
    'line 1: bad'
    """
    errors = (info.get("errors") or {}).get("data") or []
    return "; ".join(str(e.get("message")) for e in errors[:3]) or "no reason given"
