"""The OpenAI Batch API endpoints of the fake server: ``/v1/files`` and ``/v1/batches``.

:class:`~distilfn.testing.fakeserver.FakeServer` routes every ``/v1/files...`` and
``/v1/batches...`` request here (``srv.batches``). It keeps uploaded files and batches in
memory and answers like OpenAI's service:

- ``POST /v1/files`` (multipart: ``purpose``, ``file``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``;
- ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window``,
  ``metadata``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``,
  ``GET /v1/batches``.

A batch is done ``delay`` seconds (the delay set when it is read) after it was created:
each line is answered by the server's ``reply`` function, as a chat completion would be;
a line whose last user message contains ``fail_marker`` (or falls in ``line_error_rate``,
by a seeded hash of its ``custom_id``) goes to the error file instead. With
``expire_after=k``, a batch of more than ``k`` lines answers its first ``k`` and expires.
Settings change at run time with :meth:`FakeBatches.configure`; :meth:`FakeBatches.stats`
counts uploads, batches created and how often each ``custom_id`` was submitted.

>>> import httpx
>>> from distilfn.testing.fakeserver import FakeServer
>>> with FakeServer() as srv:
...     httpx.get(srv.url + "/batches").json()["data"]
[]
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["BatchSettings", "FakeBatches"]

Reply = Callable[[list[dict[str, Any]], int], str]
Answer = tuple[int, bytes, list[tuple[str, str]]]

_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the batch endpoints do (all changeable at run time).

    Attributes:
        delay: seconds from a batch's creation until it is done (``in_progress`` before).
        fail_marker: lines whose last user message contains this text fail (error file).
        line_error_rate: fraction of lines that fail, chosen by a hash of (seed, custom_id).
        expire_after: a batch of more lines answers only its first this many and expires.
        max_requests, max_bytes: an input file above either is refused (400), like a provider's limits.
        lose_created: the next this many batch creations are done, but answered 500 (an answer lost).
        fail_retrieves: the next this many looks at a batch (``GET /v1/batches/{id}``) are answered 503.
        seed: seeds the choice of failing lines.
    """

    delay: float = 0.0
    fail_marker: str | None = None
    line_error_rate: float = 0.0
    expire_after: int | None = None
    max_requests: int = 50_000
    max_bytes: int = 200 * 2**20
    lose_created: int = 0
    fail_retrieves: int = 0
    seed: int = 0

    def checked(self) -> BatchSettings:
        """Return self, or raise ValueError naming the setting out of range."""
        if self.delay < 0:
            msg = f"`delay` must be >= 0, got {self.delay!r}"
            raise ValueError(msg)
        if not 0.0 <= self.line_error_rate <= 1.0:
            msg = f"`line_error_rate` must be between 0 and 1, got {self.line_error_rate!r}"
            raise ValueError(msg)
        if self.expire_after is not None and self.expire_after < 0:
            msg = f"`expire_after` must be None or >= 0, got {self.expire_after!r}"
            raise ValueError(msg)
        return self


class _File(msgspec.Struct):
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def described(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose}


class _Batch(msgspec.Struct):
    info: dict[str, Any]  # the batch object as the API returns it
    lines: list[dict[str, Any]]
    started: float  # monotonic time of its creation: done ``delay`` seconds later (the delay now set)


