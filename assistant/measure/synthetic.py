"""Synthetic users and histories for the benchmarks: pseudo-words with chat-like frequencies, and
thousands of stored messages with vectors written straight into SQL."""

from __future__ import annotations

import itertools
import random

import numpy as np


def _vocabulary(size: int = 5_000, seed: int = 7) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf-like frequencies, so a few words are everywhere and most are rare, as in chat."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "do", "an", "el", "or", "ix", "um"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)})[:size]
    rng.shuffle(words)
    return words, [1.0 / (rank + 1) for rank in range(len(words))]


WORDS, WEIGHTS = _vocabulary()
CUMULATIVE = list(itertools.accumulate(WEIGHTS))  # what choices() would add up again at every call


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, cum_weights=CUMULATIVE, k=rng.randint(8, 20))).capitalize() + "."


def bulk_history(engine, *, user_id: int, count: int, dimension: int, model: str, rng: random.Random) -> None:
    """`count` messages with synthetic unit vectors (the stored side need not come from the model)."""
    from memory.models import Author, Embedding, Message, MessageStatus, Thread, table_of

    batch = 5_000
    with engine.begin() as conn:
        conn.execute(table_of(Thread).insert(), [{"id": f"bulk-{user_id}", "user_id": user_id, "name": "history",
                                                  "remember": True, "metadata_json": "{}", "tags_json": "[]",
                                                  "created_at": _now(), "updated_at": _now()}])
    for start in range(0, count, batch):
        n = min(batch, count - start)
        with engine.begin() as conn:
            first = conn.execute(table_of(Message).insert().returning(table_of(Message).c.id), [
                {"step_id": f"bulk-{user_id}-{start + i}", "thread_id": f"bulk-{user_id}", "user_id": user_id,
                 "author": str(Author.USER if i % 2 == 0 else Author.ASSISTANT), "content": sentence(rng),
                 "status": MessageStatus.COMPLETE, "created_at": _now()} for i in range(n)
            ]).scalars().all()
            vectors = _unit_vectors(n, dimension, rng)
            conn.execute(table_of(Embedding).insert(), [
                {"message_id": mid, "model": model, "user_id": user_id, "content_hash": "synthetic",
                 "vector": vectors[i].astype("<f4").tobytes()} for i, mid in enumerate(first)
            ])


def account(session, name: str):
    from memory.models import User

    user = User(identifier=name)
    session.add(user)
    session.flush()
    return user


def _unit_vectors(n: int, dimension: int, rng: random.Random) -> np.ndarray:
    generator = np.random.default_rng(rng.randrange(2**32))
    vectors = generator.standard_normal((n, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _now():
    from memory.models import utcnow

    return utcnow()
