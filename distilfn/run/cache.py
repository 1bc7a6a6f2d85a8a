"""A content-addressed, crash-safe cache of model answers.

Every model request is keyed by :func:`request_key`, a hash of what determines its
answer (chat, model identity, generation parameters, sample index, seed, schema), and
its answer is stored in a :class:`RequestCache` as soon as it arrives. Parsers are not
part of the key: changing a parser re-reads cached answers without a request.

Typical use by the interpreter::

    cache = open_cache(cache_option)            # None when caching is off
    key = request_key(chat=chat, model_identity=model.identity, params=params,
                      n_index=i, seed=seed, schema_name=None)
    hit = cache.get_many(keys)                  # one query for a whole batch
    ...
    cache.put_many({key: Answer(text, model_name=..., input_tokens=..., output_tokens=...)})
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from distilfn.run.answers import Answer

__all__ = [
    "RequestCache",
    "RequestKeys",
    "request_key",
    "strip_secrets",
    "default_cache_dir",
    "open_cache",
    "clear_cache",
    "CACHE_FILENAME",
]

CACHE_FILENAME = "requests.sqlite"
"""The file name used when a cache is given as a directory."""

_KEY_VERSION = 2
_SECRET_NAMES = frozenset(
    {"apikey", "xapikey", "authorization", "proxyauthorization", "token", "accesstoken", "bearertoken",
     "password", "secret", "clientsecret", "cookie", "setcookie", "credentials"}
)
_SECRET_SUFFIXES = ("apikey", "secret", "password", "accesstoken", "authtoken")
_SQLITE_SUFFIXES = frozenset({".sqlite", ".sqlite3", ".db"})


def _is_secret_name(name: str) -> bool:
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    return norm in _SECRET_NAMES or norm.endswith(_SECRET_SUFFIXES)


def strip_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` without entries named like secrets, at any depth.

    Names are compared ignoring case, ``-`` and ``_``: ``api_key``, ``Authorization``,
    ``x-api-key``, ``client_secret``, ``token`` ... are dropped; ``max_tokens`` is kept.

    >>> strip_secrets({"temperature": 0.7, "api_key": "sk-1", "max_tokens": 5,
    ...                "extra_headers": {"Authorization": "Bearer x", "X-Trace": "1"}})
    {'temperature': 0.7, 'max_tokens': 5, 'extra_headers': {'X-Trace': '1'}}
    """
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(name, str) and _is_secret_name(name):
            continue
        out[name] = strip_secrets(value) if isinstance(value, Mapping) else value
    return out


def _canonical(value: Any) -> Any:
    """Make equal parameter values encode alike: ``1.0`` as ``1``, tuples as lists."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _enc_hook(value: Any) -> Any:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, Mapping):
        return dict(value)
    msg = f"request_key cannot hash a parameter value of type {type(value).__name__}, got {value!r}"
    raise TypeError(msg)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook, order="sorted")


def request_key(
    *,
    chat: Any,
    model_identity: str,
    params: Mapping[str, Any],
    n_index: int | tuple[int, ...],
    seed: int | None,
    schema_name: str | None,
) -> str:
    """The cache key of one sampled answer: a hex blake2b of a canonical JSON.

    The key covers the chat, the model identity (model + endpoint, never a key), the
    generation parameters (order-independent; ``1.0`` and ``1`` alike), the sample index within a fanout, the
    seed and the output schema's name (``n_index`` may be a tuple, e.g. the path of
    sample indices through nested fanouts). ``params`` must not hold API keys; entries named
    like secrets (``api_key``, ``authorization``, ...) are dropped defensively before
    hashing. Pass the per-sample parameters only: ``n`` is expressed by ``n_index``, so a
    model that samples ``n`` in one request and one that sends ``n`` requests share keys.

    >>> k = request_key(chat=[{"role": "user", "content": "Hi"}], model_identity="m",
    ...                 params={"temperature": 0.7, "max_tokens": 8}, n_index=0,
    ...                 seed=None, schema_name=None)
    >>> k == request_key(chat=[{"role": "user", "content": "Hi"}], model_identity="m",
    ...                  params={"max_tokens": 8, "temperature": 0.7, "api_key": "sk"},
    ...                  n_index=0, seed=None, schema_name=None)
    True
    >>> len(k)
    64
    """
    return RequestKeys(model_identity=model_identity, params=params, seed=seed, schema_name=schema_name).key(chat, n_index)


class RequestKeys:
    """The cache keys of one step's requests: all but the chat and the sample index is fixed,
    so it is encoded once (see :func:`request_key`)."""

    __slots__ = ("_prefix",)

    def __init__(self, *, model_identity: str, params: Mapping[str, Any], seed: int | None, schema_name: str | None):
        fixed = {
            "v": _KEY_VERSION,
            "model": model_identity,
            "params": _canonical(strip_secrets(params)),
            "seed": seed,
            "schema": schema_name,
        }
        self._prefix = _ENCODER.encode(fixed) + b"\x1e"

    def key(self, chat: Any, n_index: int | tuple[int, ...]) -> str:
        """The key of sample ``n_index`` of ``chat``."""
        digest = hashlib.blake2b(self._prefix, digest_size=32)
        digest.update(_ENCODER.encode(chat))
        digest.update(b"\x1e")
        digest.update(_ENCODER.encode(n_index))
        return digest.hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    model_name TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    created REAL NOT NULL
)
"""
_INSERT = (
    "INSERT INTO answers (key, text, model_name, input_tokens, output_tokens, created)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING"
)
_BATCH = 500  # keys per SELECT ... IN (...): under every SQLite variable limit


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
    except sqlite3.DatabaseError as exc:
        conn.close()
        msg = f"the request cache at {str(path)!r} is not a readable SQLite database: {exc}"
        raise ValueError(msg) from exc
    return conn


