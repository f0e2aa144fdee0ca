"""A small on-disk key -> JSON value cache (one SQLite file), for LLM responses and segment captions.

Keys are digests of canonical JSON, so any JSON-able description of a request (the model's identity, messages,
sampling, ...) is a key. Every `put` commits at once: a crash loses at most the request in flight, and a rerun
finds everything answered before it. Safe to share between threads of one process (one lock) and between
processes (SQLite's own locking, WAL journal). A file that is not an SQLite database, or one another process
keeps locked past `timeout`, raises `CacheError` naming the file — an infrastructure error that stops a run,
never an item's failure."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evals.contracts import InfrastructureError


class CacheError(InfrastructureError):
    """A cache file cannot be read or written."""


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


class DiskCache:
    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        with self._errors("open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=timeout)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            self._db.commit()

    @contextmanager
    def _errors(self, what: str):
        try:
            yield
        except (sqlite3.Error, OSError) as e:
            hint = ("another process holds it locked" if "locked" in str(e) else
                    "it is not an SQLite cache (corrupt, or another file): move it away or set this cache to "
                    "another path / null" if isinstance(e, sqlite3.DatabaseError) else e.__class__.__name__)
            raise CacheError(f"cache {self.path}: cannot {what} it ({e}): {hint}") from e

    def check(self) -> None:
        """Read and write access now (a locked or read-only file fails here, before a run starts)."""
        with self._lock, self._errors("write"):
            self._db.execute("SELECT COUNT(*) FROM kv").fetchone()
            self._db.execute("BEGIN IMMEDIATE")
            self._db.rollback()

    def get(self, key: Any) -> Any | None:
        with self._lock, self._errors("read"):
            row = self._db.execute("SELECT v FROM kv WHERE k = ?", (digest(key),)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: Any, value: Any) -> None:
        with self._lock, self._errors("write"):
            self._db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (digest(key), json.dumps(value)))
            self._db.commit()

    def __bool__(self) -> bool:   # an empty cache is still a cache (not falsy like an empty container)
        return True

    def __len__(self) -> int:
        with self._lock, self._errors("read"):
            return self._db.execute("SELECT COUNT(*) FROM kv").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_cache(path: str | Path | None) -> DiskCache | None:
    """A cache at `path`, or None (no caching) when path is null/empty."""
    return DiskCache(path) if path else None
