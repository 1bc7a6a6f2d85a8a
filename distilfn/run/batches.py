"""The batch log: which offline batches a run submitted, and which requests each holds.

It lives in the run's cache database (two tables beside ``answers``, in the same SQLite
file), so a run killed while its batches were being processed, or one that exited on
purpose, finds them again: it polls them instead of submitting their requests again.

A batch is recorded in two steps: :meth:`BatchLog.uploaded` once its request file is
uploaded (before the batch is created: a run killed in between finds the batch again by
its input file), then :meth:`BatchLog.created` with the provider's batch id. Requests are
named by ``custom_id``, a content hash of the request (never a key). Each is
``submitted`` until its result is taken (``answered`` or ``failed``), or ``moved`` when
its batch expired or was cancelled before it was done (it is then submitted again).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

from distilfn.run.cache import write_rows

__all__ = ["BatchLog", "BatchRecord", "list_batches"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY,
        endpoint TEXT NOT NULL,
        model TEXT NOT NULL,
        input_file_id TEXT NOT NULL,
        batch_id TEXT,
        status TEXT NOT NULL,
        requests INTEGER NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS batch_requests (
        batch INTEGER NOT NULL REFERENCES batches(id),
        custom_id TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (batch, custom_id)
    )""",
    "CREATE INDEX IF NOT EXISTS batch_requests_open ON batch_requests (state, custom_id)",
)


class BatchRecord(msgspec.Struct, frozen=True):
    """One batch as the log knows it (``status`` is the last one seen)."""

    id: int
    endpoint: str
    model: str
    input_file_id: str
    batch_id: str | None
    status: str
    requests: int
    created: float
    updated: float
    waiting: int = 0  # requests still submitted (no result taken yet)


_SELECT = (
    "SELECT b.id, b.endpoint, b.model, b.input_file_id, b.batch_id, b.status, b.requests, b.created, b.updated,"
    " (SELECT count(*) FROM batch_requests r WHERE r.batch = b.id AND r.state = 'submitted') FROM batches b"
)


class BatchLog:
    """The batch tables of the SQLite file at ``path`` (the request cache's file).

    Each method commits before it returns (a few rows; called a few times per batch).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            msg = f"the cache at {str(self.path)!r} is not a readable SQLite database: {exc}"
            raise ValueError(msg) from exc

    def _write(self, sql: str, rows: list[tuple]) -> None:
        """Run ``sql`` once per row of ``rows``, in one transaction."""
        with self._lock:
            write_rows(self._conn, sql, rows)

    def uploaded(self, *, endpoint: str, model: str, input_file_id: str, custom_ids: list[str]) -> int:
        """Record a request file uploaded for a batch not created yet; its local id."""
        now = time.time()
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                local = conn.execute(
                    "INSERT INTO batches (endpoint, model, input_file_id, batch_id, status, requests, created, updated)"
                    " VALUES (?, ?, ?, NULL, 'uploaded', ?, ?, ?)",
                    (endpoint, model, input_file_id, len(custom_ids), now, now),
                ).lastrowid
                conn.executemany(
                    "INSERT INTO batch_requests (batch, custom_id, state) VALUES (?, ?, 'submitted')",
                    [(local, c) for c in custom_ids],
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        assert local is not None
        return local

    def created(self, local: int, batch_id: str, status: str) -> None:
        """Record the provider's id of batch ``local``."""
        self._write("UPDATE batches SET batch_id = ?, status = ?, updated = ? WHERE id = ?", [(batch_id, status, time.time(), local)])

    def status(self, local: int, status: str) -> None:
        """Record the last status seen of batch ``local``."""
        self._write("UPDATE batches SET status = ?, updated = ? WHERE id = ?", [(status, time.time(), local)])

    def settle(self, local: int, state: str, custom_ids: Iterable[str]) -> None:
        """Set the state (``answered``, ``failed``, ``moved``) of requests of batch ``local``."""
        rows = [(state, local, c) for c in custom_ids]
        if rows:
            self._write("UPDATE batch_requests SET state = ? WHERE batch = ? AND custom_id = ?", rows)

    def waiting(self, endpoint: str, model: str) -> dict[str, int]:
        """The requests of (``endpoint``, ``model``) still submitted: custom_id -> local batch id."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT r.custom_id, r.batch FROM batch_requests r JOIN batches b ON b.id = r.batch"
                " WHERE r.state = 'submitted' AND b.endpoint = ? AND b.model = ? ORDER BY r.batch",
                (endpoint, model),
            ).fetchall()
        return {custom_id: local for custom_id, local in rows}

    def record(self, local: int) -> BatchRecord:
        """Batch ``local``."""
        with self._lock:
            row = self._conn.execute(_SELECT + " WHERE b.id = ?", (local,)).fetchone()
        return BatchRecord(*row)

    def records(self) -> list[BatchRecord]:
        """Every batch, oldest first."""
        with self._lock:
            rows = self._conn.execute(_SELECT + " ORDER BY b.id").fetchall()
        return [BatchRecord(*row) for row in rows]

    def close(self) -> None:
        """Close the connection; closing twice is fine."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> BatchLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def list_batches(path: str | os.PathLike[str]) -> list[BatchRecord]:
    """The batches the cache database at ``path`` knows (none when it has no batch table).

    Read-only: a cache that a run is writing can be listed.
    """
    file = Path(path)
    if not file.exists():
        return []
    with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute(_SELECT + " ORDER BY b.id").fetchall()
        except sqlite3.OperationalError:  # no batch tables: a cache of live requests only
            return []
    return [BatchRecord(*row) for row in rows]
