"""Message vectors in SQL: save them, find the messages that lack a usable one, embed those.

A vector is usable for a model when it exists for that model name, has the model's width and was
made from the message's current text (content hash). Anything else is re-embedded, never mixed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import Engine, and_, func, or_
from sqlmodel import Session, col, select

from memory.db import read, write
from memory.embed import Embedder, content_hash
from memory.models import Embedding, Message, MessageStatus

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)


def save_vectors(session: Session, *, model: str, messages: Sequence[Message], vectors: np.ndarray) -> None:
    for message, vector in zip(messages, vectors, strict=True):
        row = session.get(Embedding, (message.id, model)) or Embedding(message_id=message.id, model=model,
                                                                       user_id=message.user_id)
        row.content_hash = content_hash(message.content)
        row.vector = np.asarray(vector, dtype="<f4").tobytes()
        session.add(row)
    session.flush()


def _lacking(model: str, width: int, user_id: int | None):
    """Messages with no vector of `model`, or one of the wrong size."""
    query = (
        select(Message)
        .outerjoin(Embedding, and_(col(Embedding.message_id) == Message.id, Embedding.model == model))
        .where(Message.status == MessageStatus.COMPLETE,
               or_(col(Embedding.message_id).is_(None), func.length(Embedding.vector) != width))
    )
    return query.where(Message.user_id == user_id) if user_id is not None else query


def count_pending(engine: Engine, *, model: str, width: int, user_id: int | None = None) -> int:
    query = select(func.count()).select_from(_lacking(model, width, user_id).subquery())
    return read(engine, lambda s: s.exec(query).one())


def stale_by_hash(session: Session, *, model: str, user_id: int | None = None) -> list[int]:
    """Ids of messages whose stored vector was made from other text (e.g. an edited message)."""
    query = select(Message.id, Message.content, Embedding.content_hash).join(
        Embedding, and_(col(Embedding.message_id) == Message.id, Embedding.model == model))
    if user_id is not None:
        query = query.where(Message.user_id == user_id)
    return [mid for mid, content, digest in session.exec(query).all() if content_hash(content) != digest]


def embed_pending(
    engine: Engine, embedder: Embedder, *, user_id: int | None = None, batch: int = 64,
    progress: Progress | None = None, check_hashes: bool = False,
) -> int:
    """Embed every message that lacks a usable vector for the embedder's model; return how many."""
    model, width = embedder.model_name, embedder.dimension * 4
    if check_hashes:
        stale = read(engine, lambda s: stale_by_hash(s, model=model, user_id=user_id))
        if stale:
            write(engine, lambda s: [s.delete(s.get(Embedding, (mid, model))) for mid in stale])
    total, done, started = count_pending(engine, model=model, width=width, user_id=user_id), 0, time.perf_counter()
    after = 0
    while True:
        messages = read(engine, lambda s, after=after: list(s.exec(
            _lacking(model, width, user_id).where(Message.id > after).order_by(Message.id).limit(batch)
        ).all()))
        if not messages:
            break
        vectors = embedder.encode([m.content for m in messages])
        write(engine, lambda s, messages=messages, vectors=vectors: save_vectors(
            s, model=model, messages=messages, vectors=vectors))
        after, done = messages[-1].id, done + len(messages)
        if progress:
            progress(done, total)
    if done:
        logger.info("embedded %d messages in %.1f s", done, time.perf_counter() - started)
    return done
