"""Per-user FAISS indexes: the only importer of faiss. SQL is the truth; FAISS is a cache.

One exact inner-product index per (user, model), its ids the message ids, so a search can only
ever return that user's messages: isolation by construction, not by a filter that can be forgotten.
Indexes live in a bounded LRU cache and are rebuilt from the stored vectors (never by re-running the
model) when missing or stale. Staleness is a cheap indexed count/max query, so a message written by
another process is seen on the next search. With a folder given, a built index is also written to a
file named after the SQL state it matches; a cold start reads that file (about 1 ms for 10k vectors,
against tens of ms from SQL) when it is still current, and rebuilds from SQL when it is missing,
stale or unreadable.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy import Engine, func
from sqlmodel import col, select

from memory.db import read
from memory.files import private_dir, private_file
from memory.models import Embedding

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    index: faiss.IndexIDMap2
    rows: int  # embedding rows in SQL when built (including any skipped as corrupt)
    max_id: int
    # One user's index at a time (FAISS may not search while it adds); other users never wait for it.
    lock: threading.Lock = field(default_factory=threading.Lock)


class UserIndexes:
    def __init__(
        self, engine: Engine, *, model: str, dimension: Callable[[], int], capacity: int = 256,
        folder: Path | None = None,
    ) -> None:
        """`dimension` is asked on first build: a custom model's width is known once it has loaded."""
        self._root = folder
        self._folder = folder / hashlib.sha256(model.encode()).hexdigest()[:16] if folder else None
        self._engine = engine
        self._model = model
        self._dimension_of = dimension
        self._capacity = capacity
        self._cache: OrderedDict[int, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        # One query at a time per request: a second OpenMP thread only adds overhead (measured).
        faiss.omp_set_num_threads(1)

    @property
    def model(self) -> str:
        return self._model

    def search(self, user_id: int, vector: np.ndarray, k: int, *, fresh: bool = False) -> list[tuple[int, float]]:
        """Up to k (message id, cosine) pairs from this user's messages, best first.

        `fresh`: `refresh` was called just before, so the staleness query can be skipped.
        """
        entry = self._cached(user_id) if fresh else None
        entry = entry or self._current(user_id)
        if entry.index.ntotal == 0 or k <= 0:
            return []
        with entry.lock:
            scores, ids = entry.index.search(vector.reshape(1, -1).astype(np.float32), min(k, entry.index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def add(self, user_id: int, ids: list[int], vectors: np.ndarray) -> None:
        """Add freshly committed vectors to a loaded index (an unloaded one is built on next use)."""
        entry = self._cached(user_id)
        if entry is None or not ids:
            return
        with entry.lock:  # then, if at all, the cache's lock: never the other way round
            if min(ids) <= entry.max_id:  # out of order: rebuild rather than guess
                with self._lock:
                    if self._cache.get(user_id) is entry:
                        del self._cache[user_id]
                return
            entry.index.add_with_ids(vectors.astype(np.float32), np.asarray(ids, dtype=np.int64))
            entry.rows += len(ids)
            entry.max_id = max(ids)

    def refresh(self, user_id: int) -> None:
        """Make sure this user's index is loaded and matches SQL (rebuild if stale)."""
        self._current(user_id)

    def _cached(self, user_id: int) -> _Entry | None:
        with self._lock:
            return self._cache.get(user_id)

    def drop(self, user_id: int) -> None:
        """Forget the user's index, in memory and on disk (after their vectors are deleted): the files
        of every model, an earlier one's included, and any a crash left half-written."""
        with self._lock:
            self._cache.pop(user_id, None)
            if self._root is not None and self._root.is_dir():
                for path in self._root.glob(f"*/u{user_id}-*"):
                    path.unlink(missing_ok=True)

    def loaded(self) -> dict[int, int]:
        """User id -> vectors held, for every index in memory (used by deletion checks)."""
        with self._lock:
            return {user: entry.index.ntotal for user, entry in self._cache.items()}

    def _current(self, user_id: int) -> _Entry:
        rows, max_id = read(self._engine, lambda s: s.exec(
            select(func.count(), func.coalesce(func.max(Embedding.message_id), 0))
            .where(Embedding.user_id == user_id, Embedding.model == self._model)
        ).one())
        with self._lock:
            entry = self._cache.get(user_id)
            if entry is not None and entry.rows == rows and entry.max_id == max_id:
                self._cache.move_to_end(user_id)
                return entry
        entry = self._read_file(user_id, rows, max_id) or self._build(user_id)
        with self._lock:
            self._cache[user_id] = entry
            self._cache.move_to_end(user_id)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return entry

    def _build(self, user_id: int) -> _Entry:
        started = time.perf_counter()
        rows = read(self._engine, lambda s: s.exec(
            select(Embedding.message_id, Embedding.vector)
            .where(Embedding.user_id == user_id, Embedding.model == self._model)
            .order_by(col(Embedding.message_id))
        ).all())
        dimension = self._dimension_of()
        width = dimension * 4
        good = [(mid, blob) for mid, blob in rows if blob is not None and len(blob) == width]
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        if good:
            vectors = np.frombuffer(b"".join(blob for _, blob in good), dtype=np.float32).reshape(-1, dimension)
            index.add_with_ids(vectors, np.fromiter((mid for mid, _ in good), dtype=np.int64, count=len(good)))
        if len(good) != len(rows):
            logger.warning("user %s: %d stored vectors are corrupt and were skipped", user_id, len(rows) - len(good))
        logger.info("index user=%s vectors=%d built in %.1f ms", user_id, len(good), (time.perf_counter() - started) * 1000)
        entry = _Entry(index=index, rows=len(rows), max_id=max((mid for mid, _ in rows), default=0))
        self._write_file(user_id, entry)
        return entry

    # --- the file cache ------------------------------------------------------------------------

    def _files(self, user_id: int) -> list[Path]:
        return sorted(self._folder.glob(f"u{user_id}-*.faiss")) if self._folder and self._folder.exists() else []

    def _path(self, user_id: int, rows: int, max_id: int) -> Path:
        assert self._folder is not None, "only called when the index has a folder"
        return self._folder / f"u{user_id}-{rows}-{max_id}.faiss"

    def _read_file(self, user_id: int, rows: int, max_id: int) -> _Entry | None:
        if self._folder is None:
            return None
        path = self._path(user_id, rows, max_id)
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
            if not isinstance(index, faiss.IndexIDMap2):
                index = faiss.downcast_index(index)
            if not isinstance(index, faiss.IndexIDMap2):  # its ids would not be message ids
                raise ValueError(f"not an id-mapped index: {type(index).__name__}")
            if index.d != self._dimension_of():
                raise ValueError(f"index width {index.d}")
        except Exception as exc:  # a damaged cache file is rebuilt from SQL, never fatal
            logger.warning("index file for user %s unreadable (%s); rebuilding from SQL", user_id, type(exc).__name__)
            path.unlink(missing_ok=True)
            return None
        return _Entry(index=index, rows=rows, max_id=max_id)

    def _write_file(self, user_id: int, entry: _Entry) -> None:
        if self._folder is None:
            return
        try:
            private_dir(self._folder)
            for old in self._files(user_id):
                old.unlink(missing_ok=True)
            for left in self._folder.glob(f"u{user_id}-*.partial"):  # a crash's; another's in progress is young
                with contextlib.suppress(OSError):  # another process may remove it first
                    if time.time() - left.stat().st_mtime > 60:
                        left.unlink()
            target = self._path(user_id, entry.rows, entry.max_id)
            # FAISS writes into it, keeping its mode. Named per process and thread: replicas on one machine
            # share the data folder, and two writing one name would mix their halves.
            partial = private_file(target.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident()}.partial"))
            faiss.write_index(entry.index, str(partial))
            os.replace(partial, target)  # readers never see half a file
        except OSError as exc:
            logger.warning("index file for user %s not written: %s", user_id, exc)
