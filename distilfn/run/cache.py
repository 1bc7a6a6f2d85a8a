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
    cache.put(key, CachedAnswer(text=..., model_name=..., input_tokens=..., output_tokens=...))
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
from typing import Any

import msgspec

__all__ = [
    "CachedAnswer",
    "RequestCache",
    "request_key",
    "strip_secrets",
    "default_cache_dir",
    "open_cache",
    "clear_cache",
    "CACHE_FILENAME",
]

CACHE_FILENAME = "requests.sqlite"
"""The file name used when a cache is given as a directory."""

_KEY_VERSION = 1
_SECRET_NAMES = frozenset(
    {"apikey", "xapikey", "authorization", "proxyauthorization", "token", "accesstoken", "bearertoken",
     "password", "secret", "clientsecret", "cookie", "setcookie", "credentials"}
)
_SECRET_SUFFIXES = ("apikey", "secret", "password", "accesstoken", "authtoken")
_SQLITE_SUFFIXES = frozenset({".sqlite", ".sqlite3", ".db"})


class CachedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """One stored answer: the text of one sample and what the server reported.

    >>> CachedAnswer(text="hi", model_name="m").text
    'hi'
    """

    text: str
    model_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


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
    n_index: int,
    seed: int | None,
    schema_name: str | None,
) -> str:
    """The cache key of one sampled answer: a hex blake2b of a canonical JSON.

    The key covers the chat, the model identity (model + endpoint, never a key), the
    generation parameters (order-independent), the sample index within a fanout, the
    seed and the output schema's name. ``params`` must not hold API keys; entries named
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
    payload = {
        "v": _KEY_VERSION,
        "chat": chat,
        "model": model_identity,
        "params": strip_secrets(params),
        "n_index": n_index,
        "seed": seed,
        "schema": schema_name,
    }
    return hashlib.blake2b(_ENCODER.encode(payload), digest_size=32).hexdigest()


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
_BATCH = 500  # keys per SELECT ... IN (...): under every SQLite variable limit


class RequestCache:
    """Model answers stored in SQLite, durable as soon as :meth:`put` returns.

    Why SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=NORMAL``: it ships
    with Python (no extra binary dependency, unlike LMDB); every ``put`` is its own
    atomic commit appended to the write-ahead log, so a ``kill -9`` loses nothing that
    was committed and can never leave a half-written answer or a corrupt file (an OS
    crash or power loss may lose the last few commits, never the database); other
    processes can read it while a run writes (``sqlite3`` CLI, a second run); and a
    commit costs tens of microseconds, so puts run inline from the asyncio event loop
    without a writer thread.

    A put of a key already stored keeps the first answer, so every reader of a key
    sees the same text. Only successful answers belong here; errors are not cached.
    Thread-safe: one connection guarded by a lock.

    >>> import tempfile, pathlib
    >>> with RequestCache(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite") as c:
    ...     c.put("k", CachedAnswer(text="hello", input_tokens=3))
    ...     (c.get("k").text, len(c), c.get("missing"))
    ('hello', 1, None)
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            self._conn = None
            msg = f"the request cache at {str(self.path)!r} is not a readable SQLite database: {exc}"
            raise ValueError(msg) from exc

    def __repr__(self) -> str:
        return f"RequestCache({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            msg = f"the request cache at {str(self.path)!r} is closed"
            raise RuntimeError(msg)
        return self._conn

    def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        """The stored answers among ``keys``, as a dict; missing keys are absent."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, CachedAnswer] = {}
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
                    found[key] = CachedAnswer(
                        text=text, model_name=model_name, input_tokens=input_tokens, output_tokens=output_tokens
                    )
        return found

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store ``answer`` under ``key``; committed (kill -9 safe) when this returns."""
        self.put_many({key: answer})

    def put_many(self, answers: Mapping[str, CachedAnswer]) -> None:
        """Store several answers in one commit (e.g. the ``n`` samples of one request)."""
        now = time.time()
        rows = [(k, a.text, a.model_name, a.input_tokens, a.output_tokens, now) for k, a in answers.items()]
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO answers (key, text, model_name, input_tokens, output_tokens, created)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                    rows,
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT count(*) FROM answers").fetchone()[0])

    def clear(self) -> int:
        """Delete every stored answer and return how many there were."""
        with self._lock:
            conn = self._connection()
            removed = conn.execute("DELETE FROM answers").rowcount
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            return int(removed)

    def close(self) -> None:
        """Checkpoint the log into the main file and close; closing twice is fine."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    self._conn.close()
                    self._conn = None

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_cache_dir() -> Path:
    """Where caches live by default.

    ``$DISTILFN_CACHE_DIR``, else ``$XDG_CACHE_HOME/distilfn``, else ``~/.cache/distilfn``.

    >>> import os
    >>> os.environ["DISTILFN_CACHE_DIR"] = "/tmp/dfn"; str(default_cache_dir())
    '/tmp/dfn'
    >>> del os.environ["DISTILFN_CACHE_DIR"]
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


def open_cache(cache: str | os.PathLike[str] | bool | RequestCache | None = None) -> RequestCache | None:
    """Turn a user's ``cache=`` option into a cache, or None when caching is off.

    None or True: ``default_cache_dir() / "requests.sqlite"``. False: no cache. A path
    ending in ``.sqlite``/``.sqlite3``/``.db`` or naming an existing file: that file;
    any other path: a directory holding ``requests.sqlite``. A RequestCache: itself.

    >>> open_cache(False) is None
    True
    """
    if cache is False:
        return None
    if isinstance(cache, RequestCache):
        return cache
    if cache is None or cache is True:
        return RequestCache(default_cache_dir() / CACHE_FILENAME)
    if isinstance(cache, str | os.PathLike):
        return RequestCache(_cache_file(cache))
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
