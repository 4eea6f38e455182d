"""The real bundled encoder: single texts from many threads at once share model calls and get the
vectors they would have got alone; a model that fails fails each caller."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memory.embed import Embedder, EmbedderUnavailable

TEXTS = [f"Message {i}: " + "we could walk by the river and then " * (i % 5) + "have dinner at eight" for i in range(24)]


def test_single_texts_sent_at_once_share_model_calls_and_keep_their_vectors(embedder):
    alone = embedder.encode(TEXTS)  # one call, as a reference
    before = embedder.shared_calls
    with ThreadPoolExecutor(max_workers=24) as pool:
        together = list(pool.map(embedder.encode_one, TEXTS))
    calls = embedder.shared_calls - before
    assert calls < len(TEXTS)  # batched, not one call each
    for mine, reference in zip(together, alone, strict=True):
        assert mine.shape == (384,) and np.allclose(mine, reference, atol=1e-5)  # padding changes nothing
    assert np.allclose(embedder.encode_one(TEXTS[3]), alone[3], atol=1e-5)  # alone again, after the crowd


def test_a_model_that_cannot_load_fails_every_waiting_caller():
    missing = Embedder("/nonexistent/embedding-model")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(missing.encode_one, text) for text in TEXTS[:4]]
        for future in futures:
            with pytest.raises(EmbedderUnavailable):
                future.result(timeout=30)