class FakeBatches:
    """The batch endpoints' state; one per :class:`~distilfn.testing.fakeserver.FakeServer`.

    ``reply`` is the server's reply function (read at the time a batch is done) and
    ``served_model`` the model name answers report, when set.
    """

    def __init__(self, reply: Callable[[], Reply], served_model: Callable[[], str | None], **settings: Any):
        self._reply = reply
        self._served_model = served_model
        self.settings = BatchSettings(**settings).checked()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.reset_stats()

    def configure(self, **changes: Any) -> BatchSettings:
        """Change settings while running, e.g. ``srv.batches.configure(delay=0)``."""
        with self._lock:
            self.settings = msgspec.structs.replace(self.settings, **changes).checked()
            return self.settings

    def reset_stats(self) -> None:
        """Zero the counters (files and batches are kept)."""
        self.uploads = 0
        self.created = 0
        self.cancels = 0
        self.retrieves = 0
        self.lines_per_id: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        """Uploads, batches created, cancels, retrieves, and submissions per ``custom_id``."""
        with self._lock:
            return {"uploads": self.uploads, "batches_created": self.created, "cancels": self.cancels,
                    "retrieves": self.retrieves, "lines": sum(self.lines_per_id.values()),
                    "lines_per_id": dict(self.lines_per_id)}

    def statuses(self) -> dict[str, str]:
        """Each batch's status now (batch id -> status)."""
        with self._lock:
            return {bid: self._advance(b)["status"] for bid, b in self.batches.items()}

    # -- routing -------------------------------------------------------------------------
    def answer(self, method: str, path: str, body: bytes) -> Answer:
        """The answer to a request under ``/v1/files`` or ``/v1/batches``."""
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        with self._lock:
            try:
                return self._route(method, parts, body)
            except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
                return _error(400, f"invalid request: {exc}")

    def _route(self, method: str, parts: list[str], body: bytes) -> Answer:
        kind, rest = parts[0], parts[1:]
        if kind == "files":
            if method == "POST" and not rest:
                return self._upload(body)
            file = self.files.get(rest[0]) if rest else None
            if file is None:
                return _error(404, f"no file {rest[0] if rest else ''!r}")
            if method == "GET" and len(rest) == 1:
                return _ok(file.described())
            if method == "GET" and rest[1:] == ["content"]:
                return 200, file.content, []
        elif kind == "batches":
            if not rest:
                if method == "POST":
                    return self._create(json.loads(body))
                if method == "GET":
                    data = [self._advance(b) for b in self.batches.values()]
                    data.reverse()  # newest first, as OpenAI lists them
                    return _ok({"object": "list", "data": data, "has_more": False,
                                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})
            batch = self.batches.get(rest[0])
            if batch is None:
                return _error(404, f"no batch {rest[0]!r}")
            if method == "GET" and len(rest) == 1:
                self.retrieves += 1
                if self.settings.fail_retrieves:
                    self.settings = msgspec.structs.replace(self.settings, fail_retrieves=self.settings.fail_retrieves - 1)
                    return _error(503, "injected outage")
                return _ok(self._advance(batch))
            if method == "POST" and rest[1:] == ["cancel"]:
                self.cancels += 1
                return _ok(self._cancel(batch))
        return _error(404, f"no route for {method} /v1/{'/'.join(parts)}")

    # -- files ---------------------------------------------------------------------------
    def _upload(self, body: bytes) -> Answer:
        fields = _multipart(body)
        if "file" not in fields or "purpose" not in fields:
            return _error(400, "a file upload needs the fields 'file' and 'purpose'")
        filename, content = fields["file"]
        purpose = fields["purpose"][1].decode()
        settings = self.settings
        if purpose == "batch":
            count = len(content.splitlines())
            if count > settings.max_requests or len(content) > settings.max_bytes:
                return _error(400, f"a batch file holds at most {settings.max_requests} requests and {settings.max_bytes} bytes; "
                                   f"got {count} requests, {len(content)} bytes")
        self.uploads += 1
        file = self._store(filename or "upload", purpose, content)
        return _ok(file.described())

    def _store(self, filename: str, purpose: str, content: bytes) -> _File:
        file = _File(f"file-{next(self._ids):06d}", filename, purpose, content, int(time.time()))
        self.files[file.id] = file
        return file

    # -- batches -------------------------------------------------------------------------
    def _create(self, request: dict[str, Any]) -> Answer:
        file = self.files.get(request.get("input_file_id", ""))
        if file is None:
            return _error(404, f"no input file {request.get('input_file_id')!r}")
        if request.get("endpoint") != "/v1/chat/completions":
            return _error(400, f"endpoint must be '/v1/chat/completions', got {request.get('endpoint')!r}")
        if request.get("completion_window") != "24h":
            return _error(400, f"completion_window must be '24h', got {request.get('completion_window')!r}")
        now = int(time.time())
        info: dict[str, Any] = {
            "id": f"batch_{next(self._ids):06d}", "object": "batch", "endpoint": request["endpoint"],
            "errors": None, "input_file_id": file.id, "completion_window": "24h", "status": "in_progress",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": now,
            "expires_at": now + 86400, "completed_at": None, "expired_at": None, "cancelled_at": None,
            "failed_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": request.get("metadata") or {},
        }
        self.created += 1
        lines: list[dict[str, Any]] = []
        problems = []
        seen: set[str] = set()
        for number, raw in enumerate(file.content.splitlines(), start=1):
            try:
                line = json.loads(raw)
                custom_id = line["custom_id"]
                line["body"]["messages"]  # noqa: B018 - must be there
            except (ValueError, KeyError, TypeError) as exc:
                problems.append({"code": "invalid_request", "message": f"line {number}: {exc}", "line": number})
                continue
            if custom_id in seen:
                problems.append({"code": "duplicate_custom_id", "message": f"line {number}: custom_id {custom_id!r} again", "line": number})
            seen.add(custom_id)
            lines.append(line)
        if problems:
            info.update(status="failed", failed_at=now, errors={"object": "list", "data": problems})
        else:
            for line in lines:
                self.lines_per_id[line["custom_id"]] += 1
            info["request_counts"]["total"] = len(lines)
        batch = _Batch(info, lines, time.monotonic())
        self.batches[info["id"]] = batch
        if self.settings.lose_created:
            self.settings = msgspec.structs.replace(self.settings, lose_created=self.settings.lose_created - 1)
            return _error(500, "the batch was created, but this answer is lost")
        return _ok(self._advance(batch))

    def _cancel(self, batch: _Batch) -> dict[str, Any]:
        info = self._advance(batch)
        if info["status"] not in _TERMINAL:
            info.update(status="cancelled", cancelled_at=int(time.time()))
        return info

    def _advance(self, batch: _Batch) -> dict[str, Any]:
        """The batch object, done first if its time has come."""
        info = batch.info
        if info["status"] == "in_progress" and time.monotonic() >= batch.started + self.settings.delay:
            self._finish(batch)
        return info

    def _finish(self, batch: _Batch) -> None:
        settings, reply, served = self.settings, self._reply(), self._served_model()
        lines = batch.lines
        limit = settings.expire_after if settings.expire_after is not None and len(lines) > settings.expire_after else len(lines)
        outputs, errors = [], []
        for number, line in enumerate(lines[:limit]):
            result = _result(line, number, reply, served, settings)
            (outputs if result["response"]["status_code"] == 200 else errors).append(result)
        info, now = batch.info, int(time.time())
        stem = info["id"]
        if outputs:
            info["output_file_id"] = self._store(f"{stem}_output.jsonl", "batch_output", _jsonl(outputs)).id
        if errors:
            info["error_file_id"] = self._store(f"{stem}_errors.jsonl", "batch_output", _jsonl(errors)).id
        info["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}
        if limit < len(lines):
            info.update(status="expired", expired_at=now)
        else:
            info.update(status="completed", completed_at=now)


def _result(line: dict[str, Any], number: int, reply: Reply, served: str | None, settings: BatchSettings) -> dict[str, Any]:
    """One line of the output or error file for request ``line``."""
    body, custom_id = line["body"], line["custom_id"]
    messages = body["messages"]
    last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    request_id = f"req_{hashlib.blake2b(custom_id.encode(), digest_size=6).hexdigest()}"
    failed = (settings.fail_marker is not None and isinstance(last, str) and settings.fail_marker in last) or (
        settings.line_error_rate and _fraction(settings.seed, custom_id) < settings.line_error_rate
    )
    if failed:
        response = {"status_code": 500, "request_id": request_id,
                    "body": {"error": {"message": f"injected failure of line {number + 1}", "type": "server_error"}}}
        return {"id": f"batch_req_{number}", "custom_id": custom_id, "response": response, "error": None}
    try:
        texts = [reply(messages, i) for i in range(int(body.get("n") or 1))]
    except Exception as exc:  # noqa: BLE001 - a ReplyError (or a broken reply function) fails this line only
        status = getattr(exc, "status", 500)
        response = {"status_code": status, "request_id": request_id,
                    "body": {"error": {"message": str(exc), "type": "reply_error"}}}
        return {"id": f"batch_req_{number}", "custom_id": custom_id, "response": response, "error": None}
    prompt = (sum(len(str(m.get("content", ""))) for m in messages) + 3) // 4
    completion = sum((len(t) + 3) // 4 for t in texts)
    answer = {
        "id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": int(time.time()),
        "model": served or body.get("model") or "fake-model",
        "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
    response = {"status_code": 200, "request_id": request_id, "body": answer}
    return {"id": f"batch_req_{number}", "custom_id": custom_id, "response": response, "error": None}


def _multipart(body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, content).

    The boundary is read from the body's first line, so no header is needed.
    """
    first = body.split(b"\r\n", 1)[0]
    if not first.startswith(b"--"):
        msg = "the body is not multipart/form-data"
        raise ValueError(msg)
    head = b"Content-Type: multipart/form-data; boundary=" + first[2:] + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def _fraction(*parts: Any) -> float:
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _ok(value: dict[str, Any]) -> Answer:
    return 200, json.dumps(value).encode(), []


def _error(status: int, message: str) -> Answer:
    return status, json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": status}}).encode(), []
