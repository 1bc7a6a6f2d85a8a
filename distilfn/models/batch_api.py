"""Offline batch APIs: the OpenAI Batch API protocol as a distilfn model.

OpenAI, Azure OpenAI and several hosted providers answer batches of chat completions
within a day at about half the price; vLLM's ``run_batch`` reads the same file format.
:func:`openai_batch` is a model like any other: the interpreter asks it one request at
a time, and it gathers the requests that arrive together (up to the provider's limits
per file, or until none came for ``batch_wait`` seconds) into one JSON Lines file:

1. upload the file (``POST /files``, ``purpose=batch``);
2. create the batch (``POST /batches``, ``completion_window``);
3. poll it (``GET /batches/{id}``) every ``poll_interval`` seconds;
4. download its output and error files and match each line to its request by
   ``custom_id``; a line of the error file fails that request only.

So a plan of several steps submits a batch per step as its rows become ready.

Durable across days: with a cache (the run's, see :mod:`distilfn.run.batches`), each
batch and the ``custom_id`` of each request it holds are recorded as it is submitted. A
run killed while waiting, or one that exited on purpose (``wait=False``), is run again:
its requests are found in the recorded batches, which are polled, never submitted
again. An expired or cancelled batch gives what it finished; only its unfinished
requests are submitted again. The ``custom_id`` is a hash of the request body and the
model identity; the API key is sent in the ``Authorization`` header only, never written
to the cache, the files or the batch metadata.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import msgspec

from distilfn._types import Chat
from distilfn.errors import AuthenticationError, FatalModelError, ModelError
from distilfn.models._base import Generation
from distilfn.models import _batch_files as files
from distilfn.models._http_errors import is_retryable, status_error, transport_error
from distilfn.models.openai import OpenAICompatible, StructuredOutput

__all__ = ["OpenAIBatch", "openai_batch", "BatchesPending", "QUEUED_REQUESTS"]

QUEUED_REQUESTS = 10_000
"""The requests a batch model asks a run to keep waiting at once (see ``queued_requests``)."""

logger = logging.getLogger(__name__)

_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_encode = msgspec.json.Encoder().encode


class BatchesPending(FatalModelError):
    """``wait=False``: requests wait in batches that are not done; run again to collect them.

    It stops the run like any fatal model error; the rows that finished are kept.
    """


class _Request:
    """One request: its line in a batch file and the futures waiting for its result."""

    __slots__ = ("custom_id", "line", "futures")

    def __init__(self, custom_id: str, line: bytes):
        self.custom_id = custom_id
        self.line = line
        self.futures: list[asyncio.Future] = []

    def live(self) -> bool:
        return any(not f.done() for f in self.futures)

    def resolve(self, result: Generation | BaseException) -> None:
        for future in self.futures:
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


class _Tracked:
    """A batch this run follows: its requests, who waits for them, and its results once taken."""

    __slots__ = ("local", "batch_id", "input_file_id", "members", "waiters", "results", "status", "polled", "failures", "taking")

    def __init__(self, local: int, batch_id: str | None, input_file_id: str, members: set[str]):
        self.local = local
        self.batch_id = batch_id
        self.input_file_id = input_file_id
        self.members = members
        self.waiters: dict[str, _Request] = {}
        self.results: dict[str, Generation | ModelError] | None = None
        self.status = ""
        self.polled = False
        self.failures = 0
        self.taking = False


class _Live:
    """What belongs to one event loop: the HTTP session, the batch log, the gathering
    buffer, the batches followed, and the tasks that submit and poll them."""

    def __init__(self, session: aiohttp.ClientSession, log: Any):
        self.loop = asyncio.get_running_loop()
        self.session = session
        self.log = log
        self.known: dict[str, int] = {}  # custom_id -> local id of a recorded batch still holding it
        self.buffer: dict[str, _Request] = {}
        self.buffer_bytes = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.timer: asyncio.Task | None = None
        self.poller: asyncio.Task | None = None
        self.submitting: set[asyncio.Task] = set()
        self.tracked: dict[int, _Tracked] = {}
        self.by_id: dict[str, _Tracked] = {}
        self.local_ids = itertools.count(-1, -1)  # batches of a run without a cache
        self.closing = False


class OpenAIBatch:
    """A chat model served through an OpenAI-compatible Batch API; see :func:`openai_batch`."""

    supports_n = True

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        completion_window: str = "24h",
        endpoint: str = files.ENDPOINT,
        max_requests: int = 50_000,
        max_bytes: int = 200 * 2**20,
        batch_wait: float = 1.0,
        poll_interval: float = 30.0,
        wait: bool = True,
        metadata: Mapping[str, str] | None = None,
        max_retries: int = 6,
        timeout: float = 600.0,
        structured_output: StructuredOutput | None = "json_schema",
        extra_body: Mapping[str, Any] | None = None,
        max_concurrency: int | None = None,
    ):
        if not isinstance(base_url, str):
            msg = f"`base_url` of a batch API is one URL, got {base_url!r}"
            raise ValueError(msg)
        for name, value in (("max_requests", max_requests), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"`{name}` must be a whole number >= 1, got {value!r}"
                raise ValueError(msg)
        for name, value in (("batch_wait", batch_wait), ("poll_interval", poll_interval)):
            if not isinstance(value, int | float) or value < 0:
                msg = f"`{name}` must be a number of seconds >= 0, got {value!r}"
                raise ValueError(msg)
        # the HTTP backend builds the request bodies and holds the credentials
        self._http = OpenAICompatible(
            base_url, model=model, api_key=api_key, headers=headers, max_retries=max_retries,
            structured_output=structured_output, extra_body=extra_body, timeout=timeout,
        )
        self.name = model
        self.base_url = self._http.base_urls[0]
        self.identity = self._http.identity  # the same answers as live requests to this model
        self.max_concurrency = max_concurrency
        self.queued_requests = min(max_requests, QUEUED_REQUESTS)
        """Requests this model asks the run to keep waiting at once when the run sets no
        ``max_concurrency``: a batch gathers what is waiting, so this bounds a batch's size."""
        self.completion_window = completion_window
        self.endpoint = endpoint
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.batch_wait = float(batch_wait)
        self.poll_interval = float(poll_interval)
        self.wait = wait
        self.metadata = dict(metadata or {})
        self.max_retries = max_retries
        self.timeout = timeout
        self._prefix = self.identity.encode()
        self._cache_path: Any = None
        self._counts: dict[str, int] = {}
        self._live: _Live | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The spec travels, not the run's state (the copy's key comes from its environment)."""
        state = dict(self.__dict__)
        state.update(_live=None, _cache_path=None, _counts={})
        return state

    def __repr__(self) -> str:
        return f"OpenAIBatch({self.base_url!r}, model={self.name!r}, wait={self.wait!r})"

    # -- the run hook ----------------------------------------------------------------------
    def bind_run(self, *, cache: Any, stats: Any) -> None:
        """Called by the run before its first request: the cache whose database records the
        batches (None: no record, nothing survives the process) and the run's counters."""
        self._cache_path = getattr(cache, "path", None)
        if self._cache_path is None and not self.wait:
            msg = "openai_batch(wait=False) needs the run's cache (not cache=False): a re-run finds its batches there"
            raise ValueError(msg)
        self._counts = stats.batches if stats is not None else {}

    def _count(self, name: str, by: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + by

    # -- the model protocol ------------------------------------------------------------
    async def agenerate(
        self, chats: Sequence[Chat], *, n: int = 1, schema: Any = None, **params: Any
    ) -> list[Generation | BaseException]:
        """Answer each chat with ``n`` samples, through batches; returns when the batches
        holding them are done (``wait=True``), or raises :class:`BatchesPending`."""
        if n < 1:
            msg = f"`n` must be at least 1, got {n!r}"
            raise ValueError(msg)
        live = self._live_state()
        fields = self._http._body_fields(schema, params)
        futures = [self._ask(live, chat, n, fields) for chat in chats]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, FatalModelError):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, ModelError):
                raise result
        return list(results)

    async def aclose(self) -> None:
        """Let submissions in progress finish (so the log is right), then close."""
        live, self._live = self._live, None
        if live is None:
            return
        live.closing = True
        for task in (live.timer, live.poller):
            if task is not None:
                task.cancel()
        if live.submitting:
            await asyncio.gather(*live.submitting, return_exceptions=True)
        await live.session.close()
        if live.log is not None:
            live.log.close()

    # -- asking ----------------------------------------------------------------------------
    def _ask(self, live: _Live, chat: Chat, n: int, fields: dict[str, Any]) -> asyncio.Future:
        body = {"model": self.name, "messages": chat, **fields}
        if n > 1:
            body["n"] = n
        encoded = _encode(body)
        name = files.custom_id(self._prefix, encoded)
        future = live.loop.create_future()
        tracked = live.by_id.get(name) or self._recorded(live, name)
        if tracked is not None:
            request = tracked.waiters.get(name)
            if request is None:
                request = tracked.waiters[name] = _Request(name, files.request_line(name, encoded, self.endpoint))
            request.futures.append(future)
            if tracked.results is not None and name in tracked.results:
                self._settle(live, tracked, [name])  # done already (asked twice in one run)
            else:
                self._follow(live)
            return future
        request = live.buffer.get(name)
        if request is None:
            request = live.buffer[name] = _Request(name, files.request_line(name, encoded, self.endpoint))
            live.buffer_bytes += len(request.line)
        request.futures.append(future)
        self._gather(live)
        return future

    def _recorded(self, live: _Live, custom_id: str) -> _Tracked | None:
        """The batch an earlier run submitted ``custom_id`` in, if it still holds it."""
        local = live.known.get(custom_id)
        if local is None:
            return None
        tracked = live.tracked.get(local)
        if tracked is None:
            record = live.log.record(local)
            members = {c for c, b in live.known.items() if b == local}
            tracked = live.tracked[local] = _Tracked(local, record.batch_id, record.input_file_id, members)
            for member in members:
                live.by_id[member] = tracked
            self._count("resumed")
        return tracked

    # -- gathering and submitting -------------------------------------------------------
    def _gather(self, live: _Live) -> None:
        if live.closing:
            return
        now = time.monotonic()
        if not live.first_at:
            live.first_at = now
        live.last_at = now
        while live.buffer and (len(live.buffer) >= self.max_requests or live.buffer_bytes >= self.max_bytes):
            self._flush(live)
        if live.buffer and live.timer is None:
            live.timer = live.loop.create_task(self._gather_timer(live))

    async def _gather_timer(self, live: _Live) -> None:
        """Flush once no request came for ``batch_wait`` seconds (at most 10 x that after the first)."""
        while live.buffer:
            due = min(live.last_at + self.batch_wait, live.first_at + 10 * self.batch_wait)
            now = time.monotonic()
            if now >= due:
                break
            await asyncio.sleep(due - now)
        live.timer = None
        while live.buffer:
            self._flush(live)

    def _flush(self, live: _Live) -> None:
        """Take what one file can hold from the buffer and submit it."""
        taken: list[_Request] = []
        size = 0
        for custom_id in list(live.buffer):
            request = live.buffer[custom_id]
            if len(taken) >= self.max_requests or (taken and size + len(request.line) > self.max_bytes):
                break
            del live.buffer[custom_id]
            live.buffer_bytes -= len(request.line)
            if request.live():  # its askers may have gone (the run stopped)
                taken.append(request)
                size += len(request.line)
        if not live.buffer:
            live.first_at = live.last_at = 0.0
        if taken:
            task = live.loop.create_task(self._submit(live, taken))
            live.submitting.add(task)
            task.add_done_callback(live.submitting.discard)
            task.add_done_callback(lambda done: self._on_crash(live, done, taken))

    async def _submit(self, live: _Live, requests: list[_Request]) -> None:
        content = b"".join(r.line for r in requests)
        ids = [r.custom_id for r in requests]
        tracked: _Tracked | None = None
        try:
            file = await self._call(live, "POST", "/files", upload=content)
            local = next(live.local_ids)
            if live.log is not None:
                local = await asyncio.to_thread(
                    live.log.uploaded, endpoint=self.base_url, model=self.name, input_file_id=file["id"], custom_ids=ids
                )
            tracked = _Tracked(local, None, file["id"], set(ids))
            tracked.waiters = {r.custom_id: r for r in requests}
            for name in ids:  # the same request asked meanwhile waits for this batch
                live.by_id[name] = tracked
            body = {"input_file_id": file["id"], "endpoint": self.endpoint,
                    "completion_window": self.completion_window, "metadata": self.metadata or None}
            info = await self._create(live, {k: v for k, v in body.items() if v is not None})
        except ModelError as error:
            # not submitted: nothing holds these requests (a re-run submits them again)
            waiting = list(requests)
            if tracked is not None:
                waiting = list(tracked.waiters.values())
                for name in ids:
                    live.by_id.pop(name, None)
                if live.log is not None and tracked.local > 0:
                    live.log.settle(tracked.local, "moved", ids)
                    live.log.status(tracked.local, "not created")
            for request in waiting:
                request.resolve(error)
            return
        tracked.batch_id = info["id"]
        live.tracked[tracked.local] = tracked  # polled from now on
        if live.log is not None:
            live.log.created(tracked.local, info["id"], info["status"])
        self._count("submitted")
        logger.info("submitted batch %s of %d requests to %s", info["id"], len(requests), self.base_url)
        try:
            await self._observe(live, tracked, info)
            tracked.polled = True
        except ModelError as error:  # its results could not be read yet: the poller tries again
            logger.warning("batch %s: %s", info["id"], error)
        self._follow(live)

    # -- following batches ------------------------------------------------------------------
    def _follow(self, live: _Live) -> None:
        if not live.closing and (live.poller is None or live.poller.done()):
            live.poller = live.loop.create_task(self._poll_loop(live))
            live.poller.add_done_callback(lambda done: self._on_crash(live, done, []))

    def _on_crash(self, live: _Live, done: asyncio.Task[None], requests: list[_Request]) -> None:
        """A submitting or polling task that died of an unexpected error fails the requests
        it was responsible for (every waiting one, for the poller), so no row waits for ever."""
        if done.cancelled() or done.exception() is None:
            return
        exc = done.exception()
        error = ModelError(self._http._secrets.scrub(f"the batch backend failed: {type(exc).__name__}: {exc}"))
        logger.error("%s", error)
        for request in requests:
            request.resolve(error)
        if not requests:
            for tracked in list(live.tracked.values()):
                self._fail(live, tracked, error)

    async def _poll_loop(self, live: _Live) -> None:
        while True:
            active = [t for t in live.tracked.values() if t.results is None and t.waiters]
            if not self.wait:
                active = [t for t in active if not t.polled]
            for tracked in active:
                await self._poll(live, tracked)
            if not self.wait:
                self._stop_waiting(live)
            if not any(t.results is None and t.waiters for t in live.tracked.values()):
                return
            await asyncio.sleep(self.poll_interval if self.wait else min(self.poll_interval, self.batch_wait) or 0.01)

    async def _poll(self, live: _Live, tracked: _Tracked) -> None:
        try:
            if tracked.batch_id is None:
                info = await self._find(live, tracked.input_file_id)
                if info is None:  # killed before the batch was created: submit again
                    self._resubmit(live, tracked, set())
                    return
                tracked.batch_id = info["id"]
                if live.log is not None:
                    live.log.created(tracked.local, info["id"], info["status"])
            else:
                info = await self._call(live, "GET", f"/batches/{tracked.batch_id}")
            tracked.failures = 0
            await self._observe(live, tracked, info)
        except AuthenticationError as error:
            self._fail(live, tracked, error)
        except ModelError as error:
            tracked.failures += 1
            logger.warning("polling batch %s failed (%d times running): %s", tracked.batch_id, tracked.failures, error)
            if tracked.failures > self.max_retries:
                self._fail(live, tracked, error)
        tracked.polled = True

    async def _create(self, live: _Live, body: dict[str, Any]) -> dict[str, Any]:
        """Create a batch; after a failure that may have lost only the answer (transport,
        5xx), look for it by its input file before creating it again."""
        for attempt in range(self.max_retries + 1):
            try:
                return await self._call(live, "POST", "/batches", json_body=body, retries=0)
            except ModelError as error:
                if isinstance(error, FatalModelError) or not is_retryable(error) or attempt == self.max_retries:
                    raise
                found = await self._find(live, body["input_file_id"])
                if found is not None:
                    return found
                await asyncio.sleep(self._http._retry_delay(attempt, error))
        raise AssertionError("unreachable")

    async def _find(self, live: _Live, input_file_id: str) -> dict[str, Any] | None:
        """The batch created from ``input_file_id``, looked for in the provider's list."""
        after: str | None = None
        while True:
            page = await self._call(live, "GET", "/batches?limit=100" + (f"&after={after}" if after else ""))
            for info in page.get("data", []):
                if info.get("input_file_id") == input_file_id:
                    return info
            if not page.get("has_more") or not page.get("data"):
                return None
            after = page["data"][-1]["id"]

    async def _observe(self, live: _Live, tracked: _Tracked, info: dict[str, Any]) -> None:
        """Take a batch's results once it is done."""
        status = info.get("status", "")
        if live.log is not None and status != tracked.status:
            live.log.status(tracked.local, status)
        tracked.status = status
        if status not in _TERMINAL or tracked.results is not None or tracked.taking:
            return
        tracked.taking = True  # one download, whoever polled
        results: dict[str, Generation | ModelError] = {}
        try:
            for key in ("output_file_id", "error_file_id"):
                if info.get(key):
                    content = await self._call(live, "GET", f"/files/{info[key]}/content", raw=True)
                    results.update(files.read_results(content, batch_id=info["id"], url=self.base_url, model=self.name,
                                                      scrub=self._http._secrets.scrub))
        finally:
            tracked.taking = False  # a failed download is tried again at the next poll
        self._count(status)
        tracked.results = results
        if status in ("expired", "cancelled"):
            self._resubmit(live, tracked, set(results))
        elif status != "completed" or len(results) < len(tracked.members):
            reason = files.batch_errors(info) if status == "failed" else "no result for this request"
            error = ModelError(self._http._secrets.scrub(f"batch {info['id']} {status}: {reason}"))
            failed = [c for c in tracked.members | set(tracked.waiters) if c not in results]
            for name in failed:
                results[name] = error
            if live.log is not None and tracked.local > 0:
                live.log.settle(tracked.local, "failed", failed)  # a re-run sends them again
        self._settle(live, tracked, [c for c in tracked.waiters if c in results])

    def _settle(self, live: _Live, tracked: _Tracked, custom_ids: list[str]) -> None:
        """Hand results to their waiters and record them taken."""
        assert tracked.results is not None
        answered, failed = [], []
        for custom_id in custom_ids:
            result = tracked.results[custom_id]
            (failed if isinstance(result, BaseException) else answered).append(custom_id)
            request = tracked.waiters.pop(custom_id, None)
            if request is not None:
                request.resolve(result)
            live.known.pop(custom_id, None)
        if live.log is not None and tracked.local > 0:
            live.log.settle(tracked.local, "answered", answered)
            live.log.settle(tracked.local, "failed", failed)

    def _resubmit(self, live: _Live, tracked: _Tracked, finished: set[str]) -> None:
        """An expired or cancelled batch (or one never created): its unfinished requests go
        back to the buffer; those nobody waits for now are no longer held by it."""
        unfinished = [c for c in tracked.members | set(tracked.waiters) if c not in finished]
        if tracked.results is None:
            tracked.results = {}
        for custom_id in unfinished:
            live.known.pop(custom_id, None)
            if live.by_id.get(custom_id) is tracked:
                del live.by_id[custom_id]
            tracked.members.discard(custom_id)
        if live.log is not None and tracked.local > 0:
            live.log.settle(tracked.local, "moved", unfinished)
        again = 0
        for custom_id in unfinished:
            request = tracked.waiters.pop(custom_id, None)
            if request is None or not request.live():
                continue
            waiting = live.buffer.get(custom_id)
            if waiting is None:
                live.buffer[custom_id] = request
                live.buffer_bytes += len(request.line)
            else:
                waiting.futures.extend(request.futures)
            again += 1
        if again:
            self._count("resubmitted_requests", again)
            self._gather(live)

    def _fail(self, live: _Live, tracked: _Tracked, error: BaseException) -> None:
        for request in list(tracked.waiters.values()):
            request.resolve(error)
        tracked.waiters.clear()

    def _stop_waiting(self, live: _Live) -> None:
        """``wait=False``: once every gathered request is submitted and every batch polled
        once, the requests still waiting stop the run with :class:`BatchesPending`."""
        if live.buffer or live.submitting or live.timer is not None:
            return
        pending = [t for t in live.tracked.values() if t.results is None and t.waiters]
        if not pending or not all(t.polled for t in pending):
            return
        count = sum(len(t.waiters) for t in pending)
        ids = ", ".join(sorted(t.batch_id or "?" for t in pending))
        error = BatchesPending(
            f"{count} requests wait in {len(pending)} batch{'es' if len(pending) > 1 else ''} not done yet ({ids}); "
            "run again to collect them (wait=False)"
        )
        for tracked in pending:
            self._fail(live, tracked, error)

    # -- HTTP -------------------------------------------------------------------------------
    def _live_state(self) -> _Live:
        loop = asyncio.get_running_loop()
        live = self._live
        if live is None or live.loop is not loop:
            headers = {k: v for k, v in self._http._secrets.headers.items() if k.lower() != "content-type"}
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._http.connect_timeout, sock_read=self.timeout)
            session = aiohttp.ClientSession(headers=headers, timeout=timeout)
            log = None
            if self._cache_path is not None:
                from distilfn.run.batches import BatchLog

                log = BatchLog(self._cache_path)
            live = self._live = _Live(session, log)
            if log is not None:
                live.known = log.waiting(self.base_url, self.name)
        return live

    async def _call(self, live: _Live, method: str, path: str, *, json_body: Any = None,
                    upload: bytes | None = None, raw: bool = False, retries: int | None = None) -> Any:
        """One API call, retried (``max_retries`` times) after transport errors, 408, 409, 429 and 5xx."""
        url = f"{self.base_url}{path}"
        scrub = self._http._secrets.scrub
        retries = self.max_retries if retries is None else retries
        for attempt in range(retries + 1):
            data = None
            if upload is not None:
                data = aiohttp.FormData()
                data.add_field("purpose", "batch")
                data.add_field("file", upload, filename="distilfn-batch.jsonl", content_type="application/jsonl")
            try:
                async with live.session.request(method, url, json=json_body, data=data, allow_redirects=False) as response:
                    content = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = transport_error(exc, url=url, scrub=scrub)
            else:
                if response.status < 300:
                    return content if raw else json.loads(content)
                error = status_error(response.status, response.headers, content.decode("utf-8", "replace"), url=url, scrub=scrub)
            if not is_retryable(error) or attempt == retries:
                raise error
            await asyncio.sleep(self._http._retry_delay(attempt, error))
        raise AssertionError("unreachable")