def write_rows(conn: sqlite3.Connection, sql: str, rows: list[tuple]) -> None:
    """Run ``sql`` once per row of ``rows`` in one write transaction (all or none)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(sql, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _commit(conn: sqlite3.Connection, answers: Mapping[str, Answer]) -> None:
    now = time.time()
    write_rows(conn, _INSERT, [(k, a.text, a.model_name, a.input_tokens, a.output_tokens, now) for k, a in answers.items()])


class _GroupCommitter:
    """A thread that commits queued answers, everything queued so far in one transaction."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._conn = _connect(path, timeout)
        self._cond = threading.Condition()
        self._queued: dict[str, Answer] = {}
        self._committing: dict[str, Answer] = {}
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"distilfn-cache-writer:{path.name}", daemon=True)
        self._thread.start()

    def _raise_error(self) -> None:
        if self._error is not None:
            msg = f"the request cache writer failed: {self._error}"
            raise RuntimeError(msg) from self._error

    def put_many(self, answers: Mapping[str, Answer]) -> None:
        with self._cond:
            self._raise_error()
            for key, answer in answers.items():
                self._queued.setdefault(key, answer)
            self._cond.notify_all()

    def pending(self, keys: Iterable[str]) -> dict[str, Answer]:
        with self._cond:
            found = {k: self._committing[k] for k in keys if k in self._committing}
            found |= {k: self._queued[k] for k in keys if k in self._queued and k not in found}
            return found

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queued and not self._closing:
                    self._cond.wait()
                if not self._queued:
                    return
                self._committing, self._queued = self._queued, {}
            try:
                _commit(self._conn, self._committing)
            except BaseException as exc:  # noqa: BLE001 - reported on the next put/flush/close
                with self._cond:
                    self._error = exc
                    self._committing = {}
                    self._cond.notify_all()
                return
            with self._cond:
                self._committing = {}
                self._cond.notify_all()

    def flush(self) -> None:
        with self._cond:
            while (self._queued or self._committing) and self._error is None and self._thread.is_alive():
                self._cond.wait()
            self._raise_error()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._conn.close()
        self._raise_error()