def openai_batch(
    base_url: str,
    *,
    model: str,
    api_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    completion_window: str = "24h",
    endpoint: str = files.ENDPOINT,
    max_requests: int = 50_000,
    max_bytes: int = 200 * 2**20,
    batch_wait: float = 1.0,
    poll_interval: float = 30.0,
    wait: bool = True,
    metadata: Mapping[str, str] | None = None,
    max_retries: int = 6,
    timeout: float = 600.0,
    structured_output: StructuredOutput | None = "json_schema",
    extra_body: Mapping[str, Any] | None = None,
    max_concurrency: int | None = None,
) -> OpenAIBatch:
    """A model answered through the OpenAI Batch API at ``base_url`` (``.../v1``).

    Args:
        base_url, model, api_key, headers, structured_output, extra_body: as for
            :func:`~distilfn.models.openai.openai_compatible` (the key defaults to
            ``$OPENAI_API_KEY``; it is sent as a header only).
        completion_window: how long the provider may take (OpenAI accepts ``"24h"``).
        endpoint: the chat-completions path named in each request line and in the
            batch (``"/v1/chat/completions"``; some providers want ``"/chat/completions"``).
        max_requests, max_bytes: the provider's limits per batch file (OpenAI: 50,000
            requests, 200 MB); a batch is submitted when the next request would pass one.
        batch_wait: seconds without a new request after which the gathered ones are
            submitted (at most 10 x this after the first).
        poll_interval: seconds between two looks at a batch.
        wait: False submits what is ready, looks once at the batches, and stops the run
            with :class:`BatchesPending` (the CLI's ``--no-wait``): run again to collect.
        metadata: sent with each batch (shown by the provider); no secrets here.
        max_retries, timeout: retries of each API call, seconds per answer.
        max_concurrency: as for every model. The run keeps up to ``max_concurrency``
            requests waiting at once, which bounds a batch's size: a run that sets none
            keeps this model's ``queued_requests`` (10,000, or ``max_requests`` if fewer).

    A run needs a cache (the default) for its batches to survive the process.

    >>> m = openai_batch("http://127.0.0.1:8000/v1", model="qwen", api_key="sk-secret")
    >>> m
    OpenAIBatch('http://127.0.0.1:8000/v1', model='qwen', wait=True)
    """
    return OpenAIBatch(
        base_url, model=model, api_key=api_key, headers=headers, completion_window=completion_window,
        endpoint=endpoint, max_requests=max_requests, max_bytes=max_bytes, batch_wait=batch_wait, poll_interval=poll_interval,
        wait=wait, metadata=metadata, max_retries=max_retries, timeout=timeout,
        structured_output=structured_output, extra_body=extra_body, max_concurrency=max_concurrency,
    )