class RequestCache:
    """Model answers stored in SQLite, kill -9 safe.

    Why SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=NORMAL``: it ships
    with Python (no extra binary dependency, unlike LMDB); each commit is atomic and
    appended to the write-ahead log, so a ``kill -9`` loses nothing committed and can
    never leave a half-written answer or a corrupt file (an OS crash or power loss may
    lose the last commits, never the database); other processes can read it while a
    run writes (the ``sqlite3`` CLI, a second run).

    ``writer="inline"`` (default): :meth:`put` commits before it returns, about 25-45 us
    per put (p99 under 0.1 ms, rare multi-ms stalls when the log is checkpointed) - cheap
    enough to call from the asyncio event loop. ``writer="background"``: ``put`` only
    queues (a few us, never waits on the disk) and a thread commits everything queued in
    one transaction as soon as the previous commit ends (group commit), so a kill -9
    loses at most the answers of the last few milliseconds; :meth:`get` and
    :meth:`get_many` see queued answers; :meth:`flush` waits for them to be committed.

    A put of a key already stored keeps the first answer, so every reader of a key sees
    the same text. Only successful answers belong here; errors are not cached.
    Thread-safe. Close it (or use ``with``): the run that opened it does.

    >>> import tempfile, pathlib
    >>> with RequestCache(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite") as c:
    ...     c.put("k", Answer("hello", input_tokens=3))
    ...     (c.get("k").text, len(c), c.get("missing"))
    ('hello', 1, None)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        writer: Literal["inline", "background"] = "inline",
        timeout: float = 30.0,
    ) -> None:
        if writer not in ("inline", "background"):
            msg = f"writer must be 'inline' or 'background', got {writer!r}"
            raise ValueError(msg)
        self.path = Path(path)
        self.writer = writer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _connect(self.path, timeout)
        self._committer = _GroupCommitter(self.path, timeout) if writer == "background" else None

    def __repr__(self) -> str:
        return f"RequestCache({str(self.path)!r}, writer={self.writer!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            msg = f"the request cache at {str(self.path)!r} is closed"
            raise RuntimeError(msg)
        return self._conn

    def get(self, key: str) -> Answer | None:
        """The answer stored under ``key``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Answer]:
        """The stored answers among ``keys``, as a dict; missing keys are absent."""
        unique = list(dict.fromkeys(keys))
        # queued answers first: one committed in between is then found in the table
        found = {k: msgspec.structs.replace(a, cached=True) for k, a in self._committer.pending(unique).items()} if self._committer is not None else {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(unique), _BATCH):
                batch = unique[start : start + _BATCH]
                marks = ",".join("?" * len(batch))
                rows = conn.execute(
                    f"SELECT key, text, model_name, input_tokens, output_tokens FROM answers WHERE key IN ({marks})",
                    batch,
                ).fetchall()
                for key, text, model_name, input_tokens, output_tokens in rows:
                    found[key] = Answer(text, None, model_name, input_tokens, output_tokens, True)
        return found

    def put(self, key: str, answer: Answer) -> None:
        """Store ``answer`` under ``key`` (committed on return with ``writer="inline"``)."""
        self.put_many({key: answer})

    def put_many(self, answers: Mapping[str, Answer]) -> None:
        """Store several answers in one commit (e.g. the ``n`` samples of one request)."""
        if self._committer is not None:
            self._connection()  # raises when closed
            self._committer.put_many(answers)
            return
        with self._lock:
            _commit(self._connection(), answers)

    def flush(self) -> None:
        """Wait until every answer put so far is committed (a no-op for ``writer="inline"``)."""
        if self._committer is not None:
            self._committer.flush()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return int(self._connection().execute("SELECT count(*) FROM answers").fetchone()[0])

    def clear(self) -> int:
        """Delete every stored answer and return how many there were."""
        self.flush()
        with self._lock:
            conn = self._connection()
            removed = conn.execute("DELETE FROM answers").rowcount
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            return int(removed)

    def close(self) -> None:
        """Commit what is queued, checkpoint the log and close; closing twice is fine."""
        with self._lock:
            if self._conn is None:
                return
            conn, self._conn = self._conn, None
        try:
            if self._committer is not None:
                self._committer.close()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_cache_dir() -> Path:
    """Where caches live by default.

    ``$DISTILFN_CACHE_DIR``, else ``$XDG_CACHE_HOME/distilfn``, else ``~/.cache/distilfn``.

    >>> default_cache_dir().is_absolute() or "DISTILFN_CACHE_DIR" in os.environ
    True
    """
    explicit = os.environ.get("DISTILFN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "distilfn"
    return Path.home() / ".cache" / "distilfn"


def _cache_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if p.is_dir() or (not p.exists() and p.suffix.lower() not in _SQLITE_SUFFIXES):
        return p / CACHE_FILENAME
    return p


def open_cache(
    cache: str | os.PathLike[str] | bool | RequestCache | None = None,
    *,
    writer: Literal["inline", "background"] = "inline",
) -> RequestCache | None:
    """Turn a user's ``cache=`` option into a cache, or None when caching is off.

    None or True: ``default_cache_dir() / "requests.sqlite"``. False: no cache. A path
    ending in ``.sqlite``/``.sqlite3``/``.db`` or naming an existing file: that file;
    any other path: a directory holding ``requests.sqlite``. A RequestCache: itself.
    ``writer`` is passed to :class:`RequestCache`.

    >>> open_cache(False) is None
    True
    """
    if cache is False:
        return None
    if isinstance(cache, RequestCache):
        return cache
    if cache is None or cache is True:
        return RequestCache(default_cache_dir() / CACHE_FILENAME, writer=writer)
    if isinstance(cache, str | os.PathLike):
        return RequestCache(_cache_file(cache), writer=writer)
    msg = f"cache must be a path, True, False, None or a RequestCache, got {cache!r}"
    raise TypeError(msg)


def clear_cache(path: str | os.PathLike[str] | None = None) -> int:
    """Delete every answer in the cache at ``path`` (default location when None).

    Safe while another process has the cache open. Returns how many answers were removed.
    """
    file = default_cache_dir() / CACHE_FILENAME if path is None else _cache_file(path)
    if not file.exists():
        return 0
    with RequestCache(file) as cache:
        return cache.clear()
